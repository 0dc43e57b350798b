"""The optimizers: AdamW's parameter groups, Muon beside AdamW as one optimizer that one schedule
drives, and an exact resume from its state_dict."""

import copy

import pytest
import torch

from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig
from llmpipe.training.optimizers import MuonAdamW, OptimConfig, build_optimizer, hidden_matrices

from ..conftest import optim_config

CFG = GPTConfig(
    vocab_size=64, block_size=16, n_layer=2, n_head=2, n_kv_head=1, d_model=32, tie_embeddings=True, dropout=0.0
)


def optim(kind: str, steps: int = 20) -> OptimConfig:
    return optim_config(lr=1e-2, max_steps=steps, warmup_steps=2, optimizer=kind)


def test_adamw_decays_matrices_only():
    net = GPT(CFG)
    opt = build_optimizer(net, optim("adamw"), fused=False)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])


@pytest.mark.parametrize("kind", [GPT, GPTClassifier])
def test_muon_takes_the_hidden_matrices_and_adamw_the_embeddings_heads_and_gains(kind):
    net = GPT(CFG) if kind is GPT else GPTClassifier(CFG, num_labels=3)
    opt = build_optimizer(net, optim("muon"), fused=False)
    assert isinstance(opt, MuonAdamW)
    names = {id(p): n for n, p in net.named_parameters()}
    muon = {names[id(p)] for g in opt.muon.param_groups for p in g["params"]}
    adamw = {names[id(p)] for g in opt.adamw.param_groups for p in g["params"]}
    assert muon and not muon & adamw and muon | adamw == set(names.values())  # each parameter once
    assert all(("proj" in n) for n in muon)  # attention and feed-forward projections only
    assert {n for n in adamw if "embed" in n or "score" in n or "norm" in n} == adamw
    assert len(hidden_matrices(net)) == len(muon)


def train(net, opt, sched, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, CFG.vocab_size, (4, CFG.block_size + 1), generator=g)
        net(x[:, :-1], targets=x[:, 1:]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()


def fresh(kind: str):
    torch.manual_seed(0)
    net = GPT(CFG)
    opt = build_optimizer(net, optim(kind), fused=False)
    return net, opt, torch.optim.lr_scheduler.LambdaLR(opt, optim(kind).lr_multiplier)


@pytest.mark.parametrize("kind", ["adamw", "muon"])
def test_training_resumes_bit_for_bit_from_the_state_dicts(kind):
    net, opt, sched = fresh(kind)
    train(net, opt, sched, 3)
    saved = copy.deepcopy((net.state_dict(), opt.state_dict(), sched.state_dict()))
    train(net, opt, sched, 3, seed=1)
    resumed, opt2, sched2 = fresh(kind)
    resumed.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    sched2.load_state_dict(saved[2])
    train(resumed, opt2, sched2, 3, seed=1)
    for (name, a), b in zip(net.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_one_schedule_drives_both_inner_optimizers_and_muon_learns():
    net, opt, sched = fresh("muon")
    x = torch.randint(0, CFG.vocab_size, (4, CFG.block_size + 1), generator=torch.Generator().manual_seed(0))
    before = float(net(x[:, :-1], targets=x[:, 1:]).detach())
    for _ in range(10):
        net(x[:, :-1], targets=x[:, 1:]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    lrs = {g["lr"] for g in opt.muon.param_groups + opt.adamw.param_groups}
    assert lrs == {1e-2 * optim("muon").lr_multiplier(10)}
    assert float(net(x[:, :-1], targets=x[:, 1:]).detach()) < before - 0.5


def test_an_unknown_optimizer_is_refused_by_name():
    with pytest.raises(ValueError, match="optimizer='sgd' is not one of"):
        optim_config(lr=1e-3, max_steps=1, optimizer="sgd")
