"""report: the report card (llmpipe.evaluation.report_card): reports/report/report.{md,html} with
the curves, tables and samples that the training and evaluation stages left.

Reads: metrics/, plots/, reports/samples.md, reports/evaluate_task/.
Writes: reports/report/ (quotes the test split: cached by DVC, not in git); MLflow artifacts.
Run: python -m llmpipe.stages.report
"""

from pathlib import Path

from llmpipe.evaluation import report_card
from llmpipe.registry import tracking
from llmpipe.runner import Sections, Stage, stage_main

READS = [  # every task's folder, whatever the tasks are: a task added in conf/ needs no edit here
    "metrics/pretrain.json", "metrics/finetune", "metrics/evaluate.json", "metrics/evaluate_task",
    "metrics/evaluate_harness.json", "plots/pretrain", "plots/finetune", "plots/evaluate_task", "reports/samples.md",
    "reports/evaluate_task",
]  # fmt: skip


def run(cfg: Sections, root: Path) -> dict:
    out = report_card.write(root, cfg.finetune)
    tracking.log_artifacts(sorted(out.rglob("*.*")), "report")
    return {}


def stage() -> Stage:
    # finetune: its tasks and their types; no metrics of its own
    return Stage("report", run, params=["finetune"], reads=READS, writes=["reports/report"], metrics=False)


if __name__ == "__main__":
    stage_main(stage)
