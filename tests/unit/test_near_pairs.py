"""Near-duplicate confirmation within a band's group (llmpipe.clean.near_dedup.ConfirmedPairs.confirm):
each document makes at most `budget` comparisons over all the bands of a task, duplicates are
found, the documents that ran out are counted; and the whole path from signature files to pairs."""

import json
import random
import struct
from pathlib import Path

from datatrove.data import Document

from llmpipe.clean.minhash import CharacterMinhashSignature
from llmpipe.clean.near_dedup import Clusters, ConfirmedPairs, DedupKeys, minhash_config, random_edits, similar
from llmpipe.clean.normalize import dedup_key

from ..conftest import typed_section


def step(budget: int, compare_chars: int = 1 << 62) -> ConfirmedPairs:
    config = minhash_config(typed_section("clean").dedup, seed=0)
    return ConfirmedPairs("sigs", "docs", "pairs", config, similarity=0.8, budget=budget, compare_chars=compare_chars)


def family(rng, n: int = 300, planted: int = 10) -> tuple[list, dict, set]:
    """n unrelated texts sharing a band (a family of generated pages), then edited copies of some."""
    words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "lambda", "zeta"]
    texts = [" ".join(rng.choice(words) for _ in range(30)) + f" page {i}" for i in range(n)]
    keys = {(0, i): text for i, text in enumerate(texts)}
    copies = set()
    for j, i in enumerate(rng.sample(range(n), planted)):
        keys[(1, j)] = random_edits(texts[i], 0.05, rng)
        copies.add(((0, i), (1, j)))
    return sorted(keys), keys, copies


def test_every_planted_copy_is_confirmed_with_comparisons_linear_in_the_group():
    group, keys, copies = family(random.Random(0))
    pairs_step = step(budget=1000)
    pairs = set(pairs_step.confirm(group, keys, Clusters()))
    assert pairs == copies
    # unrelated pages each meet every representative before them: at most n^2 / 2 with no cap...
    assert pairs_step.counts["candidates"] <= len(group) ** 2 / 2
    capped = step(budget=20)
    found = set(capped.confirm(group, keys, Clusters()))
    assert capped.counts["candidates"] <= 20 * len(group)  # ...and at most 20 per document with one
    assert capped.counts["compare_capped"] > 0  # the ones that stopped unmatched are counted
    assert found <= copies and all(similar in copies for similar in found)


def test_a_pair_confirmed_in_an_earlier_band_is_not_confirmed_again():
    rng = random.Random(1)
    group, keys, copies = family(rng, n=20, planted=3)
    clusters, first = Clusters(), step(budget=50)
    assert set(first.confirm(group, keys, clusters)) == copies
    again = step(budget=50)
    assert list(again.confirm(group, keys, clusters)) == []  # the same group in another band: known already
    assert again.counts["confirmed"] == 0


def test_the_budget_is_per_document_over_all_the_bands_of_a_task():
    group, keys, _ = family(random.Random(2), n=200, planted=0)
    one_band = step(budget=20)
    list(one_band.confirm(group, keys, Clusters()))
    spent_in_one = one_band.counts["candidates"]
    two_bands = step(budget=20)
    for _ in range(2):  # the same family shares a second band: no document gets a second budget
        list(two_bands.confirm(group, keys, Clusters()))
    assert two_bands.counts["candidates"] <= 20 * len(group)
    ran_out = two_bands.capped
    assert ran_out and two_bands.counts["compare_capped"] == len(ran_out)  # once each, not once per band
    assert all(two_bands.spent[doc] == 20 for doc in ran_out)
    # only the early documents, which met fewer than 20 representatives in the first band, compare again
    assert two_bands.counts["candidates"] - spent_in_one <= 20 * 20


