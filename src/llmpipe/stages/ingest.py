"""ingest: read the source corpus into data/raw/<file>.jsonl, one JSON document per line.

Reads: the folder `ingest.source` (by default Debian's fortune files in /usr/share/games/fortunes).
Writes: data/raw/*.jsonl with {id, text, source, lang, label}; data/quarantine/ingest.jsonl with the
records that are not documents (reason, source position, raw content); metrics/ingest.json.
Run: python -m llmpipe.stages.ingest
"""

import re
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

from llmpipe.atomic import replace_dir, replace_file
from llmpipe.data.corpus import is_bad, read_corpus
from llmpipe.data.pieces import split_document
from llmpipe.jsonl import write_jsonl
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["docs", "files", "docs_per_lang/*", "quarantined/*", "capped", "decoded/*"]  # runner.summary


def run(sections: Sections, root: Path) -> dict:
    cfg, stats = sections.ingest, Counter()
    records = read_corpus(cfg, stats)
    by_file: dict[str, list[dict]] = defaultdict(list)
    quarantined, read, capped, cut = [], 0, 0, 0
    for doc in tqdm(records, desc="ingest", unit=" docs", leave=False):
        read += 1
        if is_bad(doc):
            quarantined.append(doc)
            continue
        group = re.sub(r"[^\w.-]+", "_", str(doc["label"] or "unlabeled"))  # a safe file name
        if cfg.max_docs_per_file is None or len(by_file[group]) < cfg.max_docs_per_file:
            pieces = split_document(doc, cfg.max_doc_bytes)  # a book in one file: documents in order
            by_file[group] += pieces
            cut += len(pieces) > 1
        else:
            capped += 1  # ingest.max_docs_per_file: counted, never dropped silently
    if not by_file:
        raise ValueError(f"ingest.source={cfg.source!r} holds no documents of format {cfg.format!r}")
    with replace_dir(root / "data" / "raw") as tmp:
        for group, group_docs in by_file.items():
            write_jsonl(tmp / f"{group}.jsonl", group_docs)
    with replace_file(root / "data" / "quarantine" / "ingest.jsonl") as tmp:
        write_jsonl(tmp, quarantined)
    langs = Counter(doc["lang"] for group_docs in by_file.values() for doc in group_docs)
    labels = Counter((d["lang"], d["label"]) for docs in by_file.values() for d in docs if d["label"] is not None)
    kept = sum(1 for group_docs in by_file.values() for doc in group_docs if doc.get("part", 0) == 0)
    assert read == kept + len(quarantined) + capped, "ingest lost records"
    return {
        "docs": sum(langs.values()),
        "files": len(by_file),
        "docs_per_lang": dict(langs),
        "quarantined": dict(Counter(q["reason"] for q in quarantined)),
        "capped": capped,
        "labels": labels_by_lang(labels),  # what the fine-tuning tasks can use (the plan stage reads it)
        "cut_into_pieces": cut,  # texts over ingest.max_doc_bytes, each now several documents
        "source_files": {k.removeprefix("files/"): v for k, v in stats.items() if k.startswith("files/")},
        "decoded": {k.removeprefix("decoded/"): v for k, v in stats.items() if k.startswith("decoded/")},
    }


def labels_by_lang(counts: Counter, top: int = 100) -> dict:
    """{lang: {label: documents}}, the `top` most frequent labels of each language."""
    out: dict[str, dict] = defaultdict(dict)
    for (lang, label), n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if len(out[lang]) < top:
            out[lang][str(label)] = n
    return dict(out)


def stage() -> Stage:
    return Stage("ingest", run, params=["ingest"], summary=SUMMARY)


if __name__ == "__main__":
    stage_main(stage)
