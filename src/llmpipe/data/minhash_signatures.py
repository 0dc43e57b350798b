"""MinHash signatures over character shingles, computed for many documents at once.

The signatures are exactly datatrove's (MinhashDedupSignature): the same permutations
(a * x + b) mod (2^61 - 1) of each shingle hash, drawn from the same seed, the minimum per
permutation, and the same records of its bucket files (per band: the band's hashes and the
document's position, sorted). datatrove writes a file per band and task; here a task writes one
file holding its bands in turn (band 0's records, then band 1's...), `{rank:05d}.minhash.sig`:
creating 40 files per task cost more than filling them on a small corpus. What differs is how
they are computed. datatrove works document by document, with one
NumPy call chain and 40 struct.pack calls per document and a 64-bit division per hash; on short
documents (a fortune is 230 bytes) the per-document overhead, and on long ones the division, were a
quarter of the clean stage. Here a batch of documents is one array of code points, the shingles of
all of them are hashed in one pass, the modulo uses the Mersenne-prime identity instead of a
division, and each band's records are written with one call per batch.

Shingles are characters, not words: no segmenter needed, so Chinese works like English.
"""

from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.typeshelper import StatHints

from llmpipe.data.text_simplify import Simplifier

MERSENNE = np.uint64((1 << 61) - 1)  # datatrove's modulus for 64-bit signatures
BATCH_CHARS = 1 << 20  # code points of text hashed together: bounds memory whatever the corpus
DISTINCT_FROM = 2048  # shingles in a text from which its repeats are dropped before permuting
BLOCK_ROWS = 8192  # shingles permuted at a time: the (rows, hashes) temporaries stay in cache


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads the bits of each uint64 over the whole word."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hashes of each text's character n-grams, and the index of the text each belongs
    to (ascending). The code points of a window are combined by a polynomial (wrapping at 2^64) and
    mixed; windows that would cross from one text into the next are dropped. In a short text a
    shingle that occurs twice is kept twice: the minimum does not change, and sorting to drop the
    repeats would cost more than permuting them."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = len(codes) - n + 1
    if windows <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    h = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            h = mix64(h * np.uint64(0x100000001B3) + codes[i : windows + i] + np.uint64(1))
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)[:windows]
    inside = np.arange(windows) + n <= np.cumsum(lengths)[owner]
    return distinct_in_long_texts(h[inside], owner[inside], len(texts))


