"""pretrain: train the decoder-only Transformer on next-token prediction.

Reads: data/tokens/{train,val}.bin, meta.json, tokenizer.json.
Writes: models/pretrain/ (model.safetensors, config.json, tokenizer.json, params.json);
  metrics/pretrain.json; per-step metrics to MLflow; resume checkpoints under checkpoints/pretrain/.
Run: python -m llmpipe.stages.pretrain
"""

import json
import math
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from llmpipe import evaluation, networks, training
from llmpipe.datasets import (
    RandomWindows,
    ResumableLoader,
    SequentialWindows,
    document_fraction,
    load_tokens,
    pad_windows,
)
from llmpipe.export import save_model_dir
from llmpipe.lit_module import LitLM, OptimConfig
from llmpipe.runner import stage_main
from llmpipe.throughput import SpeedMonitor

STAGE = "pretrain"
SECTIONS = ["seed", "model", STAGE]
SUMMARY = [
    "val_bpb",
    "val_loss",
    "train_loss",
    "steps",
    "tokens_seen",
    "params",
]  # what its summary line shows (runner.summary)
LOGGED = ["trainer"]  # hardware: logged to MLflow, not a DVC param


def run(params: dict, root: Path) -> dict:
    cfg, hardware, seed = params[STAGE], params["trainer"], params["seed"]
    tokens_dir = root / "data" / "tokens"
    meta = json.loads((tokens_dir / "meta.json").read_text())
    model_cfg = networks.model_config(params["model"], meta["vocab_size"])
    # pretrain.data_fraction: the data-scale study's D (llmpipe.scaling); 1.0 is the whole split
    train_tokens = document_fraction(load_tokens(tokens_dir, "train"), meta["eot_id"], cfg["data_fraction"], seed)
    batch_size, max_steps = training.token_budget(cfg, model_cfg.block_size, len(train_tokens))
    micro_batch, accumulate = training.batch_split(batch_size, hardware)
    L.seed_everything(seed, workers=True, verbose=False)

    net = training.compile_model(networks.language_model(model_cfg), hardware)
    val = meta["splits"]["val"]
    optim = OptimConfig.from_section(cfg, max_steps=max_steps)
    module = LitLM(net, optim, task="lm", tokens_per_byte=val["tokens"] / val["bytes"])
    train_set = RandomWindows(train_tokens, model_cfg.block_size, max_steps * batch_size, seed)
    loader_args = {
        "batch_size": micro_batch,
        "num_workers": hardware["num_workers"],
        "pin_memory": hardware["accelerator"] == "gpu",
    }
    # The randomness is in the windows; the loader's position is saved in checkpoints. Checkpoints
    # are taken after optimizer steps, when global_step * accumulate micro-batches have been used.
    train_loader = ResumableLoader(train_set, consumed=lambda: trainer.global_step * accumulate, **loader_args)
    val_loader = DataLoader(
        SequentialWindows(load_tokens(tokens_dir, "val"), model_cfg.block_size), collate_fn=pad_windows, **loader_args
    )

    checkpoint_dir = (
        root
        / "checkpoints"
        / STAGE
        / training.fingerprint({k: params[k] for k in SECTIONS}, training.file_digest(tokens_dir / "train.bin"))
    )
    # Saved after each validation (every val_every steps), so a checkpoint holds that validation too.
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=1)  # top 1 = the latest
    curves = training.CurveWriter(root / "plots" / STAGE)
    speed = SpeedMonitor(batch_size * model_cfg.block_size, model_cfg.flops_per_token())
    # val_batches counts batches of batch_size windows; every rank validates on all of them, so
    # the validation loss does not depend on the hardware.
    val_micro_batches = cfg["val_batches"] * batch_size // micro_batch
    trainer = training.build_trainer(
        hardware, cfg, accumulate, [checkpoint, curves, speed], max_steps, limit_val_batches=val_micro_batches
    )
    training.fit(trainer, module, train_loader, val_loader, checkpoint_dir)
    train_loss = curves.train[-1]["loss"]  # the last logged step's, also when resuming a finished run
    final = trainer.validate(module, val_loader, verbose=False)[0]

    trained = training.gathered(net, lambda: networks.language_model(model_cfg))
    context_bits = {}
    if trainer.is_global_zero:  # one process writes the export
        save_model_dir(
            root / "models" / STAGE, trained, model_cfg, tokens_dir / "tokenizer.json", {k: params[k] for k in SECTIONS}
        )
        context_bits = val_bits_by_context(trained.eval(), tokens_dir, meta["eot_id"], model_cfg.block_size)

    tokens_seen = max_steps * batch_size * model_cfg.block_size
    return {
        "train_loss": train_loss,
        "val_loss": final["val/loss"],
        "val_bpb": final["val/bpb"],
        "val_ppl": math.exp(final["val/loss"]),
        "params": model_cfg.num_params(),
        "params_non_embedding": model_cfg.num_params() - model_cfg.vocab_size * model_cfg.d_model,
        "steps": max_steps,
        "train_tokens": len(train_tokens),  # the distinct tokens it could see (data_fraction of the split)
        "train_cleaned": meta.get("train_cleaned", True),  # false: trained on raw text (clean.enabled=false)
        "val_context_bits": context_bits,  # bits per token by how much of its document the model had read
        "tokens_seen": tokens_seen,
        "flops": tokens_seen * model_cfg.flops_per_token(),
    }


def val_bits_by_context(net, tokens_dir: Path, eot_id: int, block_size: int) -> dict[str, float]:
    """The whole val split's loss per token, grouped by context length (evaluation.bits_by_context):
    what the architecture comparison plots to show how far back each model reads."""
    tokens = load_tokens(tokens_dir, "val")
    nats = evaluation.token_nats(net, tokens, block_size)
    return evaluation.bits_by_context(nats, evaluation.context_lengths(tokens, block_size, eot_id), block_size)


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED, SUMMARY)


if __name__ == "__main__":
    main()
