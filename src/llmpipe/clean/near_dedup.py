"""Near-duplicate detection: MinHash LSH for candidates, edit similarity to confirm them.

The MinHash signatures are rensa's R-MinHash of character shingles, in the signature files of
clean/minhash.py, and datatrove's MinhashDedupCluster clusters the confirmed pairs. Between
the two, datatrove's MinhashDedupBuckets would call every pair that agrees on one band a duplicate.
On short documents that is far too loose: two unrelated three-line quotes signed "-- Ambrose
Bierce, The Devil's Dictionary" share many shingles, and measured on the fortunes with 3-character
shingles, 20 bands of 5, it removed 5,323 of 19,872 documents. So here the bands only propose candidates (generous
LSH: few hashes per band), and each candidate pair is kept only if the normalized Levenshtein
similarity of the two texts (rapidfuzz) reaches `clean.dedup.similarity`. Random edits to 15 % of
the characters leave a similarity near 0.85; unrelated texts of the same language score 0.3 to 0.6.
"""

import bisect
import struct
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
from cachetools import LRUCache
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig
from rapidfuzz.distance import Levenshtein

from llmpipe.clean.minhash import read_band
from llmpipe.clean.normalize import dedup_key
from llmpipe.clean.steps import record_counts
from llmpipe.schema import Dedup

# For exact dedup: sha1, not datatrove's default xxhash, whose path fails with xxhash 4.x ("Strings
# must be encoded before hashing"). 64 bits: at a billion documents a 32-bit hash would collide.
HASH = HashConfig(precision=64, hash_fc="sha1")


def minhash_config(cfg: Dedup, seed: int) -> MinhashConfig:
    # Numbers are not folded to 0 (datatrove's default): "Table 1.9" and "Table 1.10" differ.
    return MinhashConfig(
        n_grams=cfg.shingle_chars,
        num_buckets=cfg.num_buckets,
        hashes_per_bucket=cfg.hashes_per_bucket,
        seed=seed,
        norm_config=TextNormConfig(norm_numbers=False),
        hash_config=HASH,
    )


def similar(a: str, b: str, threshold: float) -> bool:
    """Normalized Levenshtein similarity (1 - distance / longer length) of the dedup keys."""
    return Levenshtein.normalized_similarity(a, b, score_cutoff=threshold) >= threshold


class Clusters:
    """Union-find over documents: which ones are already confirmed duplicates of each other."""

    def __init__(self):
        self.parent: dict = {}

    def find(self, doc):
        root = self.parent.setdefault(doc, doc)
        while root != self.parent[root]:
            root = self.parent[root]
        while doc != root:  # path compression: the next find is one step
            self.parent[doc], doc = root, self.parent[doc]
        return root

    def union(self, a, b):
        self.parent[self.find(b)] = self.find(a)


