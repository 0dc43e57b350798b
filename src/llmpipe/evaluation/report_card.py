"""The report card: one page with every evaluation of a run, beside its baselines.

`write(root, finetune)` reads what the stages left (metrics/, plots/, reports/samples.md and
reports/evaluate_task/<task>/) and writes reports/report/:
  report.md    the page in Markdown (renders on GitHub and in the MLflow UI)
  report.html  the same page, standalone, for a browser
  *.png        training curves and confusion matrices it shows

It computes nothing new: every number comes from a metrics file that `dvc metrics show` also shows.
"""

import csv
import html
import json
from pathlib import Path

import markdown

from llmpipe.atomic import replace_dir
from llmpipe.schema import Finetune

GENERATION_COLUMNS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "exact_match")
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f0f0f0; } td { white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #eee; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def cell(text: str, limit: int | None = None) -> str:
    """Text for one Markdown table cell: pipes escaped, line breaks as <br>, cut at `limit` chars."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + " …"
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def headline(scores: dict) -> dict:
    """The overall generation scores of one decoding, in the column order of the tables."""
    return {name: scores.get(name) for name in GENERATION_COLUMNS}


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [
            {k: float(v) if v not in ("", None) and k != "label" else v for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


# ---- pictures --------------------------------------------------------------------------------------


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(matrix: list[list[int]], labels: list[str], path: Path):
    """counts[actual][predicted] as a heat map, each cell numbered; rows are the true labels."""
    plt = pyplot()
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                ax.text(
                    j, i, count, ha="center", va="center", fontsize=8, color="white" if count > peak / 2 else "black"
                )
    ax.set(xlabel="predicted", ylabel="actual")
    fig.colorbar(image, ax=ax, shrink=0.7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def curves_png(series: dict[str, tuple[list, list]], title: str, ylabel: str, path: Path, lines: dict | None = None):
    """Line plot of {name: (steps, values)}, with optional horizontal reference lines {name: value}."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="." if len(x) < 30 else None, label=name)
    for name, value in (lines or {}).items():
        ax.axhline(value, linestyle="--", color="grey", linewidth=1)
        ax.annotate(name, (0, value), xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="grey")
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def column(rows: list[dict], key: str) -> tuple[list, list]:
    kept = [r for r in rows if r.get(key) not in ("", None)]
    return [r["step"] for r in kept], [r[key] for r in kept]


# ---- sections --------------------------------------------------------------------------------------


def lm_section(root: Path, out: Path) -> str:
    lm = read_json(root / "metrics" / "evaluate.json").get("lm", {})
    pretrain = read_json(root / "metrics" / "pretrain.json")
    text = ["## Pretrained language model\n"]
    if pretrain:
        params, tokens = pretrain.get("params", 0) / 1e6, pretrain.get("tokens_seen", 0) / 1e6
        text.append(
            f"{params:.2f} M parameters, {tokens:.2f} M training tokens, {pretrain.get('flops', 0):.3g} FLOPs.\n"
        )
    # scored on its own objective (an encoder's, an encoder-decoder's: evaluate), or in bits per byte
    in_bits = "objective" not in lm
    text.append(bpb_table(lm) if in_bits else objective_table(lm))
    train, val = (read_csv(root / "plots" / "pretrain" / f"{s}.csv") for s in ("train", "val"))
    if train and val:
        curves_png(
            {"train": column(train, "loss"), "val": column(val, "loss")},
            "pretrain loss",
            "nats per token",
            out / "pretrain_loss.png",
        )
        text.append("![pretrain loss](pretrain_loss.png)\n")
        if in_bits:  # an encoder's or encoder-decoder's loss has no bits per byte
            baselines = {k: lm[f"{k}_val_bpb"] for k in ("unigram", "bigram") if f"{k}_val_bpb" in lm}
            curves_png(
                {"val": column(val, "bpb")},
                "pretrain validation bits per byte",
                "bpb",
                out / "pretrain_bpb.png",
                baselines,
            )
            text.append("![validation bpb](pretrain_bpb.png)\n")
    return "\n".join(text)


def bpb_table(lm: dict) -> str:
    """A decoder's scores (stages/evaluate.py), overall and per language, beside the baselines."""
    rows = []
    for scope, scores in [("all", lm), *((k, v) for k, v in sorted(lm.items()) if isinstance(v, dict))]:
        for split in ("val", "test"):
            if f"{split}_bpb" in scores:
                rows.append(
                    [scope, split, scores[f"{split}_tokens"]]
                    + [scores.get(f"{p}{split}_{m}") for m in ("bpb", "ppl") for p in ("", "bigram_", "unigram_")]
                )
    header = ["documents", "split", "tokens", "bpb", "bigram bpb", "unigram bpb", "ppl", "bigram ppl", "unigram ppl"]
    note = "Bits per byte (bpb) compare across tokenizers; perplexity is per token of this tokenizer.\n"
    return note + "\n" + table(header, rows)


OBJECTIVE_NOTES = {  # what an encoder's or encoder-decoder's scores are (stages/evaluate.py)
    "masked": (
        "masked tokens",
        "An encoder, scored on its masked tokens (each seen from both sides): its loss is not comparable "
        "with a decoder's loss or bits per byte.\n",
    ),
    "span": (
        "cut-span tokens",
        "An encoder-decoder, scored on the tokens of the spans cut out of its input (the text around them "
        "seen from both sides; the sentinels and end of text that frame them are not scored): its loss is "
        "comparable with neither a decoder's bits per byte nor an encoder's masked-token loss.\n",
    ),
}


def objective_table(lm: dict) -> str:
    """An encoder's or encoder-decoder's scores on its own objective, beside a unigram model."""
    name = lm.get("objective", "masked")  # names its metrics: val_masked_loss, val_span_loss
    rows = [
        [split, lm[f"{split}_{name}_tokens"], lm[f"{split}_{name}_loss"], lm[f"unigram_{split}_{name}_loss"]]
        + [lm[f"{split}_{name}_accuracy"]]
        for split in ("val", "test")
        if f"{split}_{name}_loss" in lm
    ]
    scored, note = OBJECTIVE_NOTES[name]
    return note + "\n" + table(["split", scored, "loss (nats)", "unigram loss", "accuracy"], rows)


def harness_section(root: Path) -> str:
    scores = read_json(root / "metrics" / "evaluate_harness.json")
    if not scores:
        return ""
    if "not_run" in scores:
        return f"## lm-evaluation-harness\n\nNot run: {scores['not_run']}.\n"
    rows = [
        [task, s["acc"], s["acc_stderr"], s["acc_norm"], s.get("unigram_acc", "-"), s["chance"], s["examples"]]
        for task, s in sorted(scores.items())
    ]
    return (
        "## lm-evaluation-harness\n\nMultiple-choice cloze over held-out documents "
        "(llmpipe/evaluation/harness.py): pick the "
        "true ending of a document among endings of other documents. The unigram model picks without "
        "reading the context: what the endings alone give away.\n\n"
        + table(["task", "acc", "± stderr", "acc_norm", "unigram acc", "chance", "examples"], rows)
    )


TRANSFER_NOTE = (
    "What pretraining buys this task, against the same training from random weights over several seeds, is "
    "the transfer study's question (`llmpipe transfer queue --run`, then `llmpipe transfer report`: "
    "reports/transfer.md).\n"
)


def classifier_section(root: Path, task: str, out: Path) -> str:
    test = read_json(root / "metrics" / "evaluate_task" / f"{task}.json").get(task, {})
    val = read_json(root / "metrics" / "finetune" / f"{task}.json")
    names = ("acc", "macro_precision", "macro_recall", "macro_f1", "micro_f1")
    rows = [[name, test.get(f"test_{name}"), test.get(f"majority_test_{name}"), val.get(name)] for name in names]
    text = [
        f"## Classifier `{task}`\n",
        f"{test.get('test_examples', 0)} test examples.\n",
        table(["metric", "test", "majority (test)", "validation"], rows),
        TRANSFER_NOTE,
    ]
    per_class = read_csv(root / "plots" / "evaluate_task" / task / "per_class.csv")
    if per_class:
        text.append("Per class (test):\n")
        text.append(
            table(
                ["label", "precision", "recall", "F1", "support"],
                [[r["label"], r["precision"], r["recall"], r["f1"], int(r["support"])] for r in per_class],
            )
        )
    confusion = root / "plots" / "evaluate_task" / task / "confusion.png"
    if confusion.is_file():
        (out / f"{task}_confusion.png").write_bytes(confusion.read_bytes())
        text.append(f"![confusion matrix]({task}_confusion.png)\n")
    text.append(finetune_curves(root, task, "macro_f1", "validation macro-F1", out))
    misclassified = root / "reports" / "evaluate_task" / task / "misclassified.md"
    if misclassified.is_file():
        text.append("Misclassified test examples:\n\n" + misclassified.read_text(encoding="utf-8"))
    return "\n".join(text)


def finetune_curves(root: Path, task: str, key: str, label: str, out: Path) -> str:
    rows = read_csv(root / "plots" / "finetune" / task / "val.csv")
    if not rows:
        return ""
    curves_png({"validation": column(rows, key)}, f"finetune {task}: {label}", key, out / f"{task}_curves.png")
    return f"![{task} curves]({task}_curves.png)\n"


def sft_section(root: Path, task: str, out: Path) -> str:
    scores = read_json(root / "metrics" / "evaluate_task" / f"{task}.json").get(task, {})
    val = read_json(root / "metrics" / "finetune" / f"{task}.json")
    text = [
        f"## Instruction tuning `{task}`\n",
        f"Test loss on the responses {fmt(scores.get('test_loss'))} nats per token (perplexity "
        f"{fmt(scores.get('test_ppl'), 1)}) over {scores.get('test_pairs')} pairs; validation loss "
        f"{fmt(val.get('loss'))}.\n",
        TRANSFER_NOTE,
        "Generations for the test prompts (BLEU and chrF 0–100, ROUGE F1 and exact match 0–1); `random_response` "
        "answers every prompt with a random training response of its language:\n",
    ]
    rows = []
    for decoding, s in scores.items():
        if not isinstance(s, dict):
            continue
        rows.append([decoding, "all", s.get("pairs"), *headline(s).values()])
        rows += [
            [decoding, lang, v.get("pairs"), *headline(v).values()]
            for lang, v in sorted(s.items())
            if isinstance(v, dict)
        ]
    text.append(table(["decoding", "language", "pairs", *GENERATION_COLUMNS], rows))
    text.append(finetune_curves(root, task, "loss", "validation loss", out))
    samples = root / "reports" / "evaluate_task" / task / "samples.md"
    if samples.is_file():
        text.append("Samples:\n\n" + samples.read_text(encoding="utf-8"))
    return "\n".join(text)


def samples_section(root: Path) -> str:
    samples = root / "reports" / "samples.md"
    if not samples.is_file():
        return ""
    body = samples.read_text(encoding="utf-8").split("\n", 1)[1]  # below its own title
    return "## Samples from the pretrained model\n" + body


def page(root: Path, finetune: Finetune, out: Path) -> str:
    parts = ["# llmpipe report card\n", lm_section(root, out), harness_section(root)]
    for task in finetune.tasks:
        skipped = read_json(root / "metrics" / "evaluate_task" / f"{task}.json").get("skipped")
        if skipped:  # the corpus could not feed it (llmpipe.data.task_support)
            parts.append(f"## Task `{task}`: skipped\n\n{cell(skipped)}\n")
        elif finetune[task].type == "classify":
            parts.append(classifier_section(root, task, out))
        else:
            parts.append(sft_section(root, task, out))
    parts.append(samples_section(root))
    return "\n".join(p for p in parts if p)


def to_html(text: str) -> str:
    body = markdown.markdown(text, extensions=["tables"])
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>llmpipe report card</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write(root: Path, finetune: Finetune) -> Path:
    """Write reports/report/ and return it."""
    out_dir = root / "reports" / "report"
    with replace_dir(out_dir) as out:
        text = page(root, finetune, out)
        (out / "report.md").write_text(text, encoding="utf-8")
        (out / "report.html").write_text(to_html(text), encoding="utf-8")
    return out_dir
