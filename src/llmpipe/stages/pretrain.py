"""pretrain: train the network (model.arch) on its objective: next-token prediction for a decoder,
masked tokens for the encoder, corrupted spans for the encoder-decoder (llmpipe.training.pretraining,
llmpipe.families.objectives).

Reads: data/tokens/{train,val}/*.bin (a split's shards, read as one stream), meta.json, tokenizer.json.
Writes: models/pretrain/ (model.safetensors, config.json, tokenizer.json, params.json);
  metrics/pretrain.json; plots/pretrain/; per-step metrics to MLflow; resume checkpoints under
  checkpoints/pretrain/.
Run: python -m llmpipe.stages.pretrain
"""

from pathlib import Path

from llmpipe.logs import setup_logging
from llmpipe.runner import Sections, Stage, stage_main

PARAMS = ["seed", "model", "pretrain"]
SUMMARY = ["val_bpb", "val_loss", "train_loss", "steps", "tokens_seen", "params"]  # runner.summary


def run(cfg: Sections, root: Path) -> dict:
    # heavy (torch, Lightning): imported where used, so the stage starts fast (a bad params.yaml fails at once)
    from llmpipe.evaluation.lm_metrics import val_bits_by_context
    from llmpipe.training.pretraining import pretrain

    setup_logging()  # again: importing Lightning set its loggers to INFO and put its warning filters first
    metrics, trained = pretrain(cfg.pretrain, cfg.hardware, cfg.seed, cfg.nested(PARAMS), root)
    context_bits = {}
    if trained is not None and "val_bpb" in metrics:  # bits per token by how much of its document it had read
        tokens_dir = root / "data" / "tokens"
        context_bits = val_bits_by_context(trained.eval(), tokens_dir, cfg.model.block_size)
    return {**metrics, "val_context_bits": context_bits}


def stage() -> Stage:
    return Stage(
        "pretrain", run, params=PARAMS, hardware=True, summary=SUMMARY,
        reads=["data/tokens"], writes=["models/pretrain"], plots=["plots/pretrain"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
