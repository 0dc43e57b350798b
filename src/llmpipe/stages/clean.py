"""clean: screen bad records, normalize, identify language, apply the quality rules, scrub PII and
remove exact and near duplicates, on datatrove's executors (see llmpipe.clean_pipeline).

Reads: data/raw/*.jsonl; data/quarantine/ingest.jsonl (only to count it).
With clean.enabled false (the data-scale study's "cleaning off"), bad records are still screened
into quarantine, but data/clean/docs.jsonl holds every other record as ingest wrote it, each with the record
cleaning would have kept in `held_out` (null where a rule removed it); tokenize trains on the raw
text and holds out the cleaned records, so models trained both ways are scored on the same documents.

Writes: data/clean/docs.jsonl (kept, sorted by id); data/removed/<rule>.jsonl (every removed
document, by rule); data/quarantine/clean.jsonl (bad records, with reason and source position);
metrics/clean.json; plots/clean/lengths.csv and .png; reports/clean.md.
Run: python -m llmpipe.stages.clean
"""

import csv
import logging
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from llmpipe import clean_report, tracking
from llmpipe.atomic import replace_dir, replace_file
from llmpipe.clean_pipeline import read_folder, run_jobs
from llmpipe.datasets import read_jsonl, write_jsonl
from llmpipe.runner import stage_main

STAGE = "clean"
SECTIONS = ["seed", STAGE]
SUMMARY = [
    "docs_in",
    "docs_out",
    "bytes_in",
    "bytes_out",
    "removed/*/docs",
    "quarantined/*",
    "ingest_quarantined/*",
]  # what its summary line shows (runner.summary)
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params
KEPT_FIELDS = ("id", "text", "source", "lang", "label")
log = logging.getLogger("llmpipe")
WORK = Path("data") / "work" / "clean"  # datatrove's intermediate files and logs, rewritten every run


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
    cleaned = {r["id"]: {k: r.get(k) for k in KEPT_FIELDS} for r in kept}
    bad = {r["id"] for r in quarantined}
    docs = [
        {**{k: r.get(k) for k in KEPT_FIELDS}, "held_out": cleaned.get(r["id"])}
        for path in sorted((root / "data" / "raw").glob("*.jsonl"))
        for r in read_jsonl(path)
        if r["id"] not in bad
    ]
    return sorted(docs, key=lambda r: r["id"])


def ingest_quarantine(root: Path) -> Counter:
    path = root / "data" / "quarantine" / "ingest.jsonl"
    return Counter(record["reason"] for record in read_jsonl(path)) if path.exists() else Counter()


def run(params: dict, root: Path) -> dict:
    raw = root / "data" / "raw"
    if not sorted(raw.glob("*.jsonl")):
        raise ValueError(f"no input: {raw} holds no .jsonl files (run ingest first)")
    with tqdm(total=None, desc="clean", unit=" jobs", leave=False, disable=False) as progress:
        run_jobs(params[STAGE], params["seed"], raw, root / WORK, progress)
    return write_outputs(params, root)


def write_outputs(params: dict, root: Path) -> dict:
    """The stage's outputs and metrics from the finished jobs in data/work/clean."""
    cfg = params[STAGE]
    kept, removed, quarantined = collect(root / WORK)
    docs_in = sum(1 for path in (root / "data" / "raw").glob("*.jsonl") for _ in path.open(encoding="utf-8"))
    clean_report.account(docs_in, kept, removed, quarantined)

    if cfg["enabled"]:
        docs = [{k: r.get(k) for k in KEPT_FIELDS} for r in kept]
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
    rows = clean_report.length_histogram(kept, removed, quarantined, cfg["language"]["keep"])
    with replace_file(root / "plots" / "clean" / "lengths.csv") as tmp, tmp.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    with replace_file(root / "plots" / "clean" / "lengths.png") as tmp:
        clean_report.histogram_png(rows, tmp)
    with replace_file(root / "reports" / "clean.md") as tmp:
        tmp.write_text(clean_report.report(metrics, removed, quarantined), encoding="utf-8")
    plots = root / "plots" / "clean"
    tracking.log_artifacts([root / "reports" / "clean.md", plots / "lengths.csv", plots / "lengths.png"], "clean")
    return metrics


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED, SUMMARY)


if __name__ == "__main__":
    main()
