"""Masked-language-modelling examples for an encoder (networks/encoder.py explains the objective).

MaskedWindows wraps a dataset of (x, y) token windows (RandomWindows for training,
SequentialWindows for validation) and turns window i into (inputs, targets): `rate` of its positions
are chosen, of those `mask` become <|mask|>, `random` a random ordinary token and the rest stay; the
targets hold the original token at the chosen positions and -100 elsewhere. The choice is drawn
from the example's own seed (seed, i), like the window itself, so masking is new for every example
("dynamic") and a run resumed from a checkpoint, or split across processes, sees the same masks.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from llmpipe.schema import Masking

SALT = 0x4D4C4D  # "MLM": keeps the masking draws apart from the window's own draw from (seed, i)


def masking_problems(masking: Masking) -> list[str]:
    """The shares of the scored positions that are masked and replaced at random leave the rest as they are."""
    if masking.mask + masking.random > 1:
        return [
            f"pretrain.masking.mask={masking.mask} and pretrain.masking.random={masking.random} add up to more than 1"
        ]
    return []


class MaskedWindows(Dataset):
    """`stream` keeps apart the masks of datasets drawn under one seed (training, validation)."""

    def __init__(
        self,
        windows: Dataset,
        cfg: Masking,
        mask_id: int,
        first_ordinary_id: int,
        vocab_size: int,
        seed: int,
        stream: int = 0,
    ):
        assert first_ordinary_id < vocab_size, "no ordinary token to draw random replacements from"
        if problems := masking_problems(cfg):
            raise ValueError(problems[0])
        self.windows, self.cfg, self.seed, self.stream = windows, cfg, seed, stream
        self.mask_id, self.first_ordinary_id, self.vocab_size = mask_id, first_ordinary_id, vocab_size

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        tokens = self.windows[i][0]  # a decoder's (x, y) pair: the encoder reads x and restores part of it
        ids = (self.mask_id, self.first_ordinary_id, self.vocab_size)
        return mask_tokens(tokens, self.cfg, *ids, self.seed, i, self.stream)


def mask_tokens(
    tokens: torch.Tensor,
    cfg: Masking,
    mask_id: int,
    first_ordinary_id: int,
    vocab_size: int,
    seed: int,
    i: int,
    stream: int = 0,
):
    """(inputs, targets) for one window of token ids (T,): round(rate * T) positions scored, at least one."""
    rng = np.random.default_rng([seed, stream, i, SALT])
    T = len(tokens)
    chosen = np.zeros(T, dtype=bool)
    chosen[rng.choice(T, size=max(1, round(cfg.rate * T)), replace=False)] = True
    roll = rng.random(T)
    to_mask = chosen & (roll < cfg.mask)
    to_random = chosen & (roll >= cfg.mask) & (roll < cfg.mask + cfg.random)
    inputs, targets = tokens.clone(), torch.full_like(tokens, -100)
    targets[torch.from_numpy(chosen)] = tokens[torch.from_numpy(chosen)]
    inputs[torch.from_numpy(to_mask)] = mask_id
    replacements = rng.integers(first_ordinary_id, vocab_size, size=int(to_random.sum()))
    inputs[torch.from_numpy(to_random)] = torch.from_numpy(replacements).to(tokens.dtype)
    return inputs, targets
