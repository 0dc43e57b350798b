"""Span-corruption examples for the encoder-decoder (networks/seq2seq.py explains the objective).

A window of T tokens loses round(rate * T) of them, in n spans of about `mean_span` tokens; the
input keeps the rest, with each span replaced by the next sentinel token, and the target lists
each sentinel followed by the tokens it stands for, then <|endoftext|>. Spans and the kept runs
between them alternate, starting with a kept run, their lengths drawn at random (each at least one
token), so the window ends with a cut span, as in T5. The counts depend on T alone, so every window
of a batch gives inputs and targets of the same lengths, and nothing needs padding:

    input length   T - noise + n          target length   noise + n + 1

At most len(sentinels) spans (16 reserved in the tokenizer): a longer window gets longer spans.
Like masking (masking.py), the draw is seeded by the example's position, so it is new for every
example, the same after a resume, and apart for training and validation (`stream`).
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from llmpipe.schema import SpanCorruption

SALT = 0x5350414E  # "SPAN": keeps these draws apart from the window's own draw from (seed, i)


def span_counts(T: int, cfg: SpanCorruption, max_spans: int) -> tuple[int, int]:
    """(cut tokens, spans) for a window of T tokens: at least one of each, and a kept token before
    every span."""
    if T < 2:
        raise ValueError(f"span corruption needs windows of 2 tokens or more, not {T}")
    noise = min(max(1, round(cfg.rate * T)), T - 1)
    spans = max(1, round(noise / cfg.mean_span))
    return noise, min(spans, max_spans, noise, T - noise)


def random_parts(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """`parts` positive lengths adding up to `total`, drawn uniformly among such splits."""
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else []
    return np.diff(np.concatenate([[0], cuts, [total]])).astype(np.int64)


def corrupt_spans(
    tokens: np.ndarray, cfg: SpanCorruption, sentinel_ids: list[int], eot_id: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, target ids) for one window of token ids."""
    noise, spans = span_counts(len(tokens), cfg, len(sentinel_ids))
    kept_lengths = random_parts(len(tokens) - noise, spans, rng)
    cut_lengths = random_parts(noise, spans, rng)
    inputs, targets, at = [], [], 0
    for k in range(spans):
        inputs += [tokens[at : at + kept_lengths[k]], [sentinel_ids[k]]]
        at += kept_lengths[k]
        targets += [[sentinel_ids[k]], tokens[at : at + cut_lengths[k]]]
        at += cut_lengths[k]
    assert at == len(tokens)  # the parts add up to the window, which ends with a cut span (as T5's do)
    targets.append([eot_id])
    return np.concatenate(inputs).astype(np.int64), np.concatenate(targets).astype(np.int64)


def restore_spans(inputs: list[int], targets: list[int], sentinel_ids: list[int], eot_id: int) -> list[int]:
    """The window back from an example: each sentinel of the input replaced by what follows it in
    the target (the inverse of corrupt_spans, which the tests check it is; a model's written spans
    read back into its input the same way)."""
    sentinels = set(sentinel_ids)
    filling: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token == eot_id:
            break
        if token in sentinels:
            current = filling.setdefault(token, [])
        elif current is not None:
            current.append(token)
    restored = []
    for token in inputs:
        restored += filling.get(token, []) if token in sentinels else [token]
    return restored


class SpanCorruptedWindows(Dataset):
    """Windows of a dataset of (x, y) token windows (RandomWindows, or whole windows for validation)
    as span-corruption examples (inputs, targets) for the encoder-decoder."""

    def __init__(
        self, windows: Dataset, cfg: SpanCorruption, sentinel_ids: list[int], eot_id: int, seed: int, stream: int = 0
    ):
        self.windows, self.cfg, self.seed, self.stream = windows, cfg, seed, stream
        self.sentinel_ids, self.eot_id = list(sentinel_ids), eot_id

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        tokens = self.windows[i][0].numpy()  # a decoder's (x, y) pair: the window is x
        rng = np.random.default_rng([self.seed, self.stream, i, SALT])
        inputs, targets = corrupt_spans(tokens, self.cfg, self.sentinel_ids, self.eot_id, rng)
        return torch.from_numpy(inputs), torch.from_numpy(targets)
