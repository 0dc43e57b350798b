"""Recurrent language models (RNN, LSTM, GRU) in plain PyTorch, the path that led to the Transformer.

All three read the tokens left to right and carry what they have seen in a state vector h of width
C; the next-token logits are a linear function of h_t. They differ in how h is updated, which is
what decides how far back a gradient can reach.

Vanilla RNN (Elman):
    h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)
  The gradient of h_t with respect to h_{t-k} is a product of k Jacobians W_hh^T diag(1 - h^2); it
  shrinks (or explodes) geometrically with k, so a plain RNN learns little from far back: the
  vanishing-gradient problem (Hochreiter 1991; Bengio et al. 1994).

LSTM (Hochreiter and Schmidhuber 1997), with a cell state c beside h:
    i_t = sigmoid(W_ii x_t + W_hi h_{t-1} + b_i)       input gate: how much new content to write
    f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f)       forget gate: how much of c_{t-1} to keep
    g_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g)          the candidate content
    o_t = sigmoid(W_io x_t + W_ho h_{t-1} + b_o)       output gate: how much of the cell to show
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)
  c_t depends on c_{t-1} through a sum scaled by f_t, not through a squashing matrix product, so with
  f near one the gradient flows back many steps (the "constant error carousel").

GRU (Cho et al. 2014), the LSTM's gates folded into two and no separate cell:
    r_t = sigmoid(W_ir x_t + W_hr h_{t-1} + b_r)       reset gate
    z_t = sigmoid(W_iz x_t + W_hz h_{t-1} + b_z)       update gate
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The catch that moved the field to attention: h_t needs h_{t-1}, so the T steps of a sequence run one
after another; a Transformer computes all T positions of a layer at once, in large matrix products
that keep a GPU busy. torch's nn.RNN / nn.LSTM / nn.GRU implement the equations above (with cuDNN
kernels on GPU).

Like model.py, this file knows nothing of Lightning, Hydra or MLflow.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmpipe.networks.shared import CAUSAL_POOLINGS, checked_pooling, pool, raise_if_invalid

ARCHS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight blocks per matrix: one per gate or candidate


@dataclass(frozen=True, kw_only=True)
class RecurrentConfig:
    vocab_size: int
    arch: str  # one of ARCHS
    block_size: int  # training sequence length (the state could carry further; we cut it here)
    n_layer: int
    d_model: int
    tie_embeddings: bool
    dropout: float
    init_std: float = 0.02

    def __post_init__(self):
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"arch={self.arch!r} is not one of {sorted(ARCHS)}")
        raise_if_invalid(self, problems, ("vocab_size", "block_size", "n_layer", "d_model"))

    def to_dict(self) -> dict:
        return asdict(self)

    def embedding_params(self) -> int:
        """The lookup table of the tokens."""
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        """Parameter count from the shapes: per layer, W_ih and W_hh (gates x C x C each) and their
        two bias vectors; embeddings, a final RMSNorm gain, and an untied head if any."""
        C, V, g = self.d_model, self.vocab_size, GATES[self.arch]
        per_layer = 2 * g * C * C + 2 * g * C
        return V * C + self.n_layer * per_layer + C + (0 if self.tie_embeddings else V * C)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token: 6 per weight that multiplies an activation (see
        GPTConfig.flops_per_token). No term grows with the context: the state is all it reads."""
        C, V, g = self.d_model, self.vocab_size, GATES[self.arch]
        return 6 * (self.n_layer * 2 * g * C * C + V * C)


class RecurrentLM(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V), with the Transformer's interface."""

    def __init__(self, cfg: RecurrentConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rnn = ARCHS[cfg.arch](
            cfg.d_model, cfg.d_model, num_layers=cfg.n_layer, batch_first=True, dropout=cfg.dropout
        )
        self.norm = nn.RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        nn.init.normal_(self.embed_tokens.weight, std=cfg.init_std)
        if not cfg.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=cfg.init_std)
        if cfg.arch == "lstm":  # start by remembering: forget-gate bias 1 (Jozefowicz et al. 2015)
            for name, bias in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():
                        bias[cfg.d_model : 2 * cfg.d_model].fill_(1.0)  # PyTorch's gate order: i, f, g, o

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed_tokens.weight.numel() if non_embedding else n

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalized hidden states (B, T, C), each from the tokens up to its position."""
        out, _ = self.rnn(self.embed_tokens(idx))  # the state starts at zero for every sequence
        return self.norm(out)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V), or the mean cross-entropy against targets (-100: nothing to predict)."""
        logits = self.lm_head(self.hidden_states(idx))
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class RecurrentClassifier(nn.Module):
    """A recurrent backbone with a linear head on a pooled state of each sequence (model.pool); the
    same contract as model.GPTClassifier (right-padded ids and their lengths). Left to right, so
    padding never reaches a real token's state."""

    def __init__(self, cfg: RecurrentConfig, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = checked_pooling(pooling, CAUSAL_POOLINGS, "a left-to-right model")
        self.backbone = RecurrentLM(cfg)
        self.score = nn.Linear(cfg.d_model, num_labels, bias=False)
        nn.init.normal_(self.score.weight, std=cfg.init_std)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.score(pool(self.backbone.hidden_states(idx), lengths, self.pooling))
