"""The recurrent language models (RNN, LSTM, GRU): shapes, causality, parameter and FLOP formulas,
learning, classification with padding, export round trip and generation through llmpipe's code."""

import pytest
import torch

from llmpipe.data.tokenizer import train_bpe
from llmpipe.families import arch_names, classifier, family, language_model, model_config
from llmpipe.networks.recurrent import ARCHS, RecurrentConfig
from llmpipe.registry.export import load_model_dir, save_model_dir
from llmpipe.registry.inference import generate_text
from llmpipe.training.lit_module import LitLM

from ..conftest import optim_config

ALL = sorted(ARCHS)


def config(arch: str, **overrides) -> RecurrentConfig:
    return RecurrentConfig(
        **{
            "tie_embeddings": True,
            "dropout": 0.0,
            "vocab_size": 50,
            "arch": arch,
            "block_size": 24,
            "n_layer": 2,
            "d_model": 32,
            **overrides,
        }
    )


@pytest.mark.parametrize("arch", ALL)
def test_logits_shape_and_causality(arch):
    torch.manual_seed(0)
    net = language_model(config(arch)).eval()
    x = torch.randint(0, 50, (2, 24))
    y = x.clone()
    y[:, 15:] = torch.randint(0, 50, (2, 9))  # change only the future of position 14
    with torch.no_grad():
        a, b = net(x), net(y)
    assert a.shape == (2, 24, 50)
    assert torch.equal(a[:, :15], b[:, :15]) and not torch.allclose(a[:, 15:], b[:, 15:])


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("tie", [True, False])
def test_parameter_count_and_flops_match_the_formulas(arch, tie):
    cfg = config(arch, tie_embeddings=tie)
    net = language_model(cfg)
    assert cfg.num_params() == net.num_params(non_embedding=False)
    matmul_weights = sum(p.numel() for name, p in net.named_parameters() if p.dim() == 2 and "embed" not in name)
    assert cfg.flops_per_token() == 6 * (matmul_weights + (50 * 32 if tie else 0))


def test_the_model_section_picks_the_architecture():
    section = {"arch": "gru", "block_size": 16, "n_layer": 1, "n_head": 4, "n_kv_head": 4, "d_model": 8,
               "tie_embeddings": True, "dropout": 0.0}  # fmt: skip
    cfg = model_config(section, vocab_size=300)
    assert isinstance(cfg, RecurrentConfig) and cfg.arch == "gru" and cfg.vocab_size == 300
    assert model_config(cfg.to_dict()) == cfg  # what llmpipe.json saves reads back the same
    with pytest.raises(ValueError, match="model.arch='mamba'"):
        model_config({**section, "arch": "mamba"}, vocab_size=300)
    with pytest.raises(ValueError, match=r"did you mean gru\?"):
        model_config({**section, "arch": "gruu"}, vocab_size=300)
    # the names the installed families register (no torch needed to read them) are those they build
    assert set(ARCHS) <= set(arch_names()) and {"transformer", "bert", "t5"} <= set(arch_names())
    assert all(arch in family(arch).archs for arch in arch_names())


@pytest.mark.parametrize("arch", ALL)
def test_each_learns_a_repeating_sequence(arch):
    torch.manual_seed(0)
    module = LitLM(language_model(config(arch)), optim_config(lr=1e-2, max_steps=60))
    optimizer = module.configure_optimizers()["optimizer"]
    pattern = torch.arange(7).repeat(8)[:25]  # 0..6 over and over: each token predicts the next
    x = torch.stack([pattern.roll(-s) for s in range(8)])
    losses = []
    for _ in range(60):
        loss = module.loss((x[:, :-1], x[:, 1:]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


@pytest.mark.parametrize("arch", ALL)
def test_classifier_ignores_padding_after_the_last_token(arch):
    torch.manual_seed(0)
    net = classifier(config(arch), num_labels=3).eval()
    ids = torch.randint(2, 50, (1, 10))
    padded = torch.cat([ids, torch.ones(1, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(net(ids, torch.tensor([10])), net(padded, torch.tensor([10])), atol=1e-6)


@pytest.mark.parametrize("arch", ALL)
def test_export_round_trips_and_generates(tmp_path, arch):
    torch.manual_seed(0)
    texts = ["The quick brown fox jumps over the lazy dog.", "床前明月光，疑是地上霜。"] * 20
    tokenizer = train_bpe(texts, vocab_size=300)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    cfg = config(arch, vocab_size=tokenizer.get_vocab_size())
    for name, net, extra in (
        ("lm", language_model(cfg), {}),
        ("cls", classifier(cfg, 2), {"labels": ["a", "b"], "max_tokens": 16, "lang": "en"}),
    ):
        save_model_dir(tmp_path / name, net, cfg, tmp_path / "tokenizer.json", {}, extra=extra)
        assert not (tmp_path / name / "config.json").exists()  # transformers has no such architecture
        loaded, saved, _ = load_model_dir(tmp_path / name)
        assert saved["model"]["arch"] == arch
        for key, value in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    lm, _, tok = load_model_dir(tmp_path / "lm")
    text = generate_text(lm, tok, "The quick", max_new_tokens=8, temperature=0.0)
    assert isinstance(text, str)
