"""lm-evaluation-harness on our exported models, with tasks built from our own held-out data.

The task definition is kept in the repo (harness_tasks/llmpipe_cloze.yaml): a multiple-choice cloze.
Its data comes from the test split: each held-out document is cut near its middle at a line break,
else a sentence end, else a space (English) or any character (Chinese), nearer its end if the ending
would not fit the model; the model is given the first part and must rank the true ending above
endings of other held-out documents of the same language.
Chance is 1 / choices. One task per language (`llmpipe_cloze_en`, `llmpipe_cloze_zh`).

lm_eval loads the export directory through its Hugging Face backend (`hf`): our Transformer exports
as a transformers Llama model (export.py), so the harness scores it as it would any checkpoint.
Recurrent models have no transformers architecture, so the harness cannot load them.
"""

import json
import logging
import os
import random
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from llmpipe.data.task_support import Unsupported
from llmpipe.logs import quiet_bars, verbose
from llmpipe.schema import EvaluateHarness

TASK_FILE = Path(__file__).parent / "harness_tasks" / "llmpipe_cloze.yaml"
LINE_BREAK = re.compile(r"\n+")
SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


def cut_points(text: str, lang: str) -> list[int]:
    """Where a document may be cut, best kind first: line breaks, sentence ends, then word starts
    (English) or characters (Chinese)."""
    for pattern in (LINE_BREAK, SENTENCE_END):
        points = [m.end() for m in pattern.finditer(text) if 0 < m.end() < len(text)]
        if points:
            return points
    if lang == "zh":
        return list(range(1, len(text)))
    return [m.start() for m in re.finditer(r"(?<=\S)\s+\S", text)]


def split_document(text: str, lang: str, fits=lambda ending: True, tries: int = 64) -> tuple[str, str] | None:
    """(context, ending): the document cut at the allowed point nearest its middle whose ending
    `fits`, or None if there is none (among the `tries` nearest). An English ending keeps the space
    before it, so context + ending is the document."""
    text = text.strip()
    middle = len(text) / 2
    for cut in sorted(cut_points(text, lang), key=lambda p: abs(p - middle))[:tries]:
        context, ending = text[:cut].rstrip("\n"), text[cut:]
        if lang != "zh" and not ending.startswith((" ", "\n")):
            ending = " " + ending.lstrip()
        if context.strip() and ending.strip() and fits(ending):
            return context, ending
    return None


def cloze_items(docs: list[dict], tokenizer, cfg: EvaluateHarness, seed: int) -> dict[str, list[dict]]:
    """{language: [{context, choices, label}, ...]} from held-out documents of at least `min_chars`
    characters, cut so that the ending fits in half of `max_tokens` (the harness cuts a longer
    context from the left to fit the model), at most `max_docs` per language."""
    rng = random.Random(seed)
    fits = lambda ending: len(tokenizer.encode(ending).ids) <= cfg.max_tokens // 2  # noqa: E731
    cuts: dict[str, list[tuple[str, str]]] = {}
    for doc in docs:
        parts = split_document(doc["text"], doc["lang"], fits) if len(doc["text"]) >= cfg.min_chars else None
        if parts:
            cuts.setdefault(doc["lang"], []).append(parts)
    items = {}
    for lang, pairs in sorted(cuts.items()):
        if len(pairs) < cfg.choices:
            continue  # too few documents to draw distinct wrong endings from
        rows = []
        for i, (context, ending) in enumerate(pairs[: cfg.max_docs]):
            others = rng.sample([j for j in range(len(pairs)) if j != i], cfg.choices - 1)
            choices = [ending, *(pairs[j][1] for j in others)]
            rng.shuffle(choices)
            rows.append({"context": context, "choices": choices, "label": choices.index(ending)})
        items[lang] = rows
    return items


