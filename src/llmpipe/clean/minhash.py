"""MinHash signatures of documents' character shingles, computed by rensa (R-MinHash, in Rust), and
the signature files that near_dedup.ConfirmedPairs reads.

Text: datatrove's `simplify_text` with the config's `norm_config` (lower case, punctuation and
whitespace folded, diacritics removed). Shingles: the character n-grams of that text (n =
`config.n_grams`, clean.dedup.shingle_chars): no word segmenter, so Chinese works like English. A
text shorter than n has no shingle and no signature. Signature: `rensa.RMinHash` of the set of a
text's shingles, `num_buckets * hashes_per_bucket` values of 32 bits, seeded with `config.seed`
(the pipeline seed): the same text and seed give the same signature.

Signature file, one per signing task, `{rank:05d}.minhash.sig`, little-endian, no header: `num_buckets`
sections of equal length, band 0 first. A section holds one record per signed document, in the order
of the task's stream: the band's `hashes_per_bucket` signature values (uint32 each), then the
document's position in the task's stream (uint32). So a file is num_buckets * documents * record
size bytes, and one band of a file is one contiguous read (`read_band`).

Memory is bounded whatever the corpus: a document's shingles go to its sketch PIECE_CHARS
characters at a time (one Python string per shingle meanwhile), signatures are written BATCH_DOCS
documents at a time, and the task's file is assembled one band at a time. One sketch per document,
not rensa's batch API (`digest_matrix_from_token_sets`): as fast here, and the batch API runs large
batches on Rayon's thread pool, which hangs in a worker process forked after the parent used it
(datatrove's local executor forks its workers).
"""

from pathlib import Path

import numpy as np
import rensa
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.text import simplify_text
from datatrove.utils.typeshelper import StatHints

PIECE_CHARS = 1 << 18  # characters of a document whose shingles go to rensa at once: ~15 MB of strings
BATCH_DOCS = 2048  # documents whose signatures are written to the task's file at once (~6 MB)


def record_dtype(config: MinhashConfig) -> np.dtype:
    """One document's record in a band section of a signature file."""
    return np.dtype([("hashes", "<u4", (config.hashes_per_bucket,)), ("doc", "<u4")])


def read_band(path: Path, band: int, config: MinhashConfig) -> np.ndarray:
    """The records of one band of a signature file."""
    record = record_dtype(config)
    per_band, rest = divmod(path.stat().st_size, record.itemsize * config.num_buckets)
    if rest:
        raise ValueError(f"{path}: not {config.num_buckets} bands of {record.itemsize}-byte signature records")
    return np.fromfile(path, dtype=record, count=per_band, offset=band * per_band * record.itemsize)


def shingles(text: str, n: int) -> list[str]:
    """The character n-grams of text, in order; repeats are kept (a signature is of their set)."""
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def signature(text: str, n: int, num_perm: int, seed: int) -> list[int]:
    """The R-MinHash signature (num_perm values of 32 bits) of the set of text's shingles, which go
    to rensa PIECE_CHARS characters at a time: a set's signature does not depend on how it arrives.
    The text must have at least one shingle (an empty set has no signature)."""
    sketch = rensa.RMinHash(num_perm, seed)
    for start in range(0, len(text) - n + 1, PIECE_CHARS):
        sketch.update(shingles(text[start : start + PIECE_CHARS + n - 1], n))
    return sketch.digest()


class CharacterMinhashSignature(PipelineStep):
    """MinHash signatures of character shingles of the simplified text, written as this module's
    signature file: one per task, band after band."""

    name = "🎯 MinHash signatures (characters)"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__()
        if config.n_grams < 1:
            raise ValueError(f"shingles need at least one character, got n_grams={config.n_grams}")
        self.output_folder, self.config = Path(output_folder), config
        self.record = record_dtype(config)

    def write_batch(self, f, signatures: list[list[int]], positions: list[int]) -> int:
        """A batch's records, band after band (one block per batch); returns the documents written."""
        c = self.config
        sig = np.array(signatures, dtype=np.uint32).reshape(len(signatures), c.num_buckets, c.hashes_per_bucket)
        records = np.empty((c.num_buckets, len(signatures)), dtype=self.record)
        records["hashes"] = sig.transpose(1, 0, 2)
        records["doc"] = np.asarray(positions, dtype=np.uint32)
        f.write(records.tobytes())
        return len(signatures)

    def assemble(self, blocks: Path, path: Path, batches: list[int]):
        """The task's file from the per-batch blocks: each band's records of every batch, band after
        band, one band in memory at a time."""
        size, bands = self.record.itemsize, self.config.num_buckets
        starts = np.cumsum([0, *batches])[:-1] * bands  # records before each block
        with path.open("wb") as out:
            for band in range(bands):
                for start, n in zip(starts.tolist(), batches, strict=True):
                    offset = (start + band * n) * size
                    out.write(np.fromfile(blocks, dtype=self.record, count=n, offset=offset).tobytes())
        blocks.unlink()

    def run(self, data, rank: int = 0, world_size: int = 1):
        c = self.config
        hashes = c.num_buckets * c.hashes_per_bucket
        self.output_folder.mkdir(parents=True, exist_ok=True)
        path = self.output_folder / f"{rank:05d}.minhash.sig"
        blocks = path.with_suffix(".blocks")
        batches = []  # documents written in each block
        with blocks.open("wb") as f:
            signatures, positions, position = [], [], -1
            for position, doc in enumerate(data):
                text = simplify_text(doc.text, c.norm_config)
                if len(text) < c.n_grams:
                    continue  # no shingle, no signature
                signatures.append(signature(text, c.n_grams, hashes, c.seed))
                positions.append(position)
                if len(signatures) == BATCH_DOCS:
                    batches.append(self.write_batch(f, signatures, positions))
                    signatures, positions = [], []
            if signatures:
                batches.append(self.write_batch(f, signatures, positions))
        self.stat_update(StatHints.total, value=position + 1, unit="task")
        self.assemble(blocks, path, batches)
        yield from ()
