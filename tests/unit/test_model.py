import pytest
import torch

from llmpipe.networks.shared import pool
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig, apply_rope, rope_tables


def small(**overrides) -> GPTConfig:
    return GPTConfig(
        **{
            "tie_embeddings": True,
            "dropout": 0.0,
            "vocab_size": 97,
            "block_size": 16,
            "n_layer": 2,
            "n_head": 4,
            "n_kv_head": 2,
            "d_model": 32,
            **overrides,
        }
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


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_classifier_ignores_padding_after_the_last_token(pooling):
    torch.manual_seed(0)
    net = GPTClassifier(small(), num_labels=3, pooling=pooling).eval()
    ids = torch.randint(0, 97, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    short = net(ids, torch.tensor([6]))
    long = net(padded, torch.tensor([6]))
    assert short.shape == (1, 3)
    assert torch.allclose(short, long, atol=1e-6)


def test_invalid_config_names_every_problem():
    with pytest.raises(ValueError) as err:
        GPTConfig(
            vocab_size=10, block_size=16, n_layer=1, d_model=30, n_head=4, n_kv_head=3, tie_embeddings=True, dropout=0.0
        )
    assert "d_model=30" in str(err.value) and "n_kv_head=3" in str(err.value)


@pytest.mark.parametrize("tie,n_kv_head", [(True, 4), (False, 2)])
def test_parameter_count_matches_the_formula(tie, n_kv_head):
    cfg = GPTConfig(
        vocab_size=300,
        block_size=32,
        n_layer=3,
        n_head=4,
        n_kv_head=n_kv_head,
        d_model=64,
        tie_embeddings=tie,
        dropout=0.0,
    )
    V, C, L, hidden, kv = 300, 64, 3, cfg.ffn_hidden, n_kv_head * 16
    per_block = 2 * C * C + 2 * C * kv + 3 * C * hidden + 2 * C
    expected = V * C + L * per_block + C + (0 if tie else V * C)
    assert cfg.num_params() == expected == GPT(cfg).num_params(non_embedding=False)


def test_gpt2_shape_has_gpt2_small_parameter_count():
    # GPT-2 small: 124M parameters with its 50257-token vocabulary. SwiGLU at 8/3 width, no biases and
    # RoPE instead of learned positions land within one percent of it.
    cfg = GPTConfig(
        vocab_size=50257,
        block_size=1024,
        n_layer=12,
        n_head=12,
        n_kv_head=12,
        d_model=768,
        tie_embeddings=True,
        dropout=0.0,
    )
    assert cfg.num_params() == pytest.approx(124.4e6, rel=0.01)


def test_flops_per_token_is_six_per_matmul_weight_plus_attention():
    cfg = GPTConfig(
        vocab_size=100, block_size=16, n_layer=2, n_head=2, n_kv_head=2, d_model=32, tie_embeddings=True, dropout=0.0
    )
    net = GPT(cfg)
    matmul_weights = sum(p.numel() for n, p in net.named_parameters() if p.dim() == 2)  # tied: counted once
    assert cfg.flops_per_token() == 6 * matmul_weights + 12 * 2 * 32 * 16
    assert cfg.flops_per_token(seq_len=8) == 6 * matmul_weights + 12 * 2 * 32 * 8


def test_pooling_by_hand():
    h = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)  # two sequences of three states
    lengths = torch.tensor([3, 1])  # the second has one real token, then padding
    assert pool(h, lengths, "last").tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert pool(h, lengths, "mean").tolist() == [[2.0, 3.0], [6.0, 7.0]]
