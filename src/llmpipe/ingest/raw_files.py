"""Ingest's output, written as the documents arrive: one JSON-lines file per label (data/raw/<label>.jsonl),
and for documents without a label one per source file (data/raw/unlabeled.<file name>.jsonl, so that a
folder of shards stays as many files: clean's workers share out files), so ingest holds one record
at a time, never the corpus.

A corpus with many labels would need as many open files; at most `max_open` stay open, and a file
closed to make room is reopened for appending when its label comes back. The files are the same as
if each label's documents had been collected first and written in one go.
"""

import json
import re
from collections import Counter, OrderedDict, defaultdict
from pathlib import Path

from llmpipe.data.splits import source_file
from llmpipe.ingest.corpus import label_of


def file_name(doc: dict) -> str:
    """A safe file name for the documents of doc's label, or of its source file when it has none."""
    group = doc["label"]
    if group is None:
        group = "unlabeled." + (label_of(Path(source_file(str(doc.get("source") or "")))) or "corpus")
    return re.sub(r"[^\w.-]+", "_", str(group)) + ".jsonl"


class LabelFiles:
    """Append documents to <folder>/<file_name(doc)>; `counts` holds how many each file got."""

    def __init__(self, folder: Path, max_open: int = 64):
        self.folder, self.max_open = Path(folder), max_open
        self.counts: dict[str, int] = {}
        self.open: OrderedDict[str, object] = OrderedDict()  # name -> file, least recently used first

    def count(self, doc: dict) -> int:
        """How many documents the file that doc would go to holds so far."""
        return self.counts.get(file_name(doc), 0)

    def write(self, doc: dict):
        name = file_name(doc)
        handle = self.open.pop(name, None)
        if handle is None:
            if len(self.open) >= self.max_open:
                self.open.popitem(last=False)[1].close()
            handle = open(self.folder / name, "a" if name in self.counts else "w", encoding="utf-8")
        self.open[name] = handle
        handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self):
        for handle in self.open.values():
            handle.close()
        self.open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def labels_by_lang(counts: Counter, top: int = 1000) -> dict:
    """{lang: {label: documents}}, the `top` most frequent labels of each language: what the
    fine-tuning tasks can use (the plan stage reads it from the ingest metrics)."""
    out: dict[str, dict] = defaultdict(dict)
    for (lang, label), n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if len(out[lang]) < top:
            out[lang][str(label)] = n
    return dict(out)
