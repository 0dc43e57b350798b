"""How examples of unequal length become the tensors the networks take: (x, y) windows padded with
targets the loss ignores, and token-id sequences padded beside their lengths and labels."""

import torch


def pad_windows(batch: list[tuple[torch.Tensor, torch.Tensor]]):
    """Collate windows of unequal length: targets of padding are -100, which the loss ignores."""
    T = max(len(x) for x, _ in batch)
    xs = torch.zeros(len(batch), T, dtype=torch.long)
    ys = torch.full((len(batch), T), -100, dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        xs[row, : len(x)], ys[row, : len(y)] = x, y
    return xs, ys


def collate_labeled(pad_id: int):
    def collate(batch):
        lengths = torch.tensor([len(ids) for ids, _ in batch])
        idx = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            idx[row, : len(ids)] = torch.tensor(ids)
        return idx, lengths, torch.tensor([label for _, label in batch])

    return collate
