"""How examples of unequal length become the tensors the networks take: (x, y) windows padded with
targets the loss ignores, and token-id sequences padded beside their lengths and labels."""

from functools import partial

import torch


def pad_windows(batch: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int = 0):
    """Collate (inputs, targets) of unequal length, each padded to the longest of the batch: targets
    with -100, which the loss ignores, inputs with pad_id. A decoder never attends to its padding
    (it comes after every real token), whatever its id; an encoder-decoder's encoder masks the
    pad token, and its inputs and targets differ in length."""
    xs = torch.full((len(batch), max(len(x) for x, _ in batch)), pad_id, dtype=torch.long)
    ys = torch.full((len(batch), max(len(y) for _, y in batch)), -100, dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        xs[row, : len(x)], ys[row, : len(y)] = torch.as_tensor(x), torch.as_tensor(y)
    return xs, ys


def pad_pairs(pad_id: int):
    """pad_windows for an encoder-decoder's (input, target) pairs: inputs padded with the pad token."""
    return partial(pad_windows, pad_id=pad_id)


def collate_labeled(pad_id: int):
    def collate(batch):
        lengths = torch.tensor([len(ids) for ids, _ in batch])
        idx = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            idx[row, : len(ids)] = torch.tensor(ids)
        return idx, lengths, torch.tensor([label for _, label in batch])

    return collate
