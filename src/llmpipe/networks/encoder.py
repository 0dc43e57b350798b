"""A bidirectional Transformer encoder (BERT, Devlin et al. 2019) in plain PyTorch.

A decoder (transformer.py) reads left to right: position t sees tokens 0..t and learns to predict
token t+1. An encoder lets every position see the whole sequence, which is what understanding a
sentence needs ("bank" reads differently before "river" and before "account"), but then predicting
a token is trivial: it is in the input. So BERT trains with *masked-language modelling* (MLM):

  1. choose 15 % of the positions of each training window at random;
  2. hide them from the model: 80 % of them become the <|mask|> token, 10 % a random token, and 10 %
     stay as they are (so the model cannot tell which visible tokens will be scored, and what it
     learns transfers to text without masks);
  3. the loss is the cross-entropy of the original token, at the chosen positions only.

The masking is drawn per training example, from the example's own seed, every time the example is
made (families/masking.py): "dynamic masking" (RoBERTa), and exactly reproducible after a resume.

The masked-token loss is not comparable with a decoder's next-token loss or bits per byte: it
predicts 15 % of the tokens, each with both sides visible.

The architecture is the original BERT's, so that an export loads in Hugging Face transformers as
BertForMaskedLM / BertForSequenceClassification and computes the same numbers: learned absolute
position embeddings added to the token embeddings and normalized; post-norm blocks (the residual
sum is normalized, LayerNorm with bias); biased projections; GELU feed-forward of 4 x the width; an
MLM head that transforms the states (dense, GELU, LayerNorm) before the tied output projection.
Shapes: B batch, T time, C model width, H heads, D head width (C // H), V vocabulary size.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmpipe.networks.shared import checked_pooling, pool, raise_if_invalid


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    vocab_size: int
    block_size: int  # longest sequence: the number of learned positions
    n_layer: int
    n_head: int
    d_model: int
    norm_eps: float = 1e-12  # BERT's LayerNorm epsilon
    tie_embeddings: bool  # the MLM head's output projection is the token embedding
    dropout: float
    init_std: float = 0.02
    arch: str  # "bert": model.arch, saved with the config

    def __post_init__(self):
        problems = []
        if self.d_model % self.n_head:
            problems.append(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        raise_if_invalid(self, problems, ("vocab_size", "block_size", "n_layer", "n_head", "d_model"))

    @property
    def ffn_hidden(self) -> int:
        return 4 * self.d_model

    def to_dict(self) -> dict:
        return asdict(self)

    def embedding_params(self) -> int:
        """The lookup tables: the tokens' and the learned positions'."""
        return (self.vocab_size + self.block_size) * self.d_model

    def num_params(self) -> int:
        """Parameter count from the shapes alone (Encoder.num_params counts the real tensors)."""
        C, V, F_ = self.d_model, self.vocab_size, self.ffn_hidden
        embeddings = V * C + self.block_size * C + 2 * C  # tokens, positions, LayerNorm
        block = 4 * (C * C + C) + (C * F_ + F_) + (F_ * C + C) + 2 * 2 * C  # q k v o, ffn in/out, 2 LayerNorms
        head = (C * C + C) + 2 * C + V + (0 if self.tie_embeddings else V * C)  # transform, LayerNorm, bias
        return embeddings + self.n_layer * block + head

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, as GPTConfig.flops_per_token counts them: 6 per weight that
        multiplies an activation (the token embedding only as the tied output projection; position
        embeddings, biases and LayerNorms do no matrix products), plus attention's products. The
        MLM head runs on every position here, an upper bound: the network skips the unscored ones."""
        T = seq_len or self.block_size
        C, F_ = self.d_model, self.ffn_hidden
        matmul_weights = self.n_layer * (4 * C * C + 2 * C * F_) + C * C + self.vocab_size * C
        return 6 * matmul_weights + 12 * self.n_layer * C * T


