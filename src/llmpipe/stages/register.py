"""register: log the fine-tuned classifier to MLflow, register a new version, point the
`challenger` alias at it, and tag the version with the evaluation metrics it was judged by.

Reads: models/finetune/, metrics/evaluate.json. Writes: metrics/register.json (name, version, run id).
Run: python -m llmpipe.stages.register
"""

import json
from pathlib import Path

import mlflow

from llmpipe import registry, tracking
from llmpipe.runner import stage_main

STAGE = "register"
SECTIONS = [STAGE]
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params


def run(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    evaluation = json.loads((root / "metrics" / "evaluate.json").read_text())
    active = mlflow.active_run()
    if active is None:
        raise ValueError("register needs an active MLflow run: run it through `python -m llmpipe.stages.register`")
    tags = {f"eval/{key}": value for key, value in tracking.flatten(evaluation, sep="/").items()}
    tags["git_commit"] = tracking.git_commit(root)
    version, uri = registry.log_and_register(str(root / "models" / "finetune"), cfg["model_name"], cfg["alias"], tags)
    return {
        "model_name": cfg["model_name"],
        "version": int(version),
        "alias": cfg["alias"],
        "run_id": active.info.run_id,
        "model_uri": uri,
    }


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED)


if __name__ == "__main__":
    main()
