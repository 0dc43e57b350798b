"""A decoder-only Transformer language model in plain PyTorch.

The architecture is the one most open models share since LLaMA: pre-norm blocks with RMSNorm,
rotary position embeddings (RoPE), grouped-query attention through
`scaled_dot_product_attention`, and a SwiGLU feed-forward. Parameter names follow the Hugging Face
Llama layout (`q_proj`, `gate_proj`, ...) so an export maps onto it one to one.

Shapes: B batch, T time (sequence length), C model width, H query heads, K key/value heads,
D head width (C // H), V vocabulary size.

This file knows nothing of Lightning, Hydra or MLflow: precision, compilation and parallelism are
applied from outside.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmpipe.networks.shared import CAUSAL_POOLINGS, checked_pooling, pool, raise_if_invalid


@dataclass(frozen=True, kw_only=True)
class GPTConfig:
    vocab_size: int
    block_size: int  # longest sequence the model is trained on
    n_layer: int
    n_head: int
    n_kv_head: int  # fewer than n_head gives grouped-query attention
    d_model: int
    ffn_multiple_of: int = 64  # the SwiGLU hidden width is rounded up to a multiple of this
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool
    dropout: float
    init_std: float = 0.02

    def __post_init__(self):
        problems = []
        if self.d_model % self.n_head:
            problems.append(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head:
            problems.append(f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}")
        if (self.d_model // max(self.n_head, 1)) % 2:
            problems.append("the head width d_model // n_head must be even for RoPE")
        raise_if_invalid(self, problems, ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model"))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def ffn_hidden(self) -> int:
        # SwiGLU has three matrices instead of two, so 2/3 of the usual 4*C keeps the parameter count.
        hidden = int(2 * 4 * self.d_model / 3)
        return self.ffn_multiple_of * math.ceil(hidden / self.ffn_multiple_of)

    def to_dict(self) -> dict:
        return asdict(self)

    def embedding_params(self) -> int:
        """The lookup table of the tokens (a tied output projection is the same table)."""
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        """Parameter count from the shapes alone (GPT.num_params counts the real tensors)."""
        C, D, V = self.d_model, self.head_dim, self.vocab_size
        attention = C * self.n_head * D * 2 + C * self.n_kv_head * D * 2  # q and o, k and v
        block = attention + 3 * C * self.ffn_hidden + 2 * C  # SwiGLU's three matrices, two RMSNorm gains
        head = 0 if self.tie_embeddings else V * C
        return V * C + self.n_layer * block + C + head  # embeddings, blocks, final norm, head

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward and backward): 6 per weight that multiplies an
        activation, 2 for each multiply-add of the forward pass and 4 for the backward's two
        products, plus attention's score and weighted-sum products, 12 * n_layer * d_model * T
        (PaLM, appendix B; nanoGPT's estimate_mfu). The embedding lookup does no arithmetic, but a
        tied head does, so its V * C weights count once either way."""
        T = seq_len or self.block_size
        matmul_weights = self.num_params() - self.vocab_size * self.d_model * (0 if self.tie_embeddings else 1)
        norm_gains = (2 * self.n_layer + 1) * self.d_model
        return 6 * (matmul_weights - norm_gains) + 12 * self.n_layer * self.d_model * T


def rope_tables(cfg: GPTConfig, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables of shape (block_size, D) for rotary embeddings."""
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim))
    angles = torch.outer(torch.arange(cfg.block_size, device=device).float(), inv_freq)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): the "rotate half" layout Llama uses
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+D/2}) pair of x (B, heads, T, D) by a position-dependent angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # under autocast x is bf16: keep it so
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv_head != self.n_head:  # each key/value head serves n_head // n_kv_head query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.input_layernorm(x), cos, sin))
        return x + self.dropout(self.mlp(self.post_attention_layernorm(x)))


class GPT(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(cfg)
        # Not persistent: derived from the config, so they stay out of checkpoints and exports.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        # Normal(0, 0.02) everywhere, and the projections that write into the residual stream scaled
        # by 1/sqrt(2 * n_layer) so the residual's variance does not grow with depth (GPT-2).
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue  # norm gains stay at one
            scale = (
                1 / math.sqrt(2 * self.config.n_layer) if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
            )
            nn.init.normal_(p, mean=0.0, std=std * scale)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed_tokens.weight.numel() if non_embedding else n

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalized hidden states (B, T, C)."""
        T = idx.shape[1]
        assert T <= self.config.block_size, f"sequence of {T} tokens exceeds block_size {self.config.block_size}"
        x = self.embed_tokens(idx)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V); or, given targets (B, T) with -100 where there is nothing to predict,
        the mean cross-entropy over the targets. Computing the loss here puts it in the same
        compiled graph as the head, so the (B, T, V) float32 logits need never be written out."""
        logits = self.lm_head(self.hidden_states(idx))
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class GPTClassifier(nn.Module):
    """A GPT backbone with a linear head on a pooled hidden state of each sequence (`pool`).

    Sequences are right-padded; causal attention means no real token ever sees padding, and pooling
    reads real tokens only, so no attention mask is needed.
    """

    def __init__(self, cfg: GPTConfig, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = checked_pooling(pooling, CAUSAL_POOLINGS, "a left-to-right model")
        self.backbone = GPT(cfg)
        self.score = nn.Linear(cfg.d_model, num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=cfg.init_std)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """idx (B, T) right-padded, lengths (B,) real tokens per row -> logits (B, num_labels)."""
        return self.score(pool(self.backbone.hidden_states(idx), lengths, self.pooling))
