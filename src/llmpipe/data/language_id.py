"""Language identification with py3langid (langid.py's model of byte n-grams, shipped inside the
package: nothing is downloaded). Short texts are hard for any identifier, so a detection below
`min_confidence` leaves the document with the language its source declared.

Speed: py3langid counts a text's n-gram features by walking its byte automaton (DFA) in a Python
loop, one byte at a time, which is most of its cost. The automaton is an Aho-Corasick automaton
over n-grams at most `window` bytes long: its state after a byte is the longest suffix of the text
so far that is a prefix of some n-gram, so it depends on the last `window` bytes only. Every
byte's state is then `window` vectorized NumPy steps from the start state, all bytes at once.
`FastIdentifier` counts the features that way and leaves all the rest (encoding, scoring, softmax)
to py3langid's own methods, so its results are the same, bit for bit; tests/unit/test_language_id.py
checks the property on the model itself and the results against py3langid."""

import io
import lzma
import math
from collections import Counter
from functools import lru_cache

import numpy as np
from py3langid import modelio
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from llmpipe.data import table_cache
from llmpipe.schema import Language

# Below this many bytes py3langid's own loop is as fast: NumPy's fixed cost per call (about 10 us
# for the `window` steps) outweighs its speed per byte (measured: the two meet at 100 to 200 bytes).
SHORT_TEXT_BYTES = 150
# Long texts are walked in chunks of this many bytes, whose temporary arrays stay in the CPU's
# cache: twice as fast as the whole text at once (measured on 1 to 7 MB).
CHUNK_BYTES = 1 << 16
# Below this many features a Counter is as fast as sorting them (measured: 1,000 to 2,000).
FEW_FEATURES = 1000


def window_length(transitions: np.ndarray, row_of: np.ndarray) -> int:
    """The longest shortest path from the start state, by breadth-first search: the length of
    the longest n-gram prefix a state stands for, i.e. how many last bytes decide the state.
    transitions: one row of 256 next states per distinct row; row_of: each state's row."""
    seen = np.zeros(len(row_of), dtype=bool)
    seen[0] = True
    frontier, depth = np.array([0]), 0
    while True:
        # states sharing a row share their successors: visit each row once
        reached = np.zeros(len(row_of), dtype=bool)
        reached[transitions[np.unique(row_of[frontier])]] = True
        frontier = np.flatnonzero(reached & ~seen)
        if not len(frontier):
            return depth
        seen[frontier] = True
        depth += 1


def first_occurrence_counts(features: np.ndarray) -> dict[int, int]:
    """{feature: count} in the order of first occurrence, as py3langid's Counter has it: its score
    sums the features' rows in that order, and float32 sums in another order can differ."""
    if len(features) < FEW_FEATURES:
        return Counter(features.tolist())
    # one sort of (feature, position) keys: each feature's run starts at its first position
    # (features < 2**17, so a text under 2**46 bytes keeps the keys within int64)
    shift = len(features).bit_length()
    keyed = np.sort((features.astype(np.int64) << shift) | np.arange(len(features)))
    feature = keyed >> shift
    starts = np.flatnonzero(np.diff(feature, prepend=-1))
    counts = np.diff(starts, append=len(keyed))
    order = np.argsort(keyed[starts] & ((1 << shift) - 1))
    return dict(zip(feature[starts][order].tolist(), counts[order].tolist(), strict=True))


