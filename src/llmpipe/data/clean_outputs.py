"""The clean stage's outputs from datatrove's finished jobs: data/clean/docs.jsonl (kept, sorted by
id), data/removed/<rule>.jsonl, data/quarantine/clean.jsonl, the length histogram (plots/clean/)
and reports/clean.md, with every record accounted for (clean_report.account).

With clean.enabled false (the data-scale study's "cleaning off"), bad records are still screened
into quarantine, but data/clean/docs.jsonl holds every other record as ingest wrote it, each with
the record cleaning would have kept in `held_out` (null where a rule removed it); tokenize trains
on the raw text and holds out the cleaned records, so both models are scored on the same documents.
"""

import csv
import json
import logging
from collections import Counter
from pathlib import Path

from llmpipe.atomic import replace_dir, replace_file
from llmpipe.data import clean_report
from llmpipe.data.clean_pipeline import read_folder
from llmpipe.jsonl import read_jsonl, write_jsonl
from llmpipe.schema import Clean

KEPT_FIELDS = ("id", "text", "source", "lang", "label")
OPTIONAL_FIELDS = ("split", "part")  # kept where a document has them (its own split; its place in a long text)
log = logging.getLogger("llmpipe")


def kept_fields(record: dict) -> dict:
    """What a document keeps in data/clean: its fields, without the cleaning's own notes."""
    return {**{k: record.get(k) for k in KEPT_FIELDS}, **{k: record[k] for k in OPTIONAL_FIELDS if k in record}}


def flat(record: dict) -> dict:
    """A datatrove record ({text, id, metadata}) as one flat dict."""
    return {"id": record["id"], "text": record["text"], **record.get("metadata", {})}


def collect(work: Path) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """Kept, removed (by rule) and quarantined records from the work folder."""
    kept = sorted((flat(r) for r in read_folder(work / "kept")), key=lambda r: r["id"])
    removed: dict[str, list[dict]] = {}
    for folder in sorted((work / "removed").glob("*")):
        for record in map(flat, read_folder(folder)):
            rule = record.pop("filter_reason", folder.name)
            removed.setdefault(rule, []).append(record)
    quarantined = sorted((flat(r) for r in read_folder(work / "quarantine")), key=lambda r: r["id"])
    return kept, removed, quarantined


def uncleaned(root: Path, kept: list[dict], quarantined: list[dict]) -> list[dict]:
    """clean.enabled=false: every raw record that screening let through, as ingest wrote it (no
    normalization, quality, language, PII or dedup rule applied), with its cleaned record, if kept."""
    cleaned = {r["id"]: kept_fields(r) for r in kept}
    bad = {r["id"] for r in quarantined}
    docs = [
        {**kept_fields(r), "held_out": cleaned.get(r["id"])}
        for path in sorted((root / "data" / "raw").glob("*.jsonl"))
        for r in read_jsonl(path)
        if r["id"] not in bad
    ]
    return sorted(docs, key=lambda r: r["id"])


def ingest_quarantine(root: Path) -> Counter:
    path = root / "data" / "quarantine" / "ingest.jsonl"
    return Counter(record["reason"] for record in read_jsonl(path)) if path.exists() else Counter()


def near_pair_stats(work: Path) -> dict:
    """The near_pairs job's counts (datatrove's merged stats.json): candidate pairs compared, pairs
    confirmed, and documents that reached clean.dedup.max_compare unmatched (compare_capped)."""
    stats = json.loads((work / "logs" / "near_pairs" / "stats.json").read_text())
    counts = next(step["stats"] for step in stats if "near-duplicate pairs" in step["name"])
    total = lambda v: v["total"] if isinstance(v, dict) else v  # noqa: E731 (datatrove's stat or a number)
    return {key: total(counts.get(key, 0)) for key in ("candidates", "confirmed", "compare_capped")}


def write_outputs(cfg: Clean, root: Path, work: Path) -> dict:
    """The clean stage's outputs and metrics from the finished jobs in `work`."""
    kept, removed, quarantined = collect(work)
    docs_in = sum(1 for path in (root / "data" / "raw").glob("*.jsonl") for _ in path.open(encoding="utf-8"))
    clean_report.account(docs_in, kept, removed, quarantined)

    if cfg.enabled:
        docs = [kept_fields(r) for r in kept]
    else:
        docs = uncleaned(root, kept, quarantined)
        log.warning("clean.enabled is false: %d raw documents go on, cleaning kept %d", len(docs), len(kept))
    with replace_file(root / "data" / "clean" / "docs.jsonl") as tmp:
        write_jsonl(tmp, docs)
    with replace_dir(root / "data" / "removed") as tmp:
        for rule, records in removed.items():
            write_jsonl(tmp / f"{rule}.jsonl", sorted(records, key=lambda r: r["id"]))
    with replace_file(root / "data" / "quarantine" / "clean.jsonl") as tmp:
        write_jsonl(tmp, quarantined)

    metrics = clean_report.metrics(kept, removed, quarantined, ingest_quarantine(root))
    if cfg.dedup.near:  # how much comparing near-duplicate confirmation took, and what it left out
        metrics["near_pairs"] = near_pair_stats(work)
    rows = clean_report.length_histogram(kept, removed, quarantined, cfg.language.keep)
    with replace_file(root / "plots" / "clean" / "lengths.csv") as tmp, tmp.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    with replace_file(root / "plots" / "clean" / "lengths.png") as tmp:
        clean_report.histogram_png(rows, tmp)
    with replace_file(root / "reports" / "clean.md") as tmp:
        tmp.write_text(clean_report.report(metrics, removed, quarantined), encoding="utf-8")
    return metrics
