"""clean: screen bad records, normalize, identify language, apply the quality rules, scrub PII and
remove exact and near duplicates, on datatrove's executors (llmpipe.clean.pipeline), then
write what was kept, removed and quarantined (llmpipe.clean.outputs).

Reads: data/raw/*.jsonl; data/quarantine/ingest.jsonl (only to count it).
Writes: data/clean/<shard>.jsonl (kept: a shard per clean task, in the order the task read them);
data/removed/<rule>.jsonl (every removed document, by rule); data/quarantine/clean.jsonl (bad
records, with reason and source position);
metrics/clean.json; plots/clean/lengths.csv and .png; reports/clean.md.
Run: python -m llmpipe.stages.clean
"""

from pathlib import Path

from tqdm import tqdm

from llmpipe.clean.outputs import write_outputs
from llmpipe.clean.pipeline import run_jobs
from llmpipe.registry import tracking
from llmpipe.runner import Sections, Stage, stage_main

WORK = Path("data") / "work" / "clean"  # datatrove's intermediate files and logs, rewritten every run
SUMMARY = [
    "docs_in",
    "docs_out",
    "bytes_in",
    "bytes_out",
    "removed/*/docs",
    "quarantined/*",
    "ingest_quarantined/*",
    "near_pairs/*",
]  # what its summary line shows (runner.summary)


def run(cfg: Sections, root: Path) -> dict:
    raw = root / "data" / "raw"
    if not sorted(raw.glob("*.jsonl")):
        raise ValueError(f"no input: {raw} holds no .jsonl files (run ingest first)")
    with tqdm(total=None, desc="clean", unit=" jobs", leave=False, disable=False) as progress:
        run_jobs(cfg.clean, cfg.hardware.clean, cfg.seed, raw, root / WORK, progress)
    metrics = write_outputs(cfg.clean, root, root / WORK)
    plots = root / "plots" / "clean"
    tracking.log_artifacts([root / "reports" / "clean.md", plots / "lengths.csv", plots / "lengths.png"], "clean")
    return metrics


def stage() -> Stage:
    return Stage(
        "clean", run, params=["seed", "clean"], hardware=True, summary=SUMMARY,
        reads=["data/raw", "data/quarantine/ingest.jsonl"], plots=["plots/clean"],
        writes=["data/clean", "data/removed", "data/quarantine/clean.jsonl", "reports/clean.md"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
