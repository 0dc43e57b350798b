"""Faults during training: a non-finite loss, a gradient-norm spike, a checkpoint that is not plain
weights. Each must stop or warn clearly and never damage what was saved before."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from llmpipe.data.windows import RandomWindows
from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.schema import Hardware
from llmpipe.training.fit import Run, fit
from llmpipe.training.lit_module import LitLM

from ..conftest import optim_config, typed_section

HARDWARE = typed_section("hardware", precision="32-true", micro_batch_size=4)
assert isinstance(HARDWARE, Hardware)


def setup(tmp_path: Path, steps: int = 12):
    """A tiny model and its training run (validation every 5 steps, a checkpoint after each)."""
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=64, block_size=16, n_layer=1, n_head=2, n_kv_head=2, d_model=16, tie_embeddings=True, dropout=0.0
    )
    module = LitLM(GPT(cfg), optim_config(lr=1e-3, max_steps=steps, warmup_steps=2))
    tokens = np.random.default_rng(0).integers(0, 64, 4000).astype(np.uint16)
    run = Run(
        train_set=RandomWindows(tokens, 16, steps * 4, 0),
        batch_size=4,
        steps=steps,
        settings=typed_section("pretrain", val_every=5, log_every=1, grad_clip=1.0),
        checkpoint_dir=tmp_path / "ckpt",
        curves_dir=tmp_path / "curves",
        val_set=RandomWindows(tokens, 16, 8, 1),
    )
    return module, run, run.checkpoint_dir


def test_a_nan_loss_stops_at_its_step_and_the_last_checkpoint_stays_good(tmp_path):
    module, run, ckpt = setup(tmp_path)
    original = module.loss

    def poisoned(batch):
        loss = original(batch)
        return loss * float("nan") if module.global_step == 7 else loss

    module.loss = poisoned
    with pytest.raises(FloatingPointError, match="training loss is nan at step 7"):
        fit(module, run, HARDWARE)
    saved = torch.load(ckpt / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 5  # the checkpoint after the validation at step 5
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


def test_a_gradient_norm_spike_is_logged(tmp_path, caplog):
    module, run, ckpt = setup(tmp_path)
    original = module.loss

    def spiking(batch):  # the loss scaled a thousandfold at one step: its gradients are too
        loss = original(batch)
        return loss * 1000 if module.global_step == 8 else loss

    module.loss = spiking
    with caplog.at_level(logging.WARNING, logger="llmpipe.training.lit_module"):
        fit(module, run, HARDWARE)
    spikes = [r.getMessage() for r in caplog.records if "gradient-norm spike" in r.getMessage()]
    assert len(spikes) == 1 and "at step 8" in spikes[0]


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_is_not_plain_weights_is_refused_not_executed(tmp_path):
    module, run, ckpt = setup(tmp_path)
    ckpt.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": module.state_dict(), "payload": RunsCodeWhenUnpickled(marker)}, ckpt / "last.ckpt")
    with pytest.raises(ValueError, match=r"last.ckpt cannot be loaded as plain weights \(Weights only load failed"):
        fit(module, run, HARDWARE)
    assert not marker.exists()


def test_a_damaged_checkpoint_is_refused_naming_it(tmp_path):
    module, run, ckpt = setup(tmp_path)
    ckpt.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict()}, ckpt / "last.ckpt")
    data = (ckpt / "last.ckpt").read_bytes()
    (ckpt / "last.ckpt").write_bytes(data[: len(data) // 2])  # a disk that lost the second half
    with pytest.raises(ValueError, match="last.ckpt cannot be loaded as plain weights.*delete it"):
        fit(module, run, HARDWARE)
