"""What several model families share: the check every family's config makes of itself, and pooling a
sequence's hidden states into one vector for a classifier head. A family's own module (transformer,
encoder, seq2seq, recurrent) imports these; no family imports another."""

import torch

CAUSAL_POOLINGS = ("mean", "last")  # what a left-to-right model (decoder, recurrent) can pool


def raise_if_invalid(cfg, problems: list[str], positive: tuple[str, ...]):
    """One ValueError listing every problem of a model config: `problems`, then each field of
    `positive` that is not above zero (every family's config checks itself so)."""
    problems = [
        *problems,
        *(f"{name}={getattr(cfg, name)} must be positive" for name in positive if getattr(cfg, name) <= 0),
    ]
    if problems:
        raise ValueError("invalid model config: " + "; ".join(problems))


def checked_pooling(pooling: str, allowed: tuple[str, ...], model: str) -> str:
    """`pooling` if this kind of model can read its sequences so: `first` is an encoder's (a
    decoder's first state has seen one token), `last` a decoder's."""
    if pooling not in allowed:
        raise ValueError(f"pooling={pooling!r}: {model} pools {list(allowed)}")
    return pooling


def pool(h: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per right-padded sequence from hidden states h (B, T, C) and lengths (B,):
    `first` the state at position 0, which in an encoder has seen the whole sequence (BERT's [CLS]);
    `last`  the state at the last real token, which in a causal model has seen the whole sequence
            (Hugging Face's LlamaForSequenceClassification pools so);
    `mean`  the average over the real tokens. A pretrained language model's last state is tuned to
            predict the next token, not to sum up the text; the mean of all states keeps more of what
            the text is about, and classifies better from pretrained weights (measured on topics)."""
    if pooling == "first":
        return h[:, 0]
    if pooling == "last":
        return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
    assert pooling == "mean", pooling
    real = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)  # (B, T)
    return (h * real[..., None]).sum(dim=1) / lengths[:, None].to(h.dtype)
