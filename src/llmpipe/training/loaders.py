"""The torch datasets and loaders of training. Their randomness is their own (seeded by position), so
a run resumed from a checkpoint, or split across ranks, sees exactly the examples an uninterrupted
one-process run would: RandomWindows for pretraining, Epochs (shuffled pass after pass) for
fine-tuning, ResumableLoader to save the position, SkipSampler to shard it."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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


def data_parallel_rank() -> tuple[int, int]:
    """(this process's rank, number of ranks) once torch.distributed is up, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SkipSampler(Sampler[int]):
    """This rank's share of indices 0..n-1, in order: rank r of w takes r, r + w, r + 2w, ... So
    whatever the number of ranks, optimizer step k trains on the same global indices, and a loss
    curve does not depend on how many processes computed it. The first pass after a resume skips
    the positions already trained on.

    The rank is read when iteration starts, not at construction: Lightning starts the other
    processes and the process group after the stage has built its loaders.
    """

    def __init__(self, n: int):
        self.n, self.skip = n, 0

    def __iter__(self):
        rank, world = data_parallel_rank()
        start, self.skip = self.skip, 0
        return iter(range(start * world + rank, self.n, world))

    def __len__(self):
        rank, world = data_parallel_rank()
        return len(range(rank, self.n, world))


class Epochs(Dataset):
    """num_samples items taken from a dataset epoch after epoch, each epoch in its own shuffled
    order; item i is the same example in every run (seed, i), so a loader over it can resume and
    shard exactly like one over RandomWindows."""

    def __init__(self, dataset: Dataset, num_samples: int, seed: int):
        assert len(dataset) > 0
        self.dataset, self.num_samples, self.seed = dataset, num_samples, seed
        self._epoch, self._order = None, None

    def __len__(self):
        return self.num_samples

    def __getitem__(self, i):
        epoch, position = divmod(i, len(self.dataset))
        if epoch != self._epoch:  # items are read in order, so one cached permutation suffices
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        return self.dataset[int(self._order[position])]


class ResumableLoader(DataLoader):
    """An in-order DataLoader whose position goes into Lightning's checkpoints (Lightning saves the
    state_dict of a loader that has one), so a resumed run continues with the batch an uninterrupted
    run would have taken next, not with the first.

    `consumed` tells how many batches training has used so far; Lightning prefetches, so the loader's
    own count of batches handed out would run ahead of it.
    """

    def __init__(self, dataset: Dataset, batch_size: int, consumed: Callable[[], int], **kwargs):
        self.skip_sampler, self.consumed = SkipSampler(len(dataset)), consumed
        super().__init__(dataset, batch_size=batch_size, sampler=self.skip_sampler, **kwargs)

    def state_dict(self) -> dict:
        return {"batches": self.consumed()}

    def load_state_dict(self, state: dict):
        self.skip_sampler.skip = state["batches"] * self.batch_size


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


class LabeledSequences(Dataset):
    """Token id lists with an integer label each, for sequence classification."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        assert len(ids) == len(labels)
        self.ids, self.labels = ids, labels

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


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


def labeled_examples(docs: list[dict], labels: list[str], tokenizer, max_tokens: int) -> LabeledSequences:
    """Documents whose label is in `labels`, tokenized and truncated to max_tokens."""
    index = {label: i for i, label in enumerate(labels)}
    kept = [d for d in docs if d.get("label") in index]
    ids = [enc.ids[:max_tokens] for enc in tokenizer.encode_batch([d["text"] for d in kept])]
    return LabeledSequences(ids, [index[d["label"]] for d in kept])