def write_items(items: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for lang, rows in items.items():
        paths[lang] = out_dir / f"cloze_{lang}.jsonl"
        with paths[lang].open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return paths


def task_configs(data_files: dict[str, Path], cache_dir: str) -> list[dict]:
    """The repo's task definition, once per language, pointed at that language's data file."""
    template = yaml.safe_load(TASK_FILE.read_text())
    configs = []
    for lang, path in sorted(data_files.items()):
        config = json.loads(json.dumps(template))  # a deep copy
        config["task"] = f"llmpipe_cloze_{lang}"
        config["dataset_kwargs"] = {"data_files": {"train": str(path.resolve())}, "cache_dir": cache_dir}
        configs.append(config)
    return configs


def unloadable_reason(model_dir: Path) -> str | None:
    """Why the harness's Hugging Face backend cannot load this export, or None if it can."""
    config = json.loads((model_dir / "llmpipe.json").read_text())
    arch = config["model"].get("arch", "?")
    if config["kind"] == "masked_lm":  # the harness scores continuations by next-token likelihood
        return f"{model_dir} holds a {arch} encoder, which gives no next-token likelihoods to score choices by"
    if config["kind"] == "seq2seq_lm":  # the harness's causal backend, which this stage runs
        return f"{model_dir} holds a {arch} encoder-decoder, which the harness's causal-LM backend cannot score"
    if (model_dir / "config.json").is_file():
        return None
    return f"{model_dir} holds a {arch} model, which transformers cannot load (no config.json)"


def check_loadable(model_dir: Path):
    reason = unloadable_reason(model_dir)
    if reason:
        raise ValueError(f"{reason}: lm-evaluation-harness runs on decoder Transformer exports only")


def run_lm_eval(model_dir: Path, data_files: dict[str, Path], batch_size: int, limit: int | None = None) -> dict:
    """lm_eval.simple_evaluate through the hf backend, offline; {task: {metric: value}}."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    if not verbose():  # lm-eval warns once per truncated request: hundreds of lines, no news
        for name in ("lm-eval", "lm_eval", "datasets", "transformers"):
            logging.getLogger(name).setLevel(logging.ERROR)
        import transformers

        transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="llmpipe-harness-") as cache_dir, quiet_bars():
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args={
                "pretrained": str(model_dir.resolve()),
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                "dtype": "float32",
            },
            tasks=task_configs(data_files, cache_dir),
            # Our tasks are given whole: indexing the harness's thousands of built-in task files,
            # which simple_evaluate does by default, took 7.7 s of a 13 s tiny run.
            task_manager=TaskManager(include_defaults=False),
            batch_size=batch_size,
            limit=limit,
            log_samples=False,
            bootstrap_iters=1000,
        )
    scores = {}
    for task, values in results["results"].items():
        lang = task.removeprefix("llmpipe_cloze_")
        scores[f"cloze_{lang}"] = {
            "acc": values["acc,none"],
            "acc_stderr": values["acc_stderr,none"],
            "acc_norm": values["acc_norm,none"],
            "acc_norm_stderr": values["acc_norm_stderr,none"],
            "examples": int(results["n-samples"][task]["effective"]),
        }
    return scores


def unigram_scores(items: dict[str, list[dict]], tokenizer, log_probs: np.ndarray, limit=None) -> dict:
    """The cloze answered by a unigram model fitted on train, picking as the harness does: the ending
    with the highest total log-likelihood (acc), and per character (acc_norm). It never reads the
    context, so what it scores above chance comes from the endings alone (their length, their common
    tokens): the bar a model must clear to show that it read the context."""
    scores = {}
    for lang, rows in items.items():
        picked = {"unigram_acc": 0, "unigram_acc_norm": 0}
        for row in rows[:limit]:
            lls = np.array([log_probs[tokenizer.encode(choice).ids].sum() for choice in row["choices"]])
            picked["unigram_acc"] += int(np.argmax(lls) == row["label"])
            picked["unigram_acc_norm"] += int(np.argmax(lls / [len(c) for c in row["choices"]]) == row["label"])
        scores[f"cloze_{lang}"] = {k: v / len(rows[:limit]) for k, v in picked.items()}
    return scores


def evaluate(
    model_dir: Path, docs: list[dict], data_dir: Path, cfg: EvaluateHarness, seed: int, limit=None, tokens_dir=None
) -> dict:
    """Build the cloze tasks from held-out `docs` with the export's tokenizer, write them to
    data_dir, run the harness: the metrics, with chance (1 / choices) beside each task, and the
    unigram baseline (unigram_scores) fitted on the train split of `tokens_dir`, when given."""
    from llmpipe.registry.export import load_model_dir

    _, config, tokenizer = load_model_dir(model_dir)
    check_loadable(model_dir)
    cfg = replace(cfg, max_tokens=min(cfg.max_tokens, config["model"]["block_size"] - 1))  # what it can read
    items = cloze_items(docs, tokenizer, cfg, seed)
    if not items:  # a small or single-text corpus: too few held-out documents
        raise Unsupported(
            f"no language has {cfg.choices} held-out documents of at least "
            f"{cfg.min_chars} characters whose second half fits in {cfg.max_tokens // 2} tokens"
        )
    scores = run_lm_eval(model_dir, write_items(items, data_dir), cfg.batch_size, limit)
    baseline = {}
    if tokens_dir is not None:
        from llmpipe.data.token_files import load_tokens
        from llmpipe.evaluation.lm_metrics import unigram_log_probs

        log_probs = unigram_log_probs(np.asarray(load_tokens(tokens_dir, "train")), tokenizer.get_vocab_size())
        baseline = unigram_scores(items, tokenizer, log_probs, limit)
    for name, task in scores.items():
        task["chance"] = 1 / cfg.choices
        task |= baseline.get(name, {})
    return scores
