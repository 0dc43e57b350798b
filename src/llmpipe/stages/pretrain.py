"""pretrain: train the network (model.arch) on next-token prediction (llmpipe.training.pretraining).

Reads: data/tokens/{train,val}.bin, meta.json, tokenizer.json.
Writes: models/pretrain/ (model.safetensors, config.json, tokenizer.json, params.json);
  metrics/pretrain.json; plots/pretrain/; per-step metrics to MLflow; resume checkpoints under
  checkpoints/pretrain/.
Run: python -m llmpipe.stages.pretrain
"""

from pathlib import Path

from llmpipe.runner import Sections, Stage, stage_main
from llmpipe.training.pretraining import pretrain

PARAMS = ["seed", "model", "pretrain"]
SUMMARY = ["val_bpb", "val_loss", "train_loss", "steps", "tokens_seen", "params"]  # runner.summary


def run(cfg: Sections, root: Path) -> dict:
    return pretrain(cfg.pretrain, cfg.hardware, cfg.seed, cfg.nested(PARAMS), root)


def stage() -> Stage:
    return Stage("pretrain", run, params=PARAMS, hardware=True, summary=SUMMARY)


if __name__ == "__main__":
    stage_main(stage)
