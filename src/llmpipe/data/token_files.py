"""Token files, and checking them before use.

Token files are flat arrays of token ids (uint16 while the vocabulary fits), with every document
followed by the end-of-text token, read back as memory maps (as nanoGPT does). A split is a list of
shards (data/tokens/<split>/<shard>.bin, one per clean task: meta.json `shards`); TokenShards reads
them as one stream, so the loaders index a split the same way whatever the number of shards.

tokenize records in meta.json the size and SHA-256 of every file it writes (`files`), and every stage
that reads data/tokens checks a file against that record before using it: a truncated, zeroed or
overwritten file stops the stage with the file's name and how to rebuild it, instead of training on
garbage or failing later with an index error.
"""

import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np

from llmpipe.digests import file_sha256
from llmpipe.jsonl import read_jsonl

REBUILD = "rebuild it with `dvc repro -f -s tokenize`, or restore it with `dvc checkout data/tokens`"


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= 65535 else np.uint32


def read_meta(tokens_dir: str | Path) -> dict:
    path = Path(tokens_dir) / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist: run `dvc repro tokenize` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is damaged ({err}): {REBUILD}") from err


def verified(tokens_dir: str | Path, name: str) -> Path:
    """data/tokens/<name>, after checking its size and SHA-256 against meta.json."""
    path = Path(tokens_dir) / name
    record = read_meta(tokens_dir).get("files", {}).get(name)
    if not path.is_file():
        raise ValueError(f"{path} is missing: {REBUILD}")
    if record is not None:  # a meta.json written before tokenize recorded its files has no record
        stat = path.stat()
        check_file(str(path), record["bytes"], record["sha256"], stat.st_size, stat.st_mtime_ns)
    return path


@cache  # once per process for an unchanged file: evaluation reads a split several times
def check_file(path: str, expected_bytes: int, expected_sha256: str, size: int, mtime_ns: int):
    if size != expected_bytes:
        raise ValueError(f"{path} has {size:,} bytes where tokenize wrote {expected_bytes:,} (truncated?): {REBUILD}")
    if file_sha256(path) != expected_sha256:
        raise ValueError(f"{path} does not hold what tokenize wrote (its SHA-256 differs from meta.json): {REBUILD}")


class TokenShards:
    """A split's token shards as one read-only stream: len(), an index, a slice (a window that
    crosses from one shard into the next is joined) and np.asarray() (the whole split, read into
    memory) behave as on one array of the concatenated shards."""

    def __init__(self, arrays: list[np.ndarray]):
        assert arrays, "a split with no shards"
        self.arrays, self.dtype = arrays, arrays[0].dtype
        self.ends = np.cumsum([len(a) for a in arrays])  # shard i holds positions ends[i-1] .. ends[i]-1

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            assert step == 1, "token streams are read in windows"
            if stop <= start:
                return np.empty(0, dtype=self.dtype)
            first, last = np.searchsorted(self.ends, [start, stop - 1], side="right")
            pieces = []
            for i in range(first, last + 1):
                offset = int(self.ends[i - 1]) if i else 0
                pieces.append(self.arrays[i][max(start - offset, 0) : stop - offset])
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        index = int(key) + (len(self) if key < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"token {key} of a stream of {len(self)}")
        shard = int(np.searchsorted(self.ends, index, side="right"))
        return self.arrays[shard][index - (int(self.ends[shard - 1]) if shard else 0)]

    def __array__(self, dtype=None, copy=None):
        joined = np.concatenate(self.arrays)
        return joined if dtype is None else joined.astype(dtype)


def shard_names(tokens_dir: str | Path, split: str, suffix: str) -> list[str]:
    """The files of a split's shards (`<split>/<shard><suffix>`), in stream order."""
    meta = read_meta(tokens_dir)
    if "shards" not in meta:
        raise ValueError(f"{Path(tokens_dir) / 'meta.json'} is from a tokenize before sharded splits: {REBUILD}")
    return [f"{split}/{shard}{suffix}" for shard in meta["shards"][split]]


def load_tokens(tokens_dir: str | Path, split: str) -> TokenShards:
    tokens_dir = Path(tokens_dir)
    meta = read_meta(tokens_dir)
    if not meta["splits"][split]["docs"]:
        raise ValueError(
            f"{tokens_dir / split} is empty: the {split} split has no documents (tokenize.{split}_fraction "
            f"is 0, or tokenize.split_by=field and no document says split={split!r}), and this stage needs it"
        )
    dtype = token_dtype(meta["vocab_size"])
    shards = TokenShards(
        [
            np.memmap(verified(tokens_dir, name), dtype=dtype, mode="r")
            for name in shard_names(tokens_dir, split, ".bin")
        ]
    )
    if len(shards) != meta["splits"][split]["tokens"]:
        expected = meta["splits"][split]["tokens"]
        raise ValueError(f"{tokens_dir / split} holds {len(shards):,} tokens, meta.json says {expected:,}: {REBUILD}")
    return shards


def load_split_docs(tokens_dir: str | Path, split: str) -> list[dict]:
    """The documents of a split (data/tokens/<split>/*.jsonl), checked like the token files."""
    return [doc for name in shard_names(tokens_dir, split, ".jsonl") for doc in read_jsonl(verified(tokens_dir, name))]


def split_digest(tokens_dir: str | Path, split: str) -> str:
    """One SHA-256 for a split's token shards (from meta.json's records): what a resume checkpoint is keyed by."""
    files = read_meta(tokens_dir)["files"]
    joined = "".join(files[name]["sha256"] for name in shard_names(tokens_dir, split, ".bin"))
    return hashlib.sha256(joined.encode()).hexdigest()


def document_fraction(tokens: np.ndarray, eot_id: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded random `fraction` of the documents of a token stream (each ends with eot_id), whole,
    in stream order. The documents are taken in one seeded order until they hold the fraction's tokens,
    so a smaller fraction's documents are a subset of a larger one's. Not a prefix: the stream is in
    shard order, so a prefix would be the start of each source file only."""
    if fraction >= 1:
        return tokens
    tokens = np.asarray(tokens)  # the split, read once (a fraction is copied out of it anyway)
    ends = np.flatnonzero(tokens == eot_id) + 1
    if len(ends) == 0 or ends[-1] != len(tokens):
        raise ValueError(f"the token stream does not end every document with the end-of-text token {eot_id}")
    starts = np.concatenate([[0], ends[:-1]])
    order = np.random.default_rng(seed).permutation(len(starts))
    total = np.cumsum((ends - starts)[order])
    take = np.sort(order[: int(np.searchsorted(total, fraction * len(tokens))) + 1])  # just reaches the fraction
    return np.concatenate([tokens[starts[i] : ends[i]] for i in take])
