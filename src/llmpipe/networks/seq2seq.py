"""An encoder-decoder Transformer (T5, Raffel et al. 2020) in plain PyTorch.

The decoder (transformer.py) reads and writes one stream; the encoder (encoder.py) reads a whole
text but writes nothing. An encoder-decoder does both, in two stacks: the *encoder* reads the input
with attention in both directions, and the *decoder* writes the output left to right, attending to
its own past (causal self-attention) and, in every layer, to all of the encoder's states
("cross-attention"). Every task becomes text to text: a prompt in, a response out.

Pretraining is *span corruption* (families/span_corruption.py): about 15 % of a window's tokens, in
spans of about 3, are cut out of the input, each span replaced by one sentinel token
(<|sentinel_0|>, <|sentinel_1|>, ...); the decoder writes the missing spans, each after its
sentinel, then <|endoftext|>:

    input    Thank you <|sentinel_0|> me to your party <|sentinel_1|> week.
    target   <|sentinel_0|> for inviting <|sentinel_1|> last <|endoftext|>

The loss is the cross-entropy of the target tokens: not comparable with a decoder's bits per byte
(it predicts only the cut spans, with the text on both sides visible) nor with BERT's masked loss.

The architecture is the original T5's, so that an export loads in Hugging Face transformers as
T5ForConditionalGeneration and computes the same numbers:
  - no learned or rotary positions: each self-attention adds a learned bias per head to each score,
    by the *bucket* of the distance between query and key (exact for near tokens, logarithmic up to
    max_distance, one bucket beyond). Each stack has one table, which all its layers use (T5 keeps
    it in the first layer; here the model holds it, so a sharded layer never holds another's
    weights). The encoder's buckets tell before from after; the decoder's look back only;
  - pre-norm blocks with RMSNorm (scale only), no biases anywhere, a ReLU feed-forward of 4 x the
    width, and a final RMSNorm on each stack;
  - attention scores are not divided by sqrt(head width): T5's initialization accounts for it;
  - one token embedding for the encoder's input, the decoder's input and the output projection,
    whose input is scaled by d_model ** -0.5.
The decoder's first input is <|pad|> (T5's "start" token); padding in the input is never attended to.
Shapes: B batch, S source (input) length, T target length, C model width, H heads, V vocabulary.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmpipe.networks.shared import checked_pooling, pool, raise_if_invalid

IGNORE = -100  # targets that the loss skips (padding)


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig:
    vocab_size: int
    block_size: int  # the longest input and target it trains on (positions are relative: no table)
    n_layer: int  # layers of the encoder, and as many of the decoder
    n_head: int
    d_model: int
    num_buckets: int = 32  # relative-position buckets per attention direction pair
    max_distance: int = 128  # distances beyond it share the last bucket
    norm_eps: float = 1e-6
    dropout: float
    tie_embeddings: bool  # always true: T5 ties the output projection to the token embedding
    pad_id: int = 1  # tokenizer.PAD, which the tokenizer reserves at id 1: the decoder's start token
    arch: str  # "t5": model.arch, saved with the config

    def __post_init__(self):
        problems = []
        if self.d_model % self.n_head:
            problems.append(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if not self.tie_embeddings:
            problems.append("tie_embeddings=false: the encoder-decoder always ties its output projection")
        if self.block_size == 1:
            problems.append("block_size=1: span corruption needs windows of 2 tokens or more")
        positive = ("vocab_size", "block_size", "n_layer", "n_head", "d_model", "num_buckets", "max_distance")
        raise_if_invalid(self, problems, positive)

    @property
    def ffn_hidden(self) -> int:
        return 4 * self.d_model

    def to_dict(self) -> dict:
        return asdict(self)

    def embedding_params(self) -> int:
        """The lookup table of the tokens, shared by both stacks and the output (the relative-position
        tables are counted with the layers)."""
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        """Parameter count from the shapes alone (Seq2Seq.num_params counts the real tensors)."""
        C, F_ = self.d_model, self.ffn_hidden
        attention = 4 * C * C
        encoder_layer = attention + 2 * C * F_ + 2 * C  # self-attention, feed-forward, 2 RMSNorms
        decoder_layer = 2 * attention + 2 * C * F_ + 3 * C  # and cross-attention, 3 RMSNorms
        relative = 2 * self.num_buckets * self.n_head  # one table per stack
        return self.vocab_size * C + self.n_layer * (encoder_layer + decoder_layer) + relative + 2 * C

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token of a window as it enters the encoder, counted like
        GPTConfig.flops_per_token (6 per multiplying weight, plus attention's products): each token
        passes the encoder, and the decoder (with its cross-attention and the tied output
        projection) for the spans' share of tokens; an upper bound that counts the decoder in full."""
        T = seq_len or self.block_size
        C, F_ = self.d_model, self.ffn_hidden
        encoder = self.n_layer * (4 * C * C + 2 * C * F_)
        decoder = self.n_layer * (8 * C * C + 2 * C * F_) + self.vocab_size * C
        return 6 * (encoder + decoder) + 12 * self.n_layer * C * T * 2


