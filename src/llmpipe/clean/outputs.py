"""The clean stage's outputs from datatrove's finished jobs, written as they are read, so that memory
holds one record at a time: data/clean/<shard>.jsonl (kept, one shard per clean task, in the order
the task met them), data/removed/<rule>.jsonl, data/quarantine/clean.jsonl, the length histogram
(plots/clean/) and reports/clean.md, with every record accounted for (report.Tally.account).

With clean.enabled false (the data-scale study's "cleaning off"), bad records are still screened
into quarantine, but data/clean holds every other record as ingest wrote it (a shard per raw file),
each with the record cleaning would have kept in `held_out` (null where a rule removed it);
tokenize trains on the raw text and holds out the cleaned records, so both models are scored on the
same documents. That mode joins raw and kept records by id in memory: it is for corpora of a study's
size, not for a large corpus.
"""

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from llmpipe.atomic import replace_dir, replace_file
from llmpipe.clean import report
from llmpipe.jsonl import iter_folder, iter_jsonl, write_jsonl
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


def flat_records(folder: Path) -> Iterator[dict]:
    return map(flat, iter_folder(folder))


def write_kept(work: Path, out: Path, tally: report.Tally):
    """data/clean: each task's kept records as its own shard, with only the fields that go on."""
    for path in sorted((work / "kept").glob("*.jsonl")):
        write_jsonl(out / path.name, map(kept_fields, tallied(map(flat, iter_jsonl(path)), tally.add_kept)))


def write_removed(work: Path, out: Path, tally: report.Tally):
    """data/removed/<rule>.jsonl: every removed record under the rule that removed it."""
    with ExitStack() as opened:
        files: dict[str, object] = {}
        for folder in sorted((work / "removed").glob("*")):
            for record in flat_records(folder):
                rule = record.pop("filter_reason", folder.name)
                tally.add_removed(rule, record)
                if rule not in files:
                    files[rule] = opened.enter_context((out / f"{rule}.jsonl").open("w", encoding="utf-8"))
                files[rule].write(json.dumps(record, ensure_ascii=False) + "\n")


def tallied(records: Iterator[dict], add) -> Iterator[dict]:
    """The records, each counted by `add` (a Tally method) on its way to being written."""
    for record in records:
        add(record)
        yield record


def write_uncleaned(root: Path, work: Path, out: Path):
    """clean.enabled=false: every raw record that screening let through, as ingest wrote it (no
    normalization, quality, language, PII or dedup rule applied), with its cleaned record, if kept."""
    cleaned = {r["id"]: kept_fields(r) for r in flat_records(work / "kept")}
    bad = {r["id"] for r in flat_records(work / "quarantine")}
    for i, path in enumerate(sorted((root / "data" / "raw").glob("*.jsonl"))):
        docs = ({**kept_fields(r), "held_out": cleaned.get(r["id"])} for r in iter_jsonl(path) if r["id"] not in bad)
        write_jsonl(out / f"{i:05d}.jsonl", docs)
    return len(cleaned)


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def ingest_quarantine(root: Path) -> Counter:
    path = root / "data" / "quarantine" / "ingest.jsonl"
    return Counter(record["reason"] for record in iter_jsonl(path)) if path.exists() else Counter()


def near_pair_stats(work: Path) -> dict:
    """The near_pairs job's counts (datatrove's merged stats.json): candidate pairs compared, pairs
    confirmed, and documents that reached clean.dedup.max_compare unmatched (compare_capped)."""
    stats = json.loads((work / "logs" / "near_pairs" / "stats.json").read_text())
    counts = next(step["stats"] for step in stats if "near-duplicate pairs" in step["name"])
    total = lambda v: v["total"] if isinstance(v, dict) else v  # noqa: E731 (datatrove's stat or a number)
    return {key: total(counts.get(key, 0)) for key in ("candidates", "confirmed", "compare_capped")}


def write_outputs(cfg: Clean, root: Path, work: Path) -> dict:
    """The clean stage's outputs and metrics from the finished jobs in `work`."""
    tally = report.Tally(cfg.language.keep)
    with ExitStack() as outputs:  # all three outputs replace the old ones together, once accounted for
        kept_tmp = outputs.enter_context(replace_dir(root / "data" / "clean"))
        removed_tmp = outputs.enter_context(replace_dir(root / "data" / "removed"))
        quarantine_tmp = outputs.enter_context(replace_file(root / "data" / "quarantine" / "clean.jsonl"))
        if cfg.enabled:
            write_kept(work, kept_tmp, tally)
        else:
            for record in flat_records(work / "kept"):
                tally.add_kept(record)
            cleaned = write_uncleaned(root, work, kept_tmp)
            log.warning("clean.enabled is false: the raw documents go on, cleaning kept %d", cleaned)
        write_removed(work, removed_tmp, tally)
        write_jsonl(quarantine_tmp, tallied(flat_records(work / "quarantine"), tally.add_quarantined))
        tally.account(sum(count_lines(path) for path in (root / "data" / "raw").glob("*.jsonl")))

    metrics = tally.metrics(ingest_quarantine(root))
    if cfg.dedup.near:  # how much comparing near-duplicate confirmation took, and what it left out
        metrics["near_pairs"] = near_pair_stats(work)
    rows = tally.length_histogram()
    with replace_file(root / "plots" / "clean" / "lengths.csv") as tmp, tmp.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    with replace_file(root / "plots" / "clean" / "lengths.png") as tmp:
        report.histogram_png(rows, tmp)
    with replace_file(root / "reports" / "clean.md") as tmp:
        tmp.write_text(report.report(metrics, tally), encoding="utf-8")
    return metrics
