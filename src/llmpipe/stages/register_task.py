"""register_task: register one fine-tuned model (<register.name_prefix>-<task>) as register does the
language model: a new version, the `challenger` alias, its evaluation metrics as tags.

Reads: models/finetune/<task>/; metrics/evaluate_task/<task>.json.
Writes: metrics/register_task/<task>.json (name, version, URI, run id; or why it was skipped).
Run: python -m llmpipe.stages.register_task <task>
"""

import json
from pathlib import Path

from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["skipped", "model_name", "version", "alias"]  # what its summary line shows (runner.summary)


def stage(task: str) -> Stage:
    def run(cfg: Sections, root: Path) -> dict:
        # heavy (MLflow): imported where used, so the stage starts fast (a bad params.yaml fails at once)
        from llmpipe.registry.model_registry import register_export

        export, metrics = f"models/finetune/{task}", f"metrics/evaluate_task/{task}.json"
        (root / "metrics" / "register_task" / f"{task}.json").unlink(missing_ok=True)  # as register does
        skipped = json.loads((root / metrics).read_text(encoding="utf-8")).get("skipped")
        if skipped:  # nothing was trained or scored: nothing to register
            return {"skipped": skipped, "model_name": cfg.register.model_name(task)}
        return register_export(root, export, metrics, cfg.register.model_name(task), cfg.register.alias)

    return Stage(
        f"register_task/{task}", run, params=["register"], summary=SUMMARY,
        reads=[f"models/finetune/{task}", f"metrics/evaluate_task/{task}.json"], persist_metrics=True,
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage, targets=True)
