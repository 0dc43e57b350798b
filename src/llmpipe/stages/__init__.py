"""One module per DVC stage, each with a main() for `python -m`. Stages that run once per target
(finetune: each task; evaluate and register: the pretrained LM and each task, and for evaluate also the
harness and the report) take the target as
their argument and have run_target(params, root, target); the others have run(params, root)."""

STAGES = ("ingest", "clean", "tokenize", "pretrain", "finetune", "evaluate", "register")
PER_TARGET = {"finetune", "evaluate", "register"}


def targets(stage: str, params: dict) -> list[str | None]:
    """What one stage runs for: None for a single-run stage, else its targets in pipeline order."""
    if stage not in PER_TARGET:
        return [None]
    tasks = list(params["finetune"]["tasks"])
    if stage == "finetune":
        return tasks
    if stage == "evaluate":  # the harness runs on the pretrained model; the report reads all the rest
        return ["lm", *tasks, "harness", "report"]
    return ["lm", *tasks]


def run_all(root, params: dict, only: list[str] | None = None) -> dict:
    """Every stage (or those in `only`), in order, as DVC would: {stage name: metrics}."""
    import importlib

    from llmpipe.runner import run_stage

    metrics = {}
    for stage in STAGES:
        if only is not None and stage not in only:
            continue
        module = importlib.import_module(f"llmpipe.stages.{stage}")
        for target in targets(stage, params):
            if target is None:
                metrics[stage] = run_stage(stage, module.run, module.SECTIONS, root, module.LOGGED, module.SUMMARY)
                continue
            name = module.stage_name(target)
            run = lambda params, root, module=module, target=target: module.run_target(params, root, target)  # noqa: E731
            metrics[name] = run_stage(name, run, module.sections(target), root, module.LOGGED, module.SUMMARY)
    return metrics
