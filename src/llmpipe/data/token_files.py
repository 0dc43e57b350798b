"""Token files.

Token files are flat arrays of token ids (uint16 while the vocabulary fits), one per split, with
every document followed by the end-of-text token, read back as memory maps (as nanoGPT does).
"""

import json
from pathlib import Path

import numpy as np


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
    if not meta["splits"][split]["docs"]:
        raise ValueError(
            f"{tokens_dir / split}.bin is empty: the {split} split has no documents (tokenize.{split}_fraction "
            f"is 0, or tokenize.split_by=field and no document says split={split!r}), and this stage needs it"
        )
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