class ConfirmedPairs(PipelineStep):
    """Replaces datatrove's MinhashDedupBuckets: candidate pairs from the bands, confirmed by edit
    similarity, written as its `.dups` files (one per band) for MinhashDedupCluster.

    Linear, not all pairs of a group: documents that agree on a band are taken in order, and each
    is compared with the group's representatives (the earlier documents that matched none before
    them) whose length allows the similarity, nearest in length first, until one is similar enough;
    a document that matches none becomes a representative. A document has a budget of `budget`
    comparisons for all the bands of this task together, so a family of similar-looking pages
    (thousands of generated API pages, sharing many bands) costs a bounded number of comparisons
    per page whatever the family's size: the cost per document stays the same as the corpus grows.
    A comparison of texts longer than `compare_chars` counts as ceil(longer / compare_chars) (edit
    distance takes time about the square of the length), so long pages cost no more per character
    than short ones; a document's first comparison in a task is always made.
    A pair confirmed in an earlier band is neither compared nor written again. Documents that ran
    out of budget unmatched are counted (`compare_capped`, once per document and task), never silent.
    The budget is the task's share of `clean.dedup.max_compare` (pipeline.near_jobs): which
    bands a task holds depends on the number of tasks (`clean.tasks`), never on the workers.

    Task `rank` handles bands rank, rank + world_size, ... Documents are named (rank of the job
    that signed them, position in that rank's stream), as datatrove names them; `docs_folder`
    holds those streams, {rank:05d}.jsonl, so the texts can be read back."""

    name = "🎯 near-duplicate pairs"
    type = "llmpipe"

    def __init__(
        self,
        sig_folder: Path,
        docs_folder: Path,
        output_folder: Path,
        config: MinhashConfig,
        similarity: float,
        budget: int,
        compare_chars: int = 1 << 62,
    ):
        super().__init__()
        self.sig_folder, self.docs_folder, self.output_folder = Path(sig_folder), Path(docs_folder), Path(output_folder)
        self.config, self.similarity, self.budget, self.compare_chars = config, similarity, budget, compare_chars
        self.spent: dict[tuple[int, int], int] = {}  # budget each document has spent in this task
        self.capped: set[tuple[int, int]] = set()  # documents counted as having run out, in this task
        self.counts = Counter()  # candidates compared and confirmed, handed to datatrove's stats per task

    def band_groups(self, band: int) -> list[list[tuple[int, int]]]:
        """Documents whose signatures agree on this band, in groups of two or more, each sorted, the
        groups in the order their first member appears in the signers' files (as a dict of groups
        filled file by file would give). Grouped with NumPy: a few bytes per document, no Python
        object for a document that shares its band with none."""
        h = self.config.hashes_per_bucket
        parts = read_band(self.sig_folder, band, self.config)  # (signer rank, its records of this band)
        if not parts:
            return []
        hashes = np.concatenate([r["hashes"] for _, r in parts]).reshape(-1, h)
        doc = np.concatenate([r["doc"] for _, r in parts]).astype(np.int64)
        signer = np.concatenate([np.full(len(r), sig, np.int64) for sig, r in parts])
        seen_at = np.concatenate([(sig << 32) + np.arange(len(r), dtype=np.int64) for sig, r in parts])
        order = np.lexsort((doc, signer, *(hashes[:, j] for j in reversed(range(h)))))
        hashes, doc, signer, seen_at = hashes[order], doc[order], signer[order], seen_at[order]
        starts = np.flatnonzero(np.concatenate([[True], np.any(hashes[1:] != hashes[:-1], axis=1)]))
        ends = np.append(starts[1:], len(order))
        shared = np.flatnonzero(ends - starts > 1)
        first_seen = np.minimum.reduceat(seen_at, starts)[shared]
        groups = []
        for g in shared[np.argsort(first_seen, kind="stable")]:
            s, e = starts[g], ends[g]
            groups.append(list(zip(signer[s:e].tolist(), doc[s:e].tolist(), strict=True)))
        return groups

    def confirm(self, group: list[tuple[int, int]], keys: dict, clusters: Clusters):
        """The confirmed pairs (representative, document) of one group, in order. Representatives are
        kept sorted by length: a pair can only reach the similarity if the shorter key is at least
        `similarity` times the longer (the edit distance is at least their difference), so only the
        representatives in that length window are candidates, the nearest in length first."""
        lengths, representatives = [], []  # sorted by length, side by side
        for doc in group:
            key = keys[doc]
            size = len(key)
            low, high = size * self.similarity, size / self.similarity if self.similarity else float("inf")
            match = self.first_match(doc, key, low, high, lengths, representatives, keys, clusters)
            if match is None:
                at = bisect.bisect(lengths, size)
                lengths.insert(at, size)
                representatives.insert(at, doc)
            elif match[1]:  # confirmed here, not known from another band: a pair to write
                yield match[0], doc

    def first_match(self, doc, key, low, high, lengths, representatives, keys, clusters):
        """(rep, True) for the first representative (nearest in length, within [low, high]) that is
        similar to doc, (rep, False) for one already in doc's cluster, or None once doc has spent its budget
        (comparisons in this band and in this task's earlier bands, long ones counting as several)."""
        size = len(key)
        right = bisect.bisect(lengths, size)
        left, compared = right - 1, self.spent.get(doc, 0)
        cluster = clusters.find(doc)  # doc's cluster changes only when it is confirmed, which ends the search
        while (left >= 0 and lengths[left] >= low) or (right < len(lengths) and lengths[right] <= high):
            take_left = right >= len(lengths) or lengths[right] > high
            if not take_left and left >= 0 and lengths[left] >= low:
                take_left = size - lengths[left] <= lengths[right] - size
            at = left if take_left else right
            rep, rep_size = representatives[at], lengths[at]
            left, right = (left - 1, right) if take_left else (left, right + 1)
            if clusters.find(rep) == cluster:
                return rep, False
            if compared >= self.budget:
                if doc not in self.capped:  # counted once per document and task
                    self.capped.add(doc)
                    self.counts["compare_capped"] += 1
                return None
            compared += self.cost(size, rep_size)
            self.spent[doc] = compared
            self.counts["candidates"] += 1
            if similar(keys[rep], key, self.similarity):
                self.counts["confirmed"] += 1
                clusters.union(rep, doc)
                return rep, True
        return None

    def cost(self, size: int, other: int) -> int:
        """What a comparison takes from the budget: one, or ceil(longer / compare_chars) for long
        texts (edit distance takes time about the square of the length)."""
        return max(1, -(-max(size, other) // self.compare_chars))

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        assert data is None, "ConfirmedPairs starts a pipeline"
        self.output_folder.mkdir(parents=True, exist_ok=True)
        bands = range(rank, self.config.num_buckets, world_size)
        clusters = Clusters()
        self.spent.clear()
        self.capped.clear()
        self.counts.clear()
        with DedupKeys.of(self.docs_folder) as keys:
            for band in bands:  # one band's groups in memory at a time
                with (self.output_folder / f"{band:05d}_00.dups").open("wb") as out:
                    for group in self.band_groups(band):
                        for a, b in self.confirm(group, keys, clusters):
                            out.write(struct.pack("<4I", *a, *b))
        record_counts(self, self.counts)
        yield from ()


class DedupKeys:
    """The dedup keys of documents named (signer rank, position), read on demand from the signed
    streams ({rank:05d}.jsonl) and kept in cachetools' LRU cache of at most `max_chars` characters:
    memory stays bounded whatever the corpus, while the representatives that most documents are
    compared with stay in the cache. An index of line offsets per stream (8 bytes a
    document) finds a document without reading its stream again.

    One instance per folder and process (`of`): the tasks that one process runs in turn (all of
    them, with one local worker) share what the earlier ones read, instead of each reading and
    keying the same documents again. A folder whose files changed is a new instance."""

    shared: dict[tuple, "DedupKeys"] = {}  # the latest folder's keys (one at a time: bounded memory)

    @classmethod
    def of(cls, docs_folder: Path) -> "DedupKeys":
        folder = Path(docs_folder).resolve()
        files = [(path, path.stat()) for path in sorted(folder.glob("*.jsonl"))]
        identity = (folder, tuple((p.name, st.st_ino, st.st_size, st.st_mtime_ns) for p, st in files))
        if identity not in cls.shared:
            cls.shared.clear()
            cls.shared[identity] = cls(folder)
        return cls.shared[identity]

    def __init__(self, docs_folder: Path, max_chars: int = 32_000_000):
        self.docs_folder = Path(docs_folder)
        self.offsets: dict[int, array] = {}
        self.files: dict[int, object] = {}
        self.cache = LRUCache(maxsize=max_chars, getsizeof=len)  # key -> text, sized in characters

    def stream(self, signer: int):
        if signer not in self.files:
            f = (self.docs_folder / f"{signer:05d}.jsonl").open("rb")
            if signer not in self.offsets:
                starts, at = array("q"), 0
                for line in f:
                    starts.append(at)
                    at += len(line)
                self.offsets[signer] = starts
            self.files[signer] = f
        return self.files[signer]

    def __getitem__(self, doc: tuple[int, int]) -> str:
        key = self.cache.get(doc)
        if key is None:
            f = self.stream(doc[0])
            f.seek(int(self.offsets[doc[0]][doc[1]]))
            key = dedup_key(orjson.loads(f.readline())["text"])
            if len(key) <= self.cache.maxsize:  # a longer one is read again when it is needed again
                self.cache[doc] = key
        return key

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Closes the streams; the keys and offsets stay for the process's next task."""
        for f in self.files.values():
            f.close()
        self.files.clear()


def random_edits(text: str, rate: float, rng) -> str:
    """A near-duplicate for testing: round(rate * len(text)) random edits, each a substitution
    (half of them), an insertion or a deletion at a random place, new characters drawn from the
    text itself (so Chinese stays Chinese). Used by tests and benchmarks/clean_bench.py."""
    chars = list(text)
    pool = [c for c in text if not c.isspace()] or ["x"]
    for _ in range(max(1, round(rate * len(text)))):
        op, i = rng.random(), rng.randrange(len(chars) + 1)
        if op < 0.5 and chars:
            chars[min(i, len(chars) - 1)] = rng.choice(pool)
        elif op < 0.75 or not chars:
            chars.insert(i, rng.choice(pool))
        else:
            del chars[min(i, len(chars) - 1)]
    return "".join(chars)
