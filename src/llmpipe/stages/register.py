"""register: log the pretrained language model to MLflow, register a new version of it
(<register.name_prefix>-lm, or as its model family says: an encoder, whose masked-token scores do
not compare with a decoder's, as <register.name_prefix>-mlm, an encoder-decoder as
<register.name_prefix>-seq2seq), point the
`challenger` alias at it, and tag the version with the evaluation metrics it was judged by (what
`llmpipe promote` compares). Each fine-tuned model is registered by register_task.

Reads: models/pretrain/; metrics/evaluate.json.
Writes: metrics/register.json (name, version, URI, run id).
Run: python -m llmpipe.stages.register
"""

from pathlib import Path

from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["model_name", "version", "alias"]  # what its summary line shows (runner.summary)


def run(cfg: Sections, root: Path) -> dict:
    # heavy (MLflow, torch): imported where used, so the stage starts fast (a bad params.yaml fails at once)
    from llmpipe.families import family_of_section
    from llmpipe.registry.export import read_config
    from llmpipe.registry.model_registry import register_export

    # Gone while the registry changes: a kill from here on leaves DVC no output to keep, so the next
    # `dvc repro` runs register again (never its run cache: dvc.yaml marks the file persist) and it
    # reconciles the registry.
    (root / "metrics" / "register.json").unlink(missing_ok=True)
    family = family_of_section(read_config(root / "models" / "pretrain")["model"])
    name = cfg.register.model_name(family.registered_as)
    return register_export(root, "models/pretrain", "metrics/evaluate.json", name, cfg.register.alias)


def stage() -> Stage:
    return Stage(
        "register", run, params=["register"], summary=SUMMARY, reads=["models/pretrain", "metrics/evaluate.json"],
        persist_metrics=True,
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
