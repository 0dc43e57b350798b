"""register: log one model to MLflow, register a new version of it, point the `challenger` alias at
it, and tag the version with the evaluation metrics it was judged by (what `llmpipe promote`
compares). Target `lm` is the pretrained language model; a task name is that task's fine-tuned
model. dvc.yaml runs `lm` and one per task, so a changed task registers only its own model.

Reads: models/pretrain/ or models/finetune/<task>/; metrics/evaluate.json or metrics/evaluate/<task>.json.
Writes: metrics/register.json or metrics/register/<task>.json (name, version, URI, run id).
Run: python -m llmpipe.stages.register [lm | <task>]
"""

import json
import sys
from pathlib import Path

import mlflow

from llmpipe import registry, tracking
from llmpipe.runner import stage_main

STAGE = "register"
SUMMARY = ["model_name", "version", "alias"]  # what its summary line shows (runner.summary)
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params


def sections(target: str) -> list[str]:
    return [STAGE]


def paths(target: str) -> tuple[str, str]:
    """(export directory, evaluation metrics file) of a target."""
    if target == "lm":
        return "models/pretrain", "metrics/evaluate.json"
    return f"models/finetune/{target}", f"metrics/evaluate/{target}.json"


def run_target(params: dict, root: Path, target: str) -> dict:
    cfg = params[STAGE]
    if target not in cfg["names"]:
        raise ValueError(f"register.names has no model name for {target!r}; it names {sorted(cfg['names'])}")
    export, metrics_file = paths(target)
    evaluation = json.loads((root / metrics_file).read_text())
    active = mlflow.active_run()
    if active is None:
        raise ValueError("register needs an active MLflow run: run it through `python -m llmpipe.stages.register`")
    tags = {registry.EVAL_TAG_PREFIX + key: value for key, value in tracking.flatten(evaluation, sep="/").items()}
    tags["git_commit"] = tracking.git_commit(root)
    name = cfg["names"][target]
    version, uri = registry.log_and_register(root / export, name, cfg["alias"], tags)
    return {
        "alias": cfg["alias"],
        "run_id": active.info.run_id,
        "model_name": name,
        "version": int(version),
        "model_uri": uri,
    }


def stage_name(target: str) -> str:
    return STAGE if target == "lm" else f"{STAGE}/{target}"


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "lm"
    stage_main(
        stage_name(target), lambda params, root: run_target(params, root, target), sections(target), LOGGED, SUMMARY
    )


if __name__ == "__main__":
    main()
