import random

import numpy as np
import pytest

from llmpipe.data import language_id
from llmpipe.data.language_id import decide, detect, identifier

from ..conftest import typed_section

CFG = typed_section("clean.language", candidates=["en", "zh", "de", "fr", "la"], min_confidence=0.8)


def test_clear_english_chinese_and_french_are_identified():
    assert detect("The quick brown fox jumps over the lazy dog.", ("en", "zh", "fr"))[0] == "en"
    assert detect("床前明月光，疑是地上霜。举头望明月，低头思故乡。", ("en", "zh", "fr"))[0] == "zh"
    lang, prob = detect("C'est magnifique, mais ce n'est pas la guerre.", ("en", "zh", "fr"))
    assert lang == "fr" and prob > 0.9


def test_an_unsure_detection_keeps_the_declared_language():
    lang, prob, detected = decide("Klatu barada nikto.", "en", CFG)  # alien, in a quote from a film
    assert (lang, detected) == ("en", False) and prob < 0.8
    assert decide("Klatu barada nikto.", "de", CFG)[0] == "de"  # the source's word stands
    assert decide("Alea iacta est, the die is cast, said Gaius Julius Caesar", None, CFG)[2]  # nothing declared


def test_an_unknown_candidate_is_named():
    with pytest.raises(ValueError, match=r"no model for \['xx'\]"):
        detect("text", ("en", "xx"))


# Identity with py3langid: the fast feature count must give its results bit for bit.

CANDIDATES = ("en", "zh", "de", "fr", "ja", "ru")
ENGLISH = "The committee will publish its findings on the state of the river next spring. "
CHINESE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。今天的天气很好，我们去公园散步吧。"
GERMAN = "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung. "
TEXTS = {
    "english": ENGLISH * 3,
    "chinese": CHINESE * 2,
    "german": GERMAN * 3,
    "mixed": ENGLISH + CHINESE + GERMAN + "Привет, как дела? こんにちは世界",
    "emoji": "Great game tonight 🎉🔥👍🏽 see you all 😀 " * 8,
    "control characters": "\x00\x01\x1b[31mred\x1b[0m\x7f\r\n\tok\x0c" * 20,
    "uppercase": "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND RUNS AWAY " * 4,
    "decomposed accents": "e\u0301te\u0301 a\u0300 la plage " * 12,
    "lone surrogate": ("abc\ud800def " + ENGLISH) * 2,
    "empty": "",
    "whitespace": " \n\t  \r\n" * 40,
    "one byte": "a",
    "long": (ENGLISH + GERMAN + CHINESE) * 2000,
}


@pytest.fixture(scope="module")
def reference():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    lid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    lid.set_languages(list(CANDIDATES))
    return lid


def random_texts(count: int, seed: int = 0) -> list[str]:
    """Random code points from ASCII to emoji, control characters and surrogates, of all lengths."""
    rng = random.Random(seed)
    ranges = [(0, 0x7F), (0, 0x1F), (0x80, 0x7FF), (0x800, 0xFFFF), (0xD800, 0xDFFF), (0x1F300, 0x1FAFF)]
    texts = []
    for _ in range(count):
        size = rng.choice([0, 1, 2, 5, 20, 149, 150, 151, 400, 1500])
        texts.append("".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(size)))
    return texts


# (SHORT_TEXT_BYTES, FEW_FEATURES, CHUNK_BYTES): as shipped; NumPy's walk for every text; and also
# sorting every count, in chunks shorter than the window
SHIPPED = (language_id.SHORT_TEXT_BYTES, language_id.FEW_FEATURES, language_id.CHUNK_BYTES)
PATHS = [SHIPPED, (0, language_id.FEW_FEATURES, language_id.CHUNK_BYTES), (0, 0, 3)]


@pytest.mark.parametrize("short_text_bytes, few_features, chunk_bytes", PATHS)
def test_detections_are_py3langids_bit_for_bit(reference, monkeypatch, short_text_bytes, few_features, chunk_bytes):
    monkeypatch.setattr(language_id, "SHORT_TEXT_BYTES", short_text_bytes)
    monkeypatch.setattr(language_id, "FEW_FEATURES", few_features)
    monkeypatch.setattr(language_id, "CHUNK_BYTES", chunk_bytes)
    texts = [*TEXTS.items(), *(("random", text) for text in random_texts(300))]
    for name, text in texts:
        lang, prob = reference.classify(text)
        assert detect(text, CANDIDATES) == (lang, float(prob)), name
    for data in (b"\xff\xfe broken utf-8 \xc3", ENGLISH.encode() + b"\xe2\x82"):  # bytes, too
        assert identifier(CANDIDATES).classify(data) == reference.classify(data)


def test_a_batch_gets_each_texts_own_detection(reference):
    """classify_many walks the texts of a batch together, apart by one separating byte: each gets
    the detection it gets alone (no n-gram spans two texts), also texts in the batch twice."""
    texts = [*TEXTS.values(), *random_texts(300, seed=2), ENGLISH, ENGLISH]
    random.Random(3).shuffle(texts)
    fast = identifier(CANDIDATES)
    assert fast._separates  # the separating byte leads every state back to the start
    batched = fast.classify_many(texts)
    assert batched == [reference.classify(text) for text in texts]
    assert fast.classify_many([]) == []
    declared = ["de" if i % 2 else None for i in range(len(texts))]
    assert language_id.decide_many(texts, declared, CFG) == [
        decide(t, d, CFG) for t, d in zip(texts, declared, strict=True)
    ]


def test_feature_counts_are_py3langids_in_the_same_order(reference):
    from py3langid.langid import visit_counts

    fast = identifier(CANDIDATES)
    for name, text in [*TEXTS.items(), *(("random", text) for text in random_texts(100, seed=1))]:
        data = reference._encode(text)
        want = visit_counts(reference.tk_nextmove, reference._rowbase, reference.tk_output, data) or {}
        assert list(fast.visits(data).items()) == list(want.items()), name


def state_pairs(lid, length: int) -> np.ndarray:
    """Every (row of g(x), row of g(x[1:])) over byte strings x of `length`, g(x) being the state
    the automaton reaches on x from the start: a row holds a state's 256 transitions."""
    row = np.asarray(lid.tk_row, dtype=np.int64)
    successors = row[lid._nextmove].reshape(-1, 256)  # row -> rows of its 256 next states
    pairs = np.stack([successors[row[0]], np.full(256, row[0])], axis=1)
    for _ in range(length - 1):
        codes = successors[pairs[:, 0]].ravel() * len(successors) + successors[pairs[:, 1]].ravel()
        codes = np.unique(codes)
        pairs = np.stack([codes // len(successors), codes % len(successors)], axis=1)
    return pairs


def test_the_last_window_bytes_decide_the_state():
    """Exhaustive proof for the shipped model: for every x of `window` bytes, g(x) and g(x[1:])
    move alike on every byte, so g(y) = g(y[1:]) for every longer y: the state after a byte
    depends on the last `window` bytes only. One byte fewer would not do."""
    lid = identifier(CANDIDATES)
    pairs = state_pairs(lid, lid._window)
    assert (pairs[:, 0] == pairs[:, 1]).all()
    pairs = state_pairs(lid, lid._window - 1)
    assert (pairs[:, 0] != pairs[:, 1]).any()
    assert lid._padding == b"\xff" * (lid._window - 1)  # a byte UTF-8 never uses
