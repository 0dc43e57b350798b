"""plan: before any cleaning or training, say which fine-tuning tasks this corpus can feed.

Each task's needs (llmpipe.data.task_support) are checked against the counts ingest recorded: its
languages and, per language, its labels. A task the corpus cannot feed is listed with the reason; its
finetune, evaluate_task and register_task stages then record that they skipped it (and why) instead
of failing after pretraining. The fine-tuning stage checks again on the cleaned training split, which
has the final word.

Reads: metrics/ingest.json.
Writes: metrics/plan.json ({task: "runs" or the reason it is skipped}).
Run: python -m llmpipe.stages.plan
"""

import json
import logging
from pathlib import Path

from llmpipe.data.task_support import unsupported_reason
from llmpipe.runner import Sections, Stage, stage_main

log = logging.getLogger("llmpipe")
INGEST_METRICS = "metrics/ingest.json"  # what it reads
SUMMARY = ["runs", "skipped_tasks", "tasks/*"]


def run(cfg: Sections, root: Path) -> dict:
    facts = json.loads((root / INGEST_METRICS).read_text(encoding="utf-8"))
    splits = {"val": cfg.tokenize.val_fraction, "test": cfg.tokenize.test_fraction}
    if cfg.tokenize.split_by == "field":  # the corpus's own split field decides, not the fractions
        splits = {"val": 1.0, "test": 1.0}
    plan = {}
    for task in cfg.finetune.tasks:
        reason = unsupported_reason(task, cfg.finetune[task], facts, splits)
        plan[task] = "runs" if reason is None else f"skipped: {reason}"
        (log.info if reason is None else log.warning)("task %s: %s", task, plan[task])
    if not plan:
        log.info("no fine-tuning task (finetune.tasks is empty): only the language model is trained and registered")
    runs = sum(verdict == "runs" for verdict in plan.values())
    return {"tasks": plan, "runs": runs, "skipped_tasks": len(plan) - runs}


def stage() -> Stage:
    return Stage("plan", run, params=["finetune", "tokenize"], summary=SUMMARY, reads=[INGEST_METRICS])


if __name__ == "__main__":
    stage_main(stage)