class SelfAttention(nn.Module):
    """Multi-head attention over the whole sequence: no causal mask, only the padding mask."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, C); mask (B, 1, 1, T) True where a key is a real token, or None (no padding)."""
        B, T, C = x.shape
        q, k, v = (
            p(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class Layer(nn.Module):
    """Post-norm, as in BERT: each sublayer's output is added to its input and the sum normalized."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.self_attn = SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn_in = nn.Linear(cfg.d_model, cfg.ffn_hidden)
        self.ffn_out = nn.Linear(cfg.ffn_hidden, cfg.d_model)
        self.ffn_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attn_norm(x + self.dropout(self.self_attn(x, mask)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(x)))))


def key_mask(lengths: torch.Tensor | None, T: int) -> torch.Tensor | None:
    """(B, 1, 1, T) True at the real tokens of right-padded rows: padding is never attended to."""
    if lengths is None:
        return None
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


class Encoder(nn.Module):
    """Token ids (B, T) -> logits (B, T, V) for the token at each position, seen from both sides."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.embed_positions = nn.Embedding(cfg.block_size, cfg.d_model)
        self.embed_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layer))
        # the MLM head: a transform of the final states, then the output projection (and its bias)
        self.head_dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.head_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.reset_parameters()

    def reset_parameters(self):
        # BERT's initialization: Normal(0, 0.02) weights, zero biases, LayerNorms at identity.
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        embeddings = self.embed_tokens.weight.numel() + self.embed_positions.weight.numel()
        return n - embeddings if non_embedding else n

    def hidden_states(self, idx: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C); lengths (B,) marks right padding, which no position attends to."""
        T = idx.shape[1]
        assert T <= self.config.block_size, f"sequence of {T} tokens exceeds block_size {self.config.block_size}"
        x = self.dropout(self.embed_norm(self.embed_tokens(idx) + self.embed_positions.weight[:T]))
        mask = key_mask(lengths, T)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def token_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The MLM head on hidden states (..., C) -> (..., V)."""
        return self.lm_head(self.head_norm(F.gelu(self.head_dense(h))))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V); or, given targets (B, T) holding the original token at the masked
        positions and -100 elsewhere, the mean cross-entropy over the masked positions only. The
        head runs on those positions alone: 15 % of the work of the full (B, T, V) logits."""
        h = self.hidden_states(idx)
        if targets is None:
            return self.token_logits(h)
        scored = targets != -100
        return F.cross_entropy(self.token_logits(h[scored]).float(), targets[scored])


POOLINGS = ("first", "mean")


class EncoderClassifier(nn.Module):
    """An Encoder backbone with BERT's classification head: a pooled state, a dense layer with tanh
    (BERT's "pooler"), then a linear layer to the labels.

    `first` pools the state at position 0, as BERT pools its [CLS] token: with attention in both
    directions that position sees the whole text (transformers' BertForSequenceClassification).
    `mean` averages the states of the real tokens. Rows are right-padded; padding is masked out of
    attention and of the mean."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = checked_pooling(pooling, POOLINGS, "an encoder")
        self.backbone = Encoder(cfg)
        # The backbone's MLM head has no part in classification: frozen, so that data-parallel
        # training finds no parameter left without a gradient (a tied projection is the embedding,
        # which does train).
        head = [
            *self.backbone.head_dense.parameters(),
            *self.backbone.head_norm.parameters(),
            self.backbone.lm_head.bias,
        ]
        if not cfg.tie_embeddings:
            head.append(self.backbone.lm_head.weight)
        for p in head:
            p.requires_grad_(False)
        self.pool_dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.score = nn.Linear(cfg.d_model, num_labels)
        for layer in (self.pool_dense, self.score):
            nn.init.normal_(layer.weight, std=cfg.init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """idx (B, T) right-padded, lengths (B,) real tokens per row -> logits (B, num_labels)."""
        pooled = pool(self.backbone.hidden_states(idx, lengths), lengths, self.pooling)
        return self.score(self.dropout(torch.tanh(self.pool_dense(pooled))))
