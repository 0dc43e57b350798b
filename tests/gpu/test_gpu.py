"""GPU paths: bf16 autocast training steps and the Lightning module on CUDA. Skipped without a GPU."""

import pytest
import torch

from llmpipe.lit_module import LitLM, OptimConfig
from llmpipe.model import GPT, GPTConfig

pytestmark = pytest.mark.gpu


def test_bf16_training_steps_reduce_loss_on_cuda():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=256, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=128)
    net = GPT(cfg).cuda()
    module = LitLM(net, OptimConfig(lr=3e-3, max_steps=30, warmup_steps=3))
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
