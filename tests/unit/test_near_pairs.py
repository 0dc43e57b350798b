"""Near-duplicate confirmation within a band's group (llmpipe.data.near_dedup.ConfirmedPairs.confirm):
each document makes at most `budget` comparisons over all the bands of a task, duplicates are
found, the documents that ran out are counted."""

import random

from llmpipe.data.near_dedup import Clusters, ConfirmedPairs, minhash_config, random_edits

from ..conftest import typed_section


def step(budget: int) -> ConfirmedPairs:
    config = minhash_config(typed_section("clean").dedup, seed=0)
    return ConfirmedPairs("sigs", "docs", "pairs", config, similarity=0.8, budget=budget)


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
    assert pairs_step.stats["candidates"].total <= len(group) ** 2 / 2
    capped = step(budget=20)
    found = set(capped.confirm(group, keys, Clusters()))
    assert capped.stats["candidates"].total <= 20 * len(group)  # ...and at most 20 per document with one
    assert capped.stats["compare_capped"].total > 0  # the ones that stopped unmatched are counted
    assert found <= copies and all(similar in copies for similar in found)


def test_a_pair_confirmed_in_an_earlier_band_is_not_confirmed_again():
    rng = random.Random(1)
    group, keys, copies = family(rng, n=20, planted=3)
    clusters, first = Clusters(), step(budget=50)
    assert set(first.confirm(group, keys, clusters)) == copies
    again = step(budget=50)
    assert list(again.confirm(group, keys, clusters)) == []  # the same group in another band: known already
    assert again.stats["confirmed"].total == 0


def test_the_budget_is_per_document_over_all_the_bands_of_a_task():
    group, keys, _ = family(random.Random(2), n=200, planted=0)
    one_band = step(budget=20)
    list(one_band.confirm(group, keys, Clusters()))
    spent_in_one = one_band.stats["candidates"].total
    two_bands = step(budget=20)
    for _ in range(2):  # the same family shares a second band: no document gets a second budget
        list(two_bands.confirm(group, keys, Clusters()))
    assert two_bands.stats["candidates"].total <= 20 * len(group)
    ran_out = [doc for doc, spent in two_bands.spent.items() if spent > 20]  # marked once counted
    assert ran_out and two_bands.stats["compare_capped"].total == len(ran_out)  # once each, not once per band
    # only the early documents, which met fewer than 20 representatives in the first band, compare again
    assert two_bands.stats["candidates"].total - spent_in_one <= 20 * 20
