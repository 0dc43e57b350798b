"""Token files as examples of next-token prediction: windows of a split's token stream, and
documents each between end-of-text tokens. Their randomness is their own (seeded by position), so a
resumed or data-parallel run sees exactly the examples of an uninterrupted one-process run."""

import numpy as np
import torch
from torch.utils.data import Dataset


class RandomWindows(Dataset):
    """num_samples windows at random offsets; item i is the same window in every run (seed, i)."""

    def __init__(self, tokens: np.ndarray, block_size: int, num_samples: int, seed: int):
        if len(tokens) <= block_size + 1:
            raise ValueError(f"{len(tokens)} training tokens are too few for block_size {block_size}")
        self.tokens, self.block_size, self.num_samples, self.seed = tokens, block_size, num_samples, seed

    def __len__(self):
        return self.num_samples

    def __getitem__(self, i):
        start = int(np.random.default_rng([self.seed, i]).integers(0, len(self.tokens) - self.block_size - 1))
        chunk = torch.from_numpy(self.tokens[start : start + self.block_size + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]


class SequentialWindows(Dataset):
    """Consecutive windows that predict every token of the split except the first, each once."""

    def __init__(self, tokens: np.ndarray, block_size: int, max_windows: int | None = None):
        self.tokens, self.block_size = tokens, block_size
        self.n = max(0, (len(tokens) - 2) // block_size + 1) if len(tokens) > 1 else 0
        if max_windows is not None:
            self.n = min(self.n, max_windows)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        start = i * self.block_size
        chunk = torch.from_numpy(self.tokens[start : start + self.block_size + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]  # the last window may be shorter


def whole_windows(tokens: np.ndarray, block_size: int) -> SequentialWindows:
    """SequentialWindows without a short last window: an encoder attends to padding, so it reads
    whole windows only (none if the tokens do not fill one)."""
    return SequentialWindows(tokens, block_size, max_windows=max(0, (len(tokens) - 1) // block_size))


class DocumentSequences(Dataset):
    """Token id lists (documents) as next-token prediction examples (x, y): each document between
    end-of-text tokens, x = [eot, *ids], y = [*ids, eot], as a document sits in the pretraining
    stream, so the first token is predicted from a document start and the end is predicted too.
    Collate with pad_windows."""

    def __init__(self, ids: list[list[int]], eot_id: int):
        self.examples = [torch.tensor([eot_id, *doc, eot_id]) for doc in ids if doc]

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        seq = self.examples[i]
        return seq[:-1], seq[1:]
