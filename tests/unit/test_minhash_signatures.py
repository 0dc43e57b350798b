"""The batched MinHash signatures (llmpipe.data.minhash_signatures) are datatrove's, number for
number: the same permutations and minima as MinhashDedupSignature.get_signature, the same simplified
text as simplify_text, the same sorted bucket files."""

import random
import struct
import sys
import unicodedata

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import WordTokenizer

from llmpipe.data import minhash_signatures
from llmpipe.data.minhash_signatures import CharacterMinhashSignature, shingle_hashes
from llmpipe.data.near_dedup import minhash_config
from llmpipe.data.text_simplify import Simplifier

from ..conftest import typed_section

SAMPLES = [
    "",
    "abcd",  # shorter than a shingle: no signature
    "abcde",
    "Hello, World! Hello, world.",
    "Ünïcödé ÇÀFÉ naïve résumé",
    "\u0301\u0301 leading marks",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "🙂🙂🙂 emoji 🙂🙂🙂",
    "Table 1.9 and Table 1.10, Monday, January",
    "tabs\tand\nnewlines\r\n  and   spaces",
    "x" * 5000,
]


def random_texts(rng, count: int) -> list[str]:
    """Random text over the whole of Unicode (no lone surrogates: they cannot be encoded)."""
    texts = []
    for _ in range(count):
        chars = [chr(rng.randrange(0x20, 0x30000)) for _ in range(rng.randrange(0, 300))]
        texts.append("".join(c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF))
    return texts


def test_simplify_is_datatroves_simplify_text_character_for_character():
    rng = random.Random(0)
    marks = [chr(cp) for cp in range(0x300, 0x370)] + ["\u0e31", "\u093f", "\U000e0100"]
    texts = SAMPLES + random_texts(rng, 300) + ["".join(rng.choice(marks + list("ab ")) for _ in range(50))]
    for config in (TextNormConfig(norm_numbers=False), TextNormConfig(), TextNormConfig(norm_unicode_diacritics=False)):
        simplify = Simplifier(config)
        for text in texts:
            assert simplify(text) == simplify_text(text, config), repr(text)


def test_every_combining_mark_of_pythons_unicode_database_is_removed():
    simplify = Simplifier(TextNormConfig())
    every_mark = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Mn")
    assert simplify("a" + every_mark + "b") == simplify_text("a" + every_mark + "b") == "ab"


class Unused(WordTokenizer):
    """datatrove's step wants a word tokenizer (spaCy for "en"); the reference only uses its
    get_signature, on our shingles."""

    def word_tokenize(self, text):
        raise AssertionError("not used")

    def sent_tokenize(self, text):
        raise AssertionError("not used")

    def span_tokenize(self, text):
        raise AssertionError("not used")


def reference_records(texts: list[str], step: MinhashDedupSignature, simplify) -> list[list[tuple]]:
    """What datatrove's signature step writes per band (before sorting) for these texts, with our
    character shingles: its get_signature on each text's distinct shingle hashes."""
    bands = [[] for _ in range(step.config.num_buckets)]
    for position, text in enumerate(texts):
        hashes, _ = shingle_hashes([simplify(text)], step.config.n_grams)
        if hashes.size == 0:
            continue
        for band, values in enumerate(step.get_signature(np.unique(hashes).reshape(-1, 1))):
            bands[band].append((*values, position))
    return [sorted(records) for records in bands]


def test_each_band_holds_datatroves_signatures_sorted_as_datatrove_sorts_them(tmp_path, monkeypatch):
    config = minhash_config(typed_section("clean").dedup, seed=7)
    texts = SAMPLES + random_texts(random.Random(1), 200)
    monkeypatch.setattr(minhash_signatures, "BATCH_CHARS", 2000)  # many batches, documents across blocks
    monkeypatch.setattr(minhash_signatures, "BLOCK_ROWS", 100)
    monkeypatch.setattr(minhash_signatures, "DISTINCT_FROM", 150)  # repeats dropped from some texts only
    ours = CharacterMinhashSignature(str(tmp_path), config)
    for _ in ours.run((Document(text=t, id=str(i)) for i, t in enumerate(texts)), rank=3, world_size=8):
        pass
    expected = reference_records(
        texts, MinhashDedupSignature(str(tmp_path / "ref"), config, language=Unused()), ours.simplify
    )
    record = struct.Struct(f"<{config.hashes_per_bucket}QI")
    data = (tmp_path / "00003.minhash.sig").read_bytes()  # the task's bands in turn
    per_band = len(data) // config.num_buckets
    assert len(data) == per_band * config.num_buckets and [p.name for p in tmp_path.iterdir()] == ["00003.minhash.sig"]
    for band in range(config.num_buckets):
        assert list(record.iter_unpack(data[band * per_band : (band + 1) * per_band])) == expected[band]
    assert ours.stats["total"].total == len(texts)


def test_shingles_do_not_cross_from_one_text_into_the_next():
    together, owner = shingle_hashes(["abcdef", "ghijkl"], 5)
    apart = np.concatenate([shingle_hashes([t], 5)[0] for t in ("abcdef", "ghijkl")])
    assert together.tolist() == apart.tolist() and owner.tolist() == [0, 0, 1, 1]
