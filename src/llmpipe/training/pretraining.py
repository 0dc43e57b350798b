"""Pretraining: the network learns next-token prediction on random windows of the train split, is
validated on the val split in bits per byte, and is exported to models/pretrain/ with its tokenizer.

The recipe is the stage's settings made concrete: the token budget becomes a number of optimizer
steps of pretrain.batch_tokens each; pretrain.data_fraction (the data-scale study's D) chooses which
documents of the train split it may see.
"""

import math
from pathlib import Path

import lightning as L
from torch import nn

from llmpipe.data.token_files import document_fraction, load_tokens, read_meta, split_digest, verified
from llmpipe.networks.batches import pad_windows
from llmpipe.networks.build import language_model, model_config
from llmpipe.registry.export import save_model_dir
from llmpipe.schema import Hardware, Pretrain
from llmpipe.training.checkpoints import fingerprint
from llmpipe.training.fit import Run, fit
from llmpipe.training.lit_module import LitLM, OptimConfig
from llmpipe.training.loaders import RandomWindows, SequentialWindows
from llmpipe.training.throughput import SpeedMonitor
from llmpipe.training.trainer_setup import gathered, token_budget


def pretrain(cfg: Pretrain, hardware: Hardware, seed: int, params: dict, root: Path) -> tuple[dict, nn.Module | None]:
    """Train from data/tokens as `cfg` says and export to models/pretrain/; the run's metrics and the
    trained network (None in the processes of distributed training that do not write the export).
    `params` are the sections the run depends on, as params.yaml holds them (seed, model, pretrain):
    the export records them and the resume checkpoints are keyed by them."""
    tokens_dir = root / "data" / "tokens"
    meta = read_meta(tokens_dir)
    net_cfg = model_config(params["model"], meta["vocab_size"])
    train_tokens = document_fraction(load_tokens(tokens_dir, "train"), meta["eot_id"], cfg.data_fraction, seed)
    batch_size, max_steps = token_budget(cfg, net_cfg.block_size, len(train_tokens))
    L.seed_everything(seed, workers=True, verbose=False)

    net = language_model(net_cfg)
    val = meta["splits"]["val"]
    optim = OptimConfig.from_section(cfg, max_steps=max_steps)
    module = LitLM(net, optim, tokens_per_byte=val["tokens"] / val["bytes"])
    run = Run(
        train_set=RandomWindows(train_tokens, net_cfg.block_size, max_steps * batch_size, seed),
        batch_size=batch_size,
        steps=max_steps,
        settings=cfg,
        checkpoint_dir=root / "checkpoints" / "pretrain" / fingerprint(params, split_digest(tokens_dir, "train")),
        curves_dir=root / "plots" / "pretrain",
        val_set=SequentialWindows(load_tokens(tokens_dir, "val"), net_cfg.block_size),
        val_collate=pad_windows,
        val_batches=cfg.val_batches,
        callbacks=[SpeedMonitor(batch_size * net_cfg.block_size, net_cfg.flops_per_token())],
    )
    fitted = fit(module, run, hardware)
    train_loss = fitted.curves.train[-1]["loss"] if fitted.curves.train else None  # none if steps < log_every
    final = fitted.trainer.validate(module, fitted.val_loader, verbose=False)[0]

    trained = gathered(net, lambda: language_model(net_cfg))
    if fitted.trainer.is_global_zero:  # one process writes the export
        save_model_dir(root / "models" / "pretrain", trained, net_cfg, verified(tokens_dir, "tokenizer.json"), params)
    else:
        trained = None

    tokens_seen = max_steps * batch_size * net_cfg.block_size
    metrics = {
        "train_loss": train_loss,
        "val_loss": final["val/loss"],
        "val_bpb": final["val/bpb"],
        "val_ppl": math.exp(final["val/loss"]),
        **size_metrics(net_cfg, tokens_seen),
        "steps": max_steps,
        "train_tokens": len(train_tokens),  # the distinct tokens it could see (data_fraction of the split)
        "train_cleaned": meta.get("train_cleaned", True),  # false: trained on raw text (clean.enabled=false)
    }
    return metrics, trained


def size_metrics(net_cfg, tokens_seen: int) -> dict:
    """The model's size and the run's compute: what the scaling study plots loss against."""
    return {
        "params": net_cfg.num_params(),
        "params_non_embedding": net_cfg.num_params() - net_cfg.vocab_size * net_cfg.d_model,
        "tokens_seen": tokens_seen,
        "flops": tokens_seen * net_cfg.flops_per_token(),
    }