def distinct_in_long_texts(h: np.ndarray, owner: np.ndarray, texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeated shingles dropped from texts of at least DISTINCT_FROM shingles. The minimum does not
    need it; it saves time where sorting costs less than permuting the repeats: a long manual page
    repeats 60 % of its shingles, a fortune almost none."""
    bounds = np.searchsorted(owner, np.arange(texts + 1))
    long_texts = np.flatnonzero(np.diff(bounds) >= DISTINCT_FROM)
    if not len(long_texts):
        return h, owner
    hashes, owners, at = [], [], 0
    for text in long_texts:
        start, end = bounds[text], bounds[text + 1]
        distinct = np.unique(h[start:end])
        hashes += [h[at:start], distinct]
        owners += [owner[at:start], np.full(len(distinct), text, dtype=np.int64)]
        at = end
    return np.concatenate([*hashes, h[at:]]), np.concatenate([*owners, owner[at:]])


def permutations(config: MinhashConfig) -> tuple[np.ndarray, np.ndarray]:
    """datatrove's permutation parameters (a, b), each of shape (1, hashes), from the same seed."""
    gen = np.random.RandomState(config.seed)
    hashes = config.num_buckets * config.hashes_per_bucket
    a = gen.randint(1, MERSENNE, dtype=np.uint64, size=(1, hashes))
    b = gen.randint(0, MERSENNE, dtype=np.uint64, size=(1, hashes))
    return a, b


def permuted(x: np.ndarray, a: np.ndarray, b: np.ndarray, buffers: tuple | None = None) -> np.ndarray:
    """(x * a + b) mod (2^61 - 1) for a column of shingle hashes x, with x * a + b wrapping at 2^64
    as datatrove's NumPy expression does. y mod (2^k - 1) = (y & (2^k - 1)) + (y >> k), then at most
    one subtraction: the same numbers as `%`, without a 64-bit division per value. `buffers` (from
    permutation_buffers) hold the intermediate arrays: fresh ones of several MB for every block made
    the C library map and unmap memory each time, which tripled the time in a process holding large
    tables (the language model)."""
    y, r, wrapped = buffers or permutation_buffers(len(x), a.shape[1])
    rows = len(x)
    y, r, wrapped = y[:rows], r[:rows], wrapped[:rows]
    with np.errstate(over="ignore"):
        np.multiply(x.reshape(-1, 1), a, out=y)
        y += b
    np.bitwise_and(y, MERSENNE, out=r)
    np.right_shift(y, np.uint64(61), out=y)
    r += y
    np.greater_equal(r, MERSENNE, out=wrapped)
    np.subtract(r, MERSENNE, out=r, where=wrapped)
    return r


def permutation_buffers(rows: int, hashes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty((rows, hashes), np.uint64), np.empty((rows, hashes), np.uint64), np.empty((rows, hashes), bool)


def signatures(hashes: np.ndarray, owner: np.ndarray, docs: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(docs, permutations) minimum permuted hash of each document's shingles (all ones for a
    document without shingles), computed BLOCK_ROWS shingles at a time."""
    out = np.full((docs, a.shape[1]), np.iinfo(np.uint64).max, dtype=np.uint64)
    buffers = permutation_buffers(min(BLOCK_ROWS, len(hashes)), a.shape[1])
    for start in range(0, len(hashes), BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        block_owner = owner[rows]
        firsts = np.flatnonzero(np.concatenate([[True], block_owner[1:] != block_owner[:-1]]))
        mins = np.minimum.reduceat(permuted(hashes[rows], a, b, buffers), firsts, axis=0)
        who = block_owner[firsts]
        out[who] = np.minimum(out[who], mins)
    return out


class CharacterMinhashSignature(PipelineStep):
    """datatrove's MinHash signature step (the same records, one file per task) over character shingles
    of the simplified text, computed a batch of documents at a time."""

    name = "🎯 MinHash signatures (characters)"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__()
        assert config.hash_config.precision == 64, "signature files are written as 64-bit hashes"
        self.output_folder, self.config = Path(output_folder), config
        h = config.hashes_per_bucket
        self.record = np.dtype([(f"field{i + 1}", "<u8") for i in range(h)] + [(f"field{h + 1}", "<u4")])
        self.simplify = Simplifier(config.norm_config)

    def write_batch(self, f, texts: list[str], positions: list[int]) -> int:
        """Signatures of a batch, one record per band and document with at least one shingle, band
        after band; returns how many documents were signed."""
        hashes, owner = shingle_hashes(texts, self.config.n_grams)
        sig = signatures(hashes, owner, len(texts), *self.parameters)
        signed = np.unique(owner)  # a text shorter than a shingle has no signature (as in datatrove)
        h = self.config.hashes_per_bucket
        signed_positions = np.asarray(positions, dtype=np.uint32)[signed]
        for band in range(self.config.num_buckets):
            records = np.empty(len(signed), dtype=self.record)
            for i in range(h):
                records[f"field{i + 1}"] = sig[signed, band * h + i]
            records[f"field{h + 1}"] = signed_positions
            f.write(records.tobytes())
        return len(signed)

    def sort_bands(self, unsorted: Path, path: Path, batches: list[int]):
        """The task's file: each band's records of every batch, sorted as datatrove sorts a bucket
        file (ConfirmedPairs names a document by its position in the sorted band), band after band.
        One band in memory at a time."""
        size, bands = self.record.itemsize, self.config.num_buckets
        starts = np.cumsum([0, *batches])[:-1] * bands  # records before each batch (none: a task with no document)
        with path.open("wb") as out:
            for band in range(bands):
                chunks = [
                    np.fromfile(unsorted, dtype=self.record, count=n, offset=int(start + band * n) * size)
                    for start, n in zip(starts.tolist(), batches, strict=True)
                ]
                records = np.concatenate(chunks) if chunks else np.empty(0, self.record)
                # lexsort on the fields, first field first: the order of NumPy's sort(order=names), whose
                # generic comparison of structured records was as slow as computing the signatures
                out.write(records[np.lexsort([records[name] for name in reversed(self.record.names)])].tobytes())
        unsorted.unlink()

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.parameters = permutations(self.config)
        self.output_folder.mkdir(parents=True, exist_ok=True)
        path = self.output_folder / f"{rank:05d}.minhash.sig"
        unsorted = path.with_suffix(".unsorted")
        batches = []  # documents signed in each batch
        with unsorted.open("wb") as f:
            texts, positions, chars, position = [], [], 0, -1
            for position, doc in enumerate(data):
                texts.append(self.simplify(doc.text))
                positions.append(position)
                chars += len(texts[-1])
                if chars >= BATCH_CHARS:
                    batches.append(self.write_batch(f, texts, positions))
                    texts, positions, chars = [], [], 0
            if texts:
                batches.append(self.write_batch(f, texts, positions))
        self.stat_update(StatHints.total, value=position + 1, unit="task")
        self.sort_bands(unsorted, path, batches)
        yield from ()
