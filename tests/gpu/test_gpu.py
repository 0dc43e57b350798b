"""GPU paths: bf16 autocast training steps and the Lightning module on CUDA. Skipped without a GPU."""

import pytest
import torch

from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.training.lit_module import LitLM

from ..conftest import optim_config

pytestmark = pytest.mark.gpu


def test_bf16_training_steps_reduce_loss_on_cuda():
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=256, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=128, tie_embeddings=True, dropout=0.0
    )
    net = GPT(cfg).cuda()
    module = LitLM(net, optim_config(lr=3e-3, max_steps=30, warmup_steps=3))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, fused=True)
    x = torch.randint(0, 256, (8, 65), device="cuda")
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module.loss((x[:, :-1], x[:, 1:]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


def test_lightning_engine_trains_compiled_in_bf16_and_reports_mfu(tmp_path):
    # The stage's own path: fused AdamW with gradient clipping under bf16-mixed (Lightning's precision
    # plugin refuses that pair; LitLM clips itself), torch.compile, the resumable loader, SpeedMonitor.
    import numpy as np

    from llmpipe.data.windows import RandomWindows
    from llmpipe.training.fit import Run, fit
    from llmpipe.training.throughput import SpeedMonitor

    from ..conftest import typed_section

    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=256, block_size=128, n_layer=2, n_head=4, n_kv_head=2, d_model=128, tie_embeddings=True, dropout=0.0
    )
    hardware = typed_section("hardware", accelerator="gpu", precision="bf16-mixed", micro_batch_size=16, compile=True)
    tokens = np.tile(np.arange(256, dtype=np.uint16), 400)  # a learnable sequence: each token follows the last
    module = LitLM(GPT(cfg), optim_config(lr=3e-3, max_steps=60, warmup_steps=5))
    speed = SpeedMonitor(16 * cfg.block_size, cfg.flops_per_token())
    run = Run(
        train_set=RandomWindows(tokens, cfg.block_size, 60 * 16, seed=0),
        batch_size=16,
        steps=60,
        settings=typed_section("pretrain", val_every=1000, log_every=10, grad_clip=1.0),
        checkpoint_dir=tmp_path / "ckpt",
        curves_dir=tmp_path,
        callbacks=[speed],
    )
    curves = fit(module, run, hardware).curves
    assert curves.train[-1]["loss"] < curves.train[0]["loss"] - 2.0
    assert speed.latest["perf/tokens_per_s"] > 0 and 0 < speed.latest.get("perf/mfu", 0.5) < 1
    assert speed.latest["perf/peak_mem_gb"] > 0