class FastIdentifier(LanguageIdentifier):
    """py3langid's LanguageIdentifier with the feature count vectorized (see the module's doc)."""

    __slots__ = ("_nextmove", "_bases", "_outputs", "_window", "_padding", "_from_start", "_separates")

    def __init__(self, *args, window: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._nextmove = np.asarray(self.tk_nextmove)  # a view of py3langid's array, no copy
        self._bases = np.asarray(self._rowbase, dtype=np.int64)  # state -> its row * 256
        self._outputs = np.asarray(self.tk_output, dtype=np.int32)  # state -> feature, or -1
        transitions = self._nextmove.reshape(-1, 256)
        self._window = window_length(transitions, np.asarray(self.tk_row)) if window is None else window
        start = self._bases[0]
        self._from_start = self._nextmove[start : start + 256].copy()  # state after one byte
        # a byte on which the start state stays put (one in no n-gram, such as 0xFF, which UTF-8
        # never uses): with window - 1 of them before the text, every walk can take window bytes
        staying = np.flatnonzero(self._from_start == 0)
        if not len(staying):
            raise ValueError("py3langid's automaton has no byte that keeps it at its start")
        self._padding = bytes([staying[-1]]) * (self._window - 1)
        # that byte is in no n-gram, so from any state it leads back to the start (checked on the
        # automaton): one of them between texts walks every text as if it were alone
        self._separates = bool(np.all(self._nextmove.take(self._bases + staying[-1]) == 0))

    def features(self, data: bytes) -> np.ndarray:
        """The feature each byte's state emits (-1: none), in text order."""
        if not data:
            return np.empty(0, dtype=np.int32)
        padded = np.frombuffer(self._padding + data, dtype=np.uint8)
        overlap = self._window - 1  # each chunk starts with the bytes its first states need
        starts = range(0, len(data), CHUNK_BYTES)
        return np.concatenate([self._walk(padded[i : i + CHUNK_BYTES + overlap]) for i in starts])

    def _walk(self, padded: np.ndarray) -> np.ndarray:
        """The features of the states after bytes window - 1 .. end of `padded`."""
        size = len(padded) - (self._window - 1)
        # the state after byte i: walk from the start state over bytes i - window + 1 .. i, for
        # all i at once; ndarray.take beats fancy indexing here
        state = self._from_start.take(padded[:size])
        for step in range(1, self._window):
            state = self._nextmove.take(self._bases.take(state) + padded[step : step + size])
        return self._outputs.take(state)

    def visits(self, data: bytes) -> dict[int, int]:
        """{feature: count} as py3langid's visit_counts gives them, or {} for none."""
        features = self.features(data)
        return first_occurrence_counts(features[features >= 0])

    def batch_counts(self, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """The features of each text with their counts, each text's in the order of first
        occurrence (as visits gives them), from one walk over all the texts (apart by one separating
        byte): (features, counts, [(start, end) of text i in both])."""
        assert self._separates
        features = self.features(self._padding[:1].join(encoded))
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        starts = np.cumsum(lengths + 1) - lengths - 1  # where each text begins in the joined bytes
        emitting = np.flatnonzero(features >= 0)
        text_of = np.searchsorted(starts, emitting, side="right") - 1
        # one stable sort of (text, feature): each run starts at the feature's first occurrence
        keys = text_of * len(self.tk_output) + features[emitting]
        order = np.argsort(keys, kind="stable")
        run_starts = np.flatnonzero(np.diff(keys[order], prepend=-1))
        counts = np.diff(run_starts, append=len(order))
        firsts = order[run_starts]
        by_first = np.argsort(firsts)  # back to text order, and within a text to first occurrence
        firsts, counts = firsts[by_first], counts[by_first]
        bounds = np.searchsorted(text_of[firsts], np.arange(len(encoded) + 1))
        return features[emitting][firsts], counts, list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

    def classify_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """classify(text) of each text, with py3langid's arithmetic on the same numbers, so the same
        floats: each text's naive-Bayes sum as py3langid's _sparse_score computes it (the same NumPy
        operations on arrays of the same shapes), and the rest of _decide and classify (scaling,
        softmax, argmax: element by element) for all the texts at once."""
        if not self._separates or not self._norm_probs or self._alias_pairs or not texts:
            return [self.classify(text) for text in texts]
        encoded = [self._encode(text) for text in texts]
        features, counts, bounds = self.batch_counts(encoded)
        counts = counts.astype(np.float32)
        scores = np.zeros((len(texts), len(self.nb_classes)), dtype=np.float32)  # a text without features: 0
        for i, (a, b) in enumerate(bounds):
            if b > a:
                scores[i] = np.log1p(counts[a:b]) @ self.nb_ptc[features[a:b]] + self.nb_pc
        scale = [1.0 / math.sqrt(len(text) or 1) for text in encoded]
        scores *= np.array(scale, dtype=np.float32)[:, None]  # py3langid: float32 scores times a Python float
        np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        best = scores.argmax(axis=1)
        confidence = scores[np.arange(len(texts)), best].tolist()
        found = [(self.nb_classes[i], conf) for i, conf in zip(best.tolist(), confidence, strict=True)]
        if self.min_confidence is not None:
            found = [(lang if conf >= self.min_confidence else "und", conf) for lang, conf in found]
        return found

    def _raw_score(self, text):
        """py3langid's raw scores, from the vectorized count (text: the encoded bytes)."""
        if len(text) < SHORT_TEXT_BYTES:
            return super()._raw_score(text)
        visits = self.visits(text)
        if visits:
            return self._sparse_score(visits, self.nb_ptc)
        return super()._raw_score(b"")  # py3langid's scores for a text without any feature


def model_arrays(path: str, size: int, mtime_ns: int) -> dict[str, np.ndarray]:
    """py3langid's model file (an .npz inside LZMA) decompressed: size and mtime_ns only key the
    cache entry (table_cache.py), so that another model file is read afresh."""
    with lzma.open(path) as f:
        with np.load(io.BytesIO(f.read()), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    # the automaton's window (a breadth-first search, 0.1 s), kept with the model
    window = window_length(arrays["nextmove"].reshape(-1, 256), arrays["nextmove_row"])
    return {**arrays, "window": np.array([window])}


def load_identifier() -> FastIdentifier:
    """FastIdentifier.from_model_file(MODEL_FILE, norm_probs=True), with the decompressed model read
    from the cache (decompressing it took 0.3 s at every start of the clean stage). The arrays are
    turned into the identifier's as py3langid's modelio.load_model turns them."""
    path = MODEL_DIR / MODEL_FILE
    stat = path.stat()
    data = table_cache.cached_arrays(model_arrays, str(path), stat.st_size, stat.st_mtime_ns)
    return FastIdentifier(
        np.asarray(data["ptc"]),
        np.asarray(data["pc"]),
        data["classes"].tolist(),
        modelio._to_array(data["nextmove"]),
        data["out_feat"].tolist(),
        norm_probs=True,
        tk_row=modelio._to_array(data["nextmove_row"]),
        window=int(data["window"][0]),
    )


@lru_cache(maxsize=8)
def identifier(candidates: tuple[str, ...]):
    lid = load_identifier()
    unknown = sorted(set(candidates) - set(lid.nb_classes))
    if unknown:
        raise ValueError(f"clean.language.candidates: py3langid has no model for {unknown}")
    lid.set_languages(list(candidates))
    # set_languages keeps a strided view of the full table (142 languages a row): a copy of the
    # candidates' columns alone fits the CPU's cache (400 KB for two), same numbers
    lid.nb_ptc = np.ascontiguousarray(lid.nb_ptc)
    return lid


def detect(text: str, candidates: tuple[str, ...]) -> tuple[str, float]:
    """The most likely language among the candidates, and its probability (normalized over them)."""
    lang, prob = identifier(tuple(candidates)).classify(text)
    return lang, float(prob)


def decide(text: str, declared: str | None, cfg: Language) -> tuple[str, float, bool]:
    """(language, confidence, whether the identifier decided it) for one document."""
    lang, prob = detect(text, tuple(cfg.candidates))
    return decision(lang, prob, declared, cfg)


def decide_many(texts: list[str], declared: list[str | None], cfg: Language) -> list[tuple[str, float, bool]]:
    """decide(text, declared) for each document, detected as a batch (FastIdentifier.classify_many)."""
    found = identifier(tuple(cfg.candidates)).classify_many(texts)
    return [decision(lang, float(prob), d, cfg) for (lang, prob), d in zip(found, declared, strict=True)]


def decision(lang: str, prob: float, declared: str | None, cfg: Language) -> tuple[str, float, bool]:
    """The detected language when the identifier is sure enough (or nothing was declared), else
    the declared one."""
    if prob >= cfg.min_confidence or not declared:
        return lang, prob, True
    return declared, prob, False
