"""The torch datasets and loaders of training. Their randomness is their own (seeded by position), so
a run resumed from a checkpoint, or split across ranks, sees exactly the examples an uninterrupted
one-process run would: the token windows of data/windows.py for pretraining, Epochs (shuffled pass
after pass) for fine-tuning, ResumableLoader to save the position, SkipSampler to shard it."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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


class LabeledSequences(Dataset):
    """Token id lists with an integer label each, for sequence classification."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        assert len(ids) == len(labels)
        self.ids, self.labels = ids, labels

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


def labeled_examples(docs: list[dict], labels: list[str], tokenizer, max_tokens: int) -> LabeledSequences:
    """Documents whose label is in `labels`, tokenized and truncated to max_tokens."""
    index = {label: i for i, label in enumerate(labels)}
    kept = [d for d in docs if d.get("label") in index]
    ids = [enc.ids[:max_tokens] for enc in tokenizer.encode_batch([d["text"] for d in kept])]
    return LabeledSequences(ids, [index[d["label"]] for d in kept])
