import pytest
import torch

from llmpipe.model import GPT, GPTClassifier, GPTConfig, apply_rope, rope_tables


def small(**overrides) -> GPTConfig:
    return GPTConfig(
        **{"vocab_size": 97, "block_size": 16, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_model": 32, **overrides}
    )


def test_logits_shape_and_causality():
    torch.manual_seed(0)
    net = GPT(small()).eval()
    idx = torch.randint(0, 97, (2, 12))
    logits = net(idx)
    assert logits.shape == (2, 12, 97)
    changed = idx.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 97  # edit the future only
    assert torch.allclose(net(changed)[:, :8], logits[:, :8], atol=1e-6)
    assert not torch.allclose(net(changed)[:, 8:], logits[:, 8:])


def test_tied_embeddings_share_storage_and_untied_do_not():
    tied, untied = GPT(small(tie_embeddings=True)), GPT(small(tie_embeddings=False))
    assert tied.lm_head.weight.data_ptr() == tied.embed_tokens.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.embed_tokens.weight.data_ptr()
    assert untied.num_params(non_embedding=False) - tied.num_params(non_embedding=False) == 97 * 32


def test_rope_preserves_norm_and_relative_positions():
    cfg = small()
    cos, sin = rope_tables(cfg)
    q, k = torch.randn(1, 1, 1, cfg.head_dim), torch.randn(1, 1, 1, cfg.head_dim)
    rotated = apply_rope(q.expand(1, 1, 16, -1), cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 16), atol=1e-5)
    # q.k after rotation depends only on the distance between positions
    rq, rk = apply_rope(q.expand(1, 1, 16, -1), cos, sin), apply_rope(k.expand(1, 1, 16, -1), cos, sin)
    dot = lambda i, j: (rq[0, 0, i] * rk[0, 0, j]).sum()  # noqa: E731
    assert torch.allclose(dot(5, 2), dot(9, 6), atol=1e-5)


def test_classifier_ignores_padding_after_the_last_token():
    torch.manual_seed(0)
    net = GPTClassifier(small(), num_labels=3).eval()
    ids = torch.randint(0, 97, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    short = net(ids, torch.tensor([6]))
    long = net(padded, torch.tensor([6]))
    assert short.shape == (1, 3)
    assert torch.allclose(short, long, atol=1e-6)


def test_invalid_config_names_every_problem():
    with pytest.raises(ValueError) as err:
        GPTConfig(vocab_size=10, d_model=30, n_head=4, n_kv_head=3)
    assert "d_model=30" in str(err.value) and "n_kv_head=3" in str(err.value)
