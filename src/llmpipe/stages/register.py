"""register: log the pretrained language model and the fine-tuned classifier to MLflow, register a new
version of each, point the `challenger` alias at them, and tag each version with the evaluation
metrics it was judged by (what `llmpipe promote` compares).

Reads: models/pretrain/, models/finetune/, metrics/evaluate.json.
Writes: metrics/register.json (model names, versions, URIs, run id).
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
EXPORTS = {"lm": "models/pretrain", "classifier": "models/finetune"}


def run(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    evaluation = json.loads((root / "metrics" / "evaluate.json").read_text())
    active = mlflow.active_run()
    if active is None:
        raise ValueError("register needs an active MLflow run: run it through `python -m llmpipe.stages.register`")
    tags = {registry.EVAL_TAG_PREFIX + key: value for key, value in tracking.flatten(evaluation, sep="/").items()}
    tags["git_commit"] = tracking.git_commit(root)
    metrics = {"alias": cfg["alias"], "run_id": active.info.run_id}
    for kind, export in EXPORTS.items():
        name = cfg[f"{kind}_name"]
        version, uri = registry.log_and_register(root / export, name, cfg["alias"], tags)
        metrics[kind] = {"model_name": name, "version": int(version), "model_uri": uri}
    return metrics


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED)


if __name__ == "__main__":
    main()
