"""MinHash signatures of character shingles (llmpipe.clean.minhash, rensa's R-MinHash):
identical texts get identical signatures, similar texts share a band about as often as their
Jaccard similarity predicts, unrelated texts rarely do, the same seed gives the same signatures,
Chinese and English alike; the signature files hold each band's records as documented."""

import multiprocessing
import random
from pathlib import Path

import numpy as np
import pytest
from datatrove.data import Document
from datatrove.utils.text import simplify_text

from llmpipe.clean import minhash
from llmpipe.clean.minhash import CharacterMinhashSignature, read_band, shingles, signature
from llmpipe.clean.near_dedup import minhash_config, random_edits

from ..conftest import typed_section

FORTUNES = Path("/usr/share/games/fortunes")


def fortunes(name: str, count: int) -> list[str]:
    """The first `count` fortunes of a fortune file longer than 80 characters."""
    path = FORTUNES / name
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian package fortunes / fortunes-zh)")
    texts = [t.strip() for t in path.read_text(encoding="utf-8").split("\n%\n")]
    return [t for t in texts if len(t) > 80][:count]


def config(seed: int = 7):
    return minhash_config(typed_section("clean").dedup, seed=seed)


def signed(texts: list[str], seed: int = 7) -> np.ndarray:
    """(texts, bands, hashes per band) signatures of the texts as the signature step makes them."""
    c = config(seed)
    simple = [simplify_text(t, c.norm_config) for t in texts]
    sig = np.array([signature(t, c.n_grams, c.num_buckets * c.hashes_per_bucket, c.seed) for t in simple])
    return sig.reshape(len(texts), c.num_buckets, c.hashes_per_bucket)


def shares_a_band(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.any(np.all(a == b, axis=-1)))


def jaccard(a: str, b: str, n: int) -> float:
    x, y = set(shingles(a, n)), set(shingles(b, n))
    return len(x & y) / len(x | y)


@pytest.mark.parametrize("name", ["science", "tang300"])
def test_identical_texts_get_identical_signatures(name):
    texts = fortunes(name, 50)
    twice = signed(texts + texts)
    assert np.array_equal(twice[: len(texts)], twice[len(texts) :])
    assert len({row.tobytes() for row in twice}) == len(set(texts))  # and different texts different ones
    # texts that differ only in case, punctuation and spacing simplify to the same text
    variants = [t.upper().replace(" ", "  ").replace("\n", " ,\n") + "!!" for t in texts]
    assert np.array_equal(signed(variants), twice[: len(texts)])


@pytest.mark.parametrize("name", ["science", "tang300"])
def test_similar_texts_share_a_band_as_their_jaccard_predicts_and_unrelated_ones_rarely(name):
    """A signature value agrees between two texts with probability their shingles' Jaccard J, so
    with b bands of r values they share a band with p = 1 - (1 - J^r)^b."""
    c, rng = config(), random.Random(0)
    texts = fortunes(name, 150)
    edited = [random_edits(t, rng.uniform(0.05, 0.35), rng) for t in texts]  # J from about 0.1 to 0.6
    sig, sig_edited = signed(texts), signed(edited)
    simple = [simplify_text(t, c.norm_config) for t in texts + edited]
    j = np.array([jaccard(simple[i], simple[len(texts) + i], c.n_grams) for i in range(len(texts))])
    agree = (sig == sig_edited).mean(axis=(1, 2))
    assert abs(agree.mean() - j.mean()) < 0.02
    expected = 1 - (1 - j**c.hashes_per_bucket) ** c.num_buckets
    found = np.array([shares_a_band(sig[i], sig_edited[i]) for i in range(len(texts))])
    # a sum of independent Bernoulli(expected): within 4 standard deviations of its mean
    assert abs(found.sum() - expected.sum()) <= 4 * np.sqrt((expected * (1 - expected)).sum()) + 1
    assert found[j >= 0.3].all()  # the pairs the clean stage must find (similarity 0.8) are all candidates
    # unrelated texts of the same file share a band no more often than their Jaccard predicts
    pairs = [(i, k) for i in range(100) for k in range(i + 1, 100)]
    false = [(i, k) for i, k in pairs if shares_a_band(sig[i], sig[k])]
    expected_false = sum(1 - (1 - jaccard(simple[i], simple[k], c.n_grams) ** 2) ** 40 for i, k in pairs)
    assert len(false) <= expected_false + 4 * np.sqrt(expected_false) + 3 and len(false) < 0.05 * len(pairs)


def test_the_seed_decides_the_signatures():
    texts = fortunes("science", 20) + fortunes("song100", 20)
    assert np.array_equal(signed(texts, seed=3), signed(texts, seed=3))
    assert not np.any(np.all(signed(texts, seed=3) == signed(texts, seed=4), axis=-1))


def test_a_long_text_signed_in_pieces_has_the_signature_of_the_whole(monkeypatch):
    c = config()
    text = simplify_text("\n".join(fortunes("science", 40) + fortunes("tang300", 40)), c.norm_config)
    whole = signature(text, c.n_grams, 80, 7)
    monkeypatch.setattr(minhash, "PIECE_CHARS", 100)  # many pieces
    assert signature(text, c.n_grams, 80, 7) == whole


def sign_in_child(texts: list[str], queue):
    queue.put(signed(texts).tolist())


def test_a_worker_forked_after_the_parent_signed_signs_too():
    """datatrove's local executor forks its workers; a library thread pool started in the parent
    (rensa's batch API uses Rayon's) would leave the child waiting forever."""
    texts = fortunes("science", 300) * 4
    parent = signed(texts)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=sign_in_child, args=(texts, queue))
    child.start()
    try:
        assert np.array_equal(np.array(queue.get(timeout=60)), parent)
    finally:
        child.join(timeout=5)
        child.kill()


def test_the_signature_files_hold_each_bands_records_in_stream_order(tmp_path, monkeypatch):
    c = config()
    texts = ["", "abcd", *fortunes("science", 30), "x" * 500, *fortunes("tang300", 30)]  # two without shingles
    monkeypatch.setattr(minhash, "BATCH_DOCS", 7)  # many batches
    monkeypatch.setattr(minhash, "PIECE_CHARS", 200)  # "x" * 500 and the poems in pieces
    step = CharacterMinhashSignature(str(tmp_path), c)
    for _ in step.run((Document(text=t, id=str(i)) for i, t in enumerate(texts)), rank=3, world_size=8):
        pass
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.sig")) == [
        f"bucket_{band:03d}/00003.minhash.sig" for band in range(c.num_buckets)
    ]
    positions = [i for i, t in enumerate(texts) if len(simplify_text(t, c.norm_config)) >= c.n_grams]
    expected = signed([texts[i] for i in positions])
    for band in range(c.num_buckets):
        [(rank, records)] = read_band(tmp_path, band, c)
        assert rank == 3 and records["doc"].tolist() == positions
        assert np.array_equal(records["hashes"], expected[:, band])
    assert step.stats["total"].total == len(texts)
    path = tmp_path / "bucket_001" / "00003.minhash.sig"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="bucket_001/00003.minhash.sig"):
        read_band(tmp_path, 1, c)
