"""ingest: read the source corpus into data/raw/<label>.jsonl, one JSON document per line, written as
the documents arrive (one record in memory at a time).

Reads: the folder `ingest.source` (by default Debian's fortune files in /usr/share/games/fortunes).
Writes: data/raw/*.jsonl with {id, text, source, lang, label}; data/quarantine/ingest.jsonl with the
records that are not documents (reason, source position, raw content); metrics/ingest.json.
Run: python -m llmpipe.stages.ingest
"""

import json
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from llmpipe.atomic import replace_dir, replace_file
from llmpipe.data import quarantine
from llmpipe.ingest.corpus import is_bad, read_corpus
from llmpipe.ingest.pieces import split_document
from llmpipe.ingest.raw_files import LabelFiles, labels_by_lang
from llmpipe.runner import Sections, Stage, stage_main

RAW, QUARANTINE = "data/raw", "data/quarantine/ingest.jsonl"  # what it writes
SUMMARY = ["docs", "files", "docs_per_lang/*", "quarantined/*", "capped", "duplicate_ids", "decoded/*"]


def run(sections: Sections, root: Path) -> dict:
    cfg, stats = sections.ingest, Counter()
    langs, labels, quarantined = Counter(), Counter(), Counter()
    read = kept = capped = cut = 0
    with replace_dir(root / RAW) as tmp, LabelFiles(tmp) as raw:
        with (
            replace_file(root / QUARANTINE) as bad_path,
            open(bad_path, "w", encoding="utf-8") as bad,
        ):
            for doc in tqdm(read_corpus(cfg, stats), desc="ingest", unit=" docs", leave=False):
                read += 1
                if is_bad(doc):
                    bad.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    quarantined[doc["reason"]] += 1
                elif cfg.max_docs_per_file is not None and raw.count(doc) >= cfg.max_docs_per_file:
                    capped += 1  # ingest.max_docs_per_file: counted, never dropped silently
                else:
                    pieces = split_document(doc, cfg.max_doc_bytes)  # a book in one file: documents in order
                    for piece in pieces:
                        raw.write(piece)
                        langs[piece["lang"]] += 1
                        labels[piece["lang"], piece["label"]] += piece["label"] is not None
                    kept, cut = kept + 1, cut + (len(pieces) > 1)
            if not raw.counts:
                raise ValueError(f"ingest.source={cfg.source!r} holds no documents of format {cfg.format!r}")
    assert read == kept + quarantined.total() + capped, "ingest lost records"
    return {
        "docs": sum(langs.values()),
        "files": len(raw.counts),
        "docs_per_lang": dict(langs),
        "quarantined": quarantine.counts(quarantined, quarantine.INGEST),  # every reason, 0 included
        "capped": capped,
        "labels": labels_by_lang(+labels),  # what the fine-tuning tasks can use (the plan stage reads it)
        "cut_into_pieces": cut,  # texts over ingest.max_doc_bytes, each now several documents
        "source_files": {k.removeprefix("files/"): v for k, v in stats.items() if k.startswith("files/")},
        "decoded": {k.removeprefix("decoded/"): v for k, v in stats.items() if k.startswith("decoded/")},
        "duplicate_ids": stats["duplicate_ids"],  # records whose id an earlier one had (ingest.duplicate_ids)
        "texts_with_nul": stats["texts_with_nul"],  # kept: clean removes them as binary
    }


def stage() -> Stage:
    return Stage(
        "ingest", run, params=["ingest"], summary=SUMMARY, reads=["metrics/check.json"], writes=[RAW, QUARANTINE]
    )


if __name__ == "__main__":
    stage_main(stage)
