"""Evaluating the fine-tuned models on their test splits, beside baselines.

  classifier  accuracy, macro precision / recall / F1 and micro-F1 (torchmetrics), a per-class table
              and the confusion matrix, next to always answering the majority training label
  sft         the loss on the test responses; greedy and sampled responses to the test prompts scored
              by BLEU, chrF, ROUGE-1/2/L and exact match (generation_metrics), overall and per
              language, next to a random training response of the prompt's language

Each writes its tables and pictures into the folders it is given; evaluate's stage decides where.
"""

import csv
import random
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from llmpipe.data.chat_template import Template, model_prompt
from llmpipe.data.labeled_docs import classification_docs
from llmpipe.data.task_support import Unsupported
from llmpipe.data.tokenizer import PAD, special_id
from llmpipe.evaluation import generation_metrics, report_card
from llmpipe.evaluation.classification import (
    classification_metrics,
    confusion_matrix,
    majority_baseline,
    per_class_metrics,
)
from llmpipe.evaluation.lm_metrics import perplexity, sequence_nats
from llmpipe.families import family_of
from llmpipe.registry.inference import classify_texts, generate_text
from llmpipe.schema import Generation, SftTask
from llmpipe.training import sft


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


def evaluate_classifier(net, config: dict, tokenizer, tokens_dir: Path, shown: int, plots: Path, reports: Path) -> dict:
    """Test-split scores of a classifier export (`config` is its llmpipe.json), next to the majority
    baseline; confusion.csv (for dvc plots), per_class.csv and confusion.png into plots/, and up to
    `shown` misclassified examples into reports/misclassified.md."""
    labels, max_tokens = config["labels"], config["max_tokens"]
    train, test = (classify_docs(config, s, tokens_dir) for s in ("train", "test"))
    if not test:
        raise Unsupported(f"no test documents in lang {config['lang']!r} carry the classifier's labels {labels}")
    target = [labels.index(d["label"]) for d in test]
    pred = classify_texts(net, tokenizer, [d["text"] for d in test], max_tokens)
    scores = classification_metrics(pred, target, len(labels))
    baseline = majority_baseline([labels.index(d["label"]) for d in train], target, len(labels))
    matrix = confusion_matrix(pred, target, len(labels))
    # dvc's confusion template counts rows of (actual, predicted) itself
    write_csv(
        plots / "confusion.csv",
        [{"actual": labels[t], "predicted": labels[p]} for t, p in zip(target, pred, strict=True)],
    )
    write_csv(plots / "per_class.csv", per_class_metrics(pred, target, labels))
    report_card.confusion_png(matrix, labels, plots / "confusion.png")
    (reports / "misclassified.md").write_text(misclassified_markdown(test, pred, labels, shown), encoding="utf-8")
    return {
        **{f"test_{name}": value for name, value in scores.items()},
        **{f"majority_test_{name}": value for name, value in baseline.items()},
        "test_examples": len(target),
    }


def generate_responses(net, tokenizer, config: dict, pairs: list[sft.Pair], decoding: dict, max_new_tokens: int, seed):
    return [
        generate_text(
            net, tokenizer, model_prompt(config, p.prompt), max_new_tokens=max_new_tokens, seed=seed + i, **decoding
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


def evaluate_sft(
    net,
    config: dict,
    task_cfg: SftTask,
    tokenizer,
    tokens_dir: Path,
    cfg: Generation,
    batch_size: int,
    seed: int,
    plots: Path,
    reports: Path,
) -> dict:
    """Test-split loss of an SFT export (`config` is its llmpipe.json, `task_cfg` its finetune
    section) and the scores of its responses under each decoding of `cfg` (evaluate_task.generation),
    next to random training responses; generation.csv into plots/, samples.md into reports/."""
    pairs = sft.task_pairs(task_cfg, "test", tokens_dir)
    if not pairs:
        raise Unsupported("the test split gives no prompt/response pairs")
    family = family_of(net.config)
    template, encodes_prompt = Template(**config["template"]), family.encodes_prompt
    test = sft.supervised_examples(pairs, template, tokenizer, net.config.block_size, encodes_prompt)
    pad_id = special_id(tokenizer, PAD) if encodes_prompt else 0
    nats, count = sequence_nats(net, test, family.target_logits, batch_size, pad_id)
    shown = interleave_languages(pairs, cfg.max_pairs)
    references, langs = [p.response for p in shown], [p.lang for p in shown]
    outputs = {
        name: generate_responses(net, tokenizer, config, shown, asdict(getattr(cfg, name)), cfg.max_new_tokens, seed)
        for name in ("greedy", "sampled")
    }
    outputs["random_response"] = baseline_responses(shown, sft.task_pairs(task_cfg, "train", tokens_dir), seed)
    scores = {name: generation_metrics.scores_by_language(out, references, langs) for name, out in outputs.items()}
    write_csv(plots / "generation.csv", [{"decoding": name, **report_card.headline(s)} for name, s in scores.items()])
    (reports / "samples.md").write_text(samples_table(shown, outputs, cfg.samples), encoding="utf-8")
    return {
        "test_loss": nats / count,
        "test_ppl": perplexity(nats, count),
        "test_pairs": len(test),
        **scores,
    }