def test_a_comparison_of_long_texts_takes_more_of_the_budget():
    """Edit distance costs about the square of the length: a comparison of texts over compare_chars
    counts as ceil(longer / compare_chars), so a family of long pages makes fewer comparisons."""
    group, keys, copies = family(random.Random(3), n=200, planted=10)
    longest = max(len(keys[doc]) for doc in group)
    by_count = step(budget=20)
    list(by_count.confirm(group, keys, Clusters()))
    by_length = step(budget=20, compare_chars=longest // 4)  # every comparison costs 4 or 5
    found = set(by_length.confirm(group, keys, Clusters()))
    assert by_length.counts["candidates"] <= 5 * len(group) < by_count.counts["candidates"]
    assert found <= copies  # fewer comparisons, never a wrong pair
    assert by_length.counts["compare_capped"] == len(by_length.capped) > 0
    # up to compare_chars a comparison counts as one: the same comparisons as a budget in counts
    same = step(budget=20, compare_chars=longest)
    list(same.confirm(group, keys, Clusters()))
    assert same.counts["candidates"] == by_count.counts["candidates"]


def test_dedup_keys_are_shared_by_a_process_until_the_streams_change(tmp_path):
    def write(texts):
        lines = [json.dumps({"text": t, "id": str(i), "metadata": {}}) for i, t in enumerate(texts)]
        (tmp_path / "00000.jsonl").write_text("\n".join(lines) + "\n")

    write(["Hello  World", "Second text"])
    with DedupKeys.of(tmp_path) as keys:
        assert keys[(0, 1)] == "second text" and keys[(0, 0)] == "hello world"
    again = DedupKeys.of(tmp_path)
    assert again is keys and again.files == {}  # the next task reuses the keys; its streams were closed
    with again:
        assert again[(0, 0)] == "hello world"  # from the cache, the stream reopened on demand
        assert again[(0, 1)] == "second text"
    write(["Another corpus entirely", "in the same folder"])  # a new run writing the same folder
    with DedupKeys.of(tmp_path) as fresh:
        assert fresh is not keys and fresh[(0, 1)] == "in the same folder"
    DedupKeys.shared.clear()


def test_pairs_are_found_from_the_signature_files_of_several_signing_tasks(tmp_path):
    """The whole near_pairs path on real files: two signing tasks write their streams and signature
    files (clean/minhash.py), ConfirmedPairs reads every band back and confirms the planted
    copies, English and Chinese, across tasks, and only pairs that are similar."""
    rng = random.Random(4)
    texts = []
    for name in ("science", "tang300"):
        path = Path("/usr/share/games/fortunes") / name
        texts += [t.strip() for t in path.read_text(encoding="utf-8").split("\n%\n") if len(t.strip()) > 80][:60]
    copies = [random_edits(t, 0.05, rng) for t in texts[::6]]  # every 6th text, English and Chinese
    streams = {0: texts, 1: copies}
    config = minhash_config(typed_section("clean").dedup, seed=0)
    for rank, stream in streams.items():
        lines = [json.dumps({"text": t, "id": f"{rank}-{i}", "metadata": {}}) for i, t in enumerate(stream)]
        (tmp_path / "docs").mkdir(exist_ok=True)
        (tmp_path / "docs" / f"{rank:05d}.jsonl").write_text("\n".join(lines) + "\n")
        signer = CharacterMinhashSignature(str(tmp_path / "sigs"), config)
        list(signer.run((Document(text=t, id=str(i)) for i, t in enumerate(stream)), rank=rank, world_size=2))
    pairs_step = ConfirmedPairs(tmp_path / "sigs", tmp_path / "docs", tmp_path / "pairs", config, 0.8, budget=64)
    for rank in range(4):  # four tasks, ten bands each
        list(pairs_step.run(None, rank=rank, world_size=4))
    found = set()
    for path in (tmp_path / "pairs").glob("*.dups"):
        data = path.read_bytes()
        found |= {((a, b), (c, d)) for a, b, c, d in struct.iter_unpack("<4I", data)}
    planted = {((0, 6 * j), (1, j)) for j in range(len(copies))}
    assert planted <= found
    # the rest are near duplicates the fortunes hold themselves (two endings of one syllogism)
    for (ra, a), (rb, b) in found - planted:
        assert similar(dedup_key(streams[ra][a]), dedup_key(streams[rb][b]), 0.8)
    assert len(found - planted) <= 2
    DedupKeys.shared.clear()
