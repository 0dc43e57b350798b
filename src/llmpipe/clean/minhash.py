"""MinHash signatures of documents' character shingles, computed by rensa (R-MinHash, in Rust), and
the signature files that near_dedup.ConfirmedPairs reads.

Text: datatrove's `simplify_text` with the config's `norm_config` (lower case, punctuation and
whitespace folded, diacritics removed). Shingles: the character n-grams of that text (n =
`config.n_grams`, clean.dedup.shingle_chars): no word segmenter, so Chinese works like English. A
text shorter than n has no shingle and no signature. Signature: `rensa.RMinHash` of the set of a
text's shingles, `num_buckets * hashes_per_bucket` values of 32 bits, seeded with `config.seed`
(the pipeline seed): the same text and seed give the same signature.

Signature files, in datatrove's layout: one per band and signing task,
`bucket_{band:03d}/{rank:05d}.minhash.sig`, little-endian, no header, one record per signed
document in the order of the task's stream: the band's `hashes_per_bucket` signature values
(uint32 each), then the document's position in the task's stream (uint32). So one band of every
task is read without the others (`read_band`).

Memory is bounded whatever the corpus: a document's shingles go to its sketch PIECE_CHARS
characters at a time (one Python string per shingle meanwhile), and signatures are written BATCH_DOCS
documents at a time. One sketch per document, not rensa's batch API
(`digest_matrix_from_token_sets`): as fast here, and the batch API runs large batches on Rayon's
thread pool, which hangs in a worker process forked after the parent used it (datatrove's local
executor forks its workers).
"""

from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rensa
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.text import simplify_text
from datatrove.utils.typeshelper import StatHints

PIECE_CHARS = 1 << 18  # characters of a document whose shingles go to rensa at once: ~15 MB of strings
BATCH_DOCS = 2048  # documents whose signatures are written to the task's files at once (~6 MB)


def record_dtype(config: MinhashConfig) -> np.dtype:
    """One document's record in a signature file."""
    return np.dtype([("hashes", "<u4", (config.hashes_per_bucket,)), ("doc", "<u4")])


def band_folder(folder: Path, band: int) -> Path:
    return Path(folder) / f"bucket_{band:03d}"


def read_band(folder: Path, band: int, config: MinhashConfig) -> list[tuple[int, np.ndarray]]:
    """(rank of the signing task, its records) of one band, for every task that signed."""
    record = record_dtype(config)
    found = []
    for path in sorted(band_folder(folder, band).glob("*.minhash.sig")):
        if path.stat().st_size % record.itemsize:
            raise ValueError(f"{path}: not a file of {record.itemsize}-byte signature records")
        found.append((int(path.name.split(".")[0]), np.fromfile(path, dtype=record)))
    return found


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
    signature files: one per band and task."""

    name = "🎯 MinHash signatures (characters)"
    type = "🫂 - DEDUP"

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__()
        if config.n_grams < 1:
            raise ValueError(f"shingles need at least one character, got n_grams={config.n_grams}")
        self.output_folder, self.config = Path(output_folder), config
        self.record = record_dtype(config)

    def write_batch(self, bands: list, signatures: list[list[int]], positions: list[int]):
        """A batch's records, each band's to its file."""
        c = self.config
        sig = np.array(signatures, dtype=np.uint32).reshape(len(signatures), c.num_buckets, c.hashes_per_bucket)
        records = np.empty(len(signatures), dtype=self.record)
        records["doc"] = positions
        for band, f in enumerate(bands):
            records["hashes"] = sig[:, band]
            f.write(records.tobytes())

    def run(self, data, rank: int = 0, world_size: int = 1):
        c = self.config
        hashes = c.num_buckets * c.hashes_per_bucket
        with ExitStack() as files:
            bands = []
            for band in range(c.num_buckets):
                folder = band_folder(self.output_folder, band)
                folder.mkdir(parents=True, exist_ok=True)
                bands.append(files.enter_context((folder / f"{rank:05d}.minhash.sig").open("wb")))
            signatures, positions, position = [], [], -1
            for position, doc in enumerate(data):
                text = simplify_text(doc.text, c.norm_config)
                if len(text) < c.n_grams:
                    continue  # no shingle, no signature
                signatures.append(signature(text, c.n_grams, hashes, c.seed))
                positions.append(position)
                if len(signatures) == BATCH_DOCS:
                    self.write_batch(bands, signatures, positions)
                    signatures, positions = [], []
            if signatures:
                self.write_batch(bands, signatures, positions)
        self.stat_update(StatHints.total, value=position + 1, unit="task")
        yield from ()
