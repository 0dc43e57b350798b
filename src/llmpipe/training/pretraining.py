"""Pretraining: the network learns its objective (families/objectives.py: next-token prediction for
the decoders, masked tokens for the encoder, corrupted spans for the encoder-decoder) on random
windows of the train split, is validated on the val split (in bits per byte for a decoder; by its
own objective's loss for the others), and is exported to models/pretrain/ with its tokenizer.

The recipe is the stage's settings made concrete: the token budget becomes a number of optimizer
steps of pretrain.batch_tokens each; pretrain.data_fraction (the data-scale study's D) chooses which
documents of the train split it may see.
"""

import math
from pathlib import Path

import lightning as L
from torch import nn

from llmpipe.data.token_files import document_fraction, load_tokens, read_meta, split_digest, verified
from llmpipe.data.tokenizer import load_tokenizer
from llmpipe.families import family_of, language_model, model_config
from llmpipe.networks.batches import pad_windows
from llmpipe.registry.export import save_model_dir
from llmpipe.schema import Hardware, Pretrain
from llmpipe.training.checkpoints import fingerprint
from llmpipe.training.fit import Run, fit
from llmpipe.training.lit_module import LitLM, OptimConfig
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
    family = family_of(net_cfg)
    train_tokens = document_fraction(load_tokens(tokens_dir, "train"), meta["eot_id"], cfg.data_fraction, seed)
    batch_size, max_steps = token_budget(cfg, net_cfg.block_size, len(train_tokens))
    L.seed_everything(seed, workers=True, verbose=False)

    net = language_model(net_cfg)
    val = meta["splits"]["val"]
    optim = OptimConfig.from_section(cfg, max_steps=max_steps)
    module = LitLM(net, optim, tokens_per_byte=val["tokens"] / val["bytes"] if family.bits_per_byte else None)
    tokenizer_file = verified(tokens_dir, "tokenizer.json")
    val_tokens, tokenizer = load_tokens(tokens_dir, "val"), load_tokenizer(tokenizer_file)
    num_samples = max_steps * batch_size
    examples = family.pretraining_examples(net_cfg, cfg, tokenizer, train_tokens, val_tokens, num_samples, seed)
    run = Run(
        train_set=examples[0],
        batch_size=batch_size,
        steps=max_steps,
        settings=cfg,
        checkpoint_dir=root / "checkpoints" / "pretrain" / fingerprint(params, split_digest(tokens_dir, "train")),
        curves_dir=root / "plots" / "pretrain",
        val_set=examples[1],
        val_collate=pad_windows,
        val_batches=cfg.val_batches,
        callbacks=[SpeedMonitor(batch_size * net_cfg.block_size, net_cfg.flops_per_token())],
    )
    fitted = fit(module, run, hardware)
    train_loss = fitted.curves.train[-1]["loss"] if fitted.curves.train else None  # none if steps < log_every
    final = fitted.trainer.validate(module, fitted.val_loader, verbose=False)[0]
    trained = gathered(net, lambda: language_model(net_cfg))
    if fitted.trainer.is_global_zero:  # one process writes the export
        save_model_dir(root / "models" / "pretrain", trained, net_cfg, tokenizer_file, params)
    else:
        trained = None

    metrics = {
        **val_scores(family, train_loss, final),
        **size_metrics(net_cfg, max_steps * batch_size * net_cfg.block_size),
        "steps": max_steps,
        "train_tokens": len(train_tokens),  # the distinct tokens it could see (data_fraction of the split)
        "train_cleaned": meta.get("train_cleaned", True),  # false: trained on raw text (clean.enabled=false)
    }
    return metrics, trained


def val_scores(family, train_loss: float | None, final: dict) -> dict:
    """The objective and its losses; bits per byte and perplexity for a next-token loss only: a
    masked-token loss is not comparable with them (families/objectives.py)."""
    scores = {"objective": family.objective, "train_loss": train_loss, "val_loss": final["val/loss"]}
    if family.bits_per_byte:
        scores.update(val_bpb=final["val/bpb"], val_ppl=math.exp(final["val/loss"]))
    return scores


def size_metrics(net_cfg, tokens_seen: int) -> dict:
    """The model's size and the run's compute: what the scaling study plots loss against."""
    return {
        "params": net_cfg.num_params(),
        "params_non_embedding": net_cfg.num_params() - net_cfg.embedding_params(),
        "tokens_seen": tokens_seen,
        "flops": tokens_seen * net_cfg.flops_per_token(),
    }