def relative_buckets(
    query_len: int, key_len: int, bidirectional: bool, num_buckets: int, max_distance: int, device=None
) -> torch.Tensor:
    """(query_len, key_len) bucket of each key's offset from each query (key minus query). Half the
    buckets hold the offsets 0, 1, 2, ... exactly; the other half grow logarithmically up to
    max_distance. Bidirectional: separate halves for keys after and before the query."""
    offset = torch.arange(key_len, device=device)[None, :] - torch.arange(query_len, device=device)[:, None]
    if bidirectional:
        num_buckets //= 2
        bucket = (offset > 0).long() * num_buckets  # keys after the query use the upper half
        distance = offset.abs()
    else:  # a decoder's keys are never after the query
        bucket = torch.zeros_like(offset)
        distance = (-offset).clamp(min=0)
    exact = num_buckets // 2
    log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (num_buckets - exact)).long()).clamp(max=num_buckets - 1)
    return bucket + torch.where(distance < exact, distance, far)


def padding_bias(source: torch.Tensor, pad_id: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, 1, S) additive scores: 0 at real input tokens, the lowest number at padding."""
    return (source == pad_id)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


class Attention(nn.Module):
    """Multi-head attention of x (B, T, C) over `memory` (B, S, C), or over x itself, with additive
    scores `bias` (relative positions and masks)."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            nn.Linear(cfg.d_model, cfg.d_model, bias=False) for _ in range(4)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        memory = x if memory is None else memory
        heads = lambda t: t.view(B, t.shape[1], self.n_head, C // self.n_head).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(memory)), heads(self.v_proj(memory))
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=1.0)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.ffn_in = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.ffn_out = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_out(self.dropout(F.relu(self.ffn_in(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: each sublayer reads a normalized copy of the stream and adds its output to it."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.attn_norm(x), bias))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention, then cross-attention to the encoder's states, then the feed-forward."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.cross_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.cross_attn = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, self_bias, memory, memory_bias) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.attn_norm(x), self_bias))
        x = x + self.dropout(self.cross_attn(self.cross_norm(x), memory_bias, memory))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Seq2Seq(nn.Module):
    """Input ids (B, S) and target ids (B, T) -> the loss of the targets, each predicted from the
    whole input and the targets before it (teacher forcing); or, for generation, `encode` once and
    `decode` the tokens written so far."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # each stack's relative-position table: a bias per bucket and head
        self.encoder_positions = nn.Embedding(cfg.num_buckets, cfg.n_head)
        self.decoder_positions = nn.Embedding(cfg.num_buckets, cfg.n_head)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layer))
        self.encoder_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layer))
        self.decoder_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    def reset_parameters(self):
        """T5's initialization: each projection's spread chosen so activations keep their scale
        without the attention's 1/sqrt(head width); embeddings Normal(0, 1); RMSNorms at identity."""
        C, D = self.config.d_model, self.config.d_model // self.config.n_head
        for module in self.modules():
            if isinstance(module, Attention):
                nn.init.normal_(module.q_proj.weight, std=(C * D) ** -0.5)
                for proj in (module.k_proj, module.v_proj, module.o_proj):
                    nn.init.normal_(proj.weight, std=C**-0.5)
            elif isinstance(module, FeedForward):
                nn.init.normal_(module.ffn_in.weight, std=C**-0.5)
                nn.init.normal_(module.ffn_out.weight, std=self.config.ffn_hidden**-0.5)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
        nn.init.normal_(self.embed_tokens.weight, std=1.0)
        for table in (self.encoder_positions, self.decoder_positions):
            nn.init.normal_(table.weight, std=C**-0.5)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed_tokens.weight.numel() if non_embedding else n

    def decoder_parts(self) -> list[nn.Module]:
        """What only the decoder uses (the embedding is shared): what a classifier leaves frozen."""
        return [self.decoder_positions, self.decoder_layers, self.decoder_norm]

    def position_bias(self, table: nn.Embedding, query_len: int, key_len: int, bidirectional: bool) -> torch.Tensor:
        """(1, H, query_len, key_len) a stack's relative-position scores, from its table."""
        cfg = self.config
        buckets = relative_buckets(
            query_len, key_len, bidirectional, cfg.num_buckets, cfg.max_distance, table.weight.device
        )
        return table(buckets).permute(2, 0, 1)[None]

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's final states (B, S, C) and the padding scores (B, 1, 1, S) for attending to them."""
        S = source.shape[1]
        x = self.dropout(self.embed_tokens(source))
        memory_bias = padding_bias(source, self.config.pad_id, x.dtype)
        bias = self.position_bias(self.encoder_positions, S, S, bidirectional=True) + memory_bias
        for layer in self.encoder_layers:
            x = layer(x, bias)
        return self.dropout(self.encoder_norm(x)), memory_bias

    def decode(self, decoder_input: torch.Tensor, memory: torch.Tensor, memory_bias: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of the token after each decoder input position, given the encoder's states."""
        T = decoder_input.shape[1]
        x = self.dropout(self.embed_tokens(decoder_input))
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        causal = future.to(x.dtype) * torch.finfo(x.dtype).min
        self_bias = self.position_bias(self.decoder_positions, T, T, bidirectional=False) + causal
        for layer in self.decoder_layers:
            x = layer(x, self_bias, memory, memory_bias)
        h = self.dropout(self.decoder_norm(x))
        return F.linear(h * self.config.d_model**-0.5, self.embed_tokens.weight)

    def shift_right(self, targets: torch.Tensor) -> torch.Tensor:
        """The decoder's input for teacher forcing: the start token, then the targets but the last
        (ignored targets read as padding)."""
        start = torch.full_like(targets[:, :1], self.config.pad_id)
        previous = targets[:, :-1].masked_fill(targets[:, :-1] == IGNORE, self.config.pad_id)
        return torch.cat([start, previous], dim=1)

    def target_logits(self, source: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T, V) logits at every target position under teacher forcing."""
        memory, memory_bias = self.encode(source)
        return self.decode(self.shift_right(targets), memory, memory_bias)

    def forward(self, source: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of the targets (B, T) that are not -100, given the source (B, S)."""
        logits = self.target_logits(source, targets)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


POOLINGS = ("mean",)


class Seq2SeqClassifier(nn.Module):
    """Classification on the encoder: the mean of its final states over the real tokens, a dense
    layer with tanh, then a linear layer to the labels.

    Why the encoder: it reads the whole text in both directions, as BERT does, and a label needs no
    writing; the decoder would cost a second stack for one step of output. (transformers'
    T5ForSequenceClassification instead feeds the text to both stacks and reads the decoder's state
    at the end-of-text token.) The decoder is kept, frozen, so the weights load and export as one
    model and data-parallel training finds no parameter without a gradient."""

    def __init__(self, cfg: Seq2SeqConfig, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = checked_pooling(pooling, POOLINGS, "an encoder-decoder")
        self.backbone = Seq2Seq(cfg)
        for part in self.backbone.decoder_parts():
            for p in part.parameters():
                p.requires_grad_(False)
        self.pool_dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.score = nn.Linear(cfg.d_model, num_labels)
        for layer in (self.pool_dense, self.score):
            nn.init.normal_(layer.weight, std=cfg.d_model**-0.5)
            nn.init.zeros_(layer.bias)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """idx (B, S) right-padded with the pad token, lengths (B,) -> logits (B, num_labels)."""
        states, _ = self.backbone.encode(idx)
        pooled = pool(states, lengths, self.pooling)
        return self.score(self.dropout(torch.tanh(self.pool_dense(pooled))))
