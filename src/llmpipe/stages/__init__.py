"""One module per DVC stage, each at most 80 lines: it names the params sections it declares to DVC,
hands them (typed) to the library, and returns its metrics. The module's name is the stage's name in
dvc.yaml, its MLflow run and its metrics file; a stage run once per fine-tuning task (dvc.yaml's
`foreach`) takes the task as its argument: `finetune@topics` is `python -m llmpipe.stages.finetune
topics`, MLflow run `finetune/topics`, metrics/finetune/topics.json. Each module has `stage()` (or
`stage(task)`) giving the runner's Stage."""

import importlib

from llmpipe.lifetime import die_with_dvc

die_with_dvc()  # a stage process started by DVC dies with it (llmpipe.lifetime), from its first import on

# In pipeline order; PER_TASK stages run once per name in finetune.tasks.
STAGES = (
    "ingest",
    "plan",
    "clean",
    "tokenize",
    "pretrain",
    "finetune",
    "evaluate",
    "evaluate_task",
    "evaluate_harness",
    "report",
    "register",
    "register_task",
)
PER_TASK = {"finetune", "evaluate_task", "register_task"}


def stages(tasks: list[str], only: list[str] | None = None) -> list:
    """The runner's Stage of every DVC stage (or of the modules in `only`), in pipeline order."""
    found = []
    for name in STAGES:
        if only is not None and name not in only:
            continue
        make = importlib.import_module(f"llmpipe.stages.{name}").stage
        found += [make(task) for task in tasks] if name in PER_TASK else [make()]
    return found


def run_all(root, params: dict, only: list[str] | None = None) -> dict:
    """Every stage (or those of the modules in `only`), in order, as DVC would: {stage name: metrics}."""
    from llmpipe.runner import run_stage

    return {stage.name: run_stage(stage, root) for stage in stages(params["finetune"]["tasks"], only)}
