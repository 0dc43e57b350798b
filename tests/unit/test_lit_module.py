import math

import pytest
import torch

from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.training.lit_module import LitLM

from ..conftest import optim_config


def lm(**optim) -> LitLM:
    torch.manual_seed(0)
    net = GPT(
        GPTConfig(
            vocab_size=50, block_size=8, n_layer=1, n_head=2, n_kv_head=2, d_model=16, tie_embeddings=True, dropout=0.0
        )
    )
    return LitLM(net, optim_config(lr=1e-3, max_steps=10, **optim))


def test_a_non_finite_loss_stops_training_naming_the_step():
    module = lm()
    with torch.no_grad():
        module.net.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    x = torch.randint(0, 50, (2, 8))
    with pytest.raises(FloatingPointError, match="training loss is nan at step 0"):
        module.training_step((x, x), 0)


def test_weight_decay_only_on_matrices():
    module = lm(weight_decay=0.1)
    optimizer = module.configure_optimizers()["optimizer"]
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == module.net.num_params(non_embedding=False)


def test_initial_loss_is_near_a_uniform_guess():
    module = lm()
    x = torch.randint(0, 50, (4, 8))
    assert module.loss((x, x)).item() == pytest.approx(math.log(50), abs=0.3)
