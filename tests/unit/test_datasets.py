import numpy as np
import pytest

from llmpipe.data.labeled_docs import choose_labels
from llmpipe.data.splits import split_of
from llmpipe.data.token_files import document_fraction, token_dtype
from llmpipe.data.windows import DocumentSequences, RandomWindows, SequentialWindows
from llmpipe.networks.batches import pad_windows
from llmpipe.tokenize.fast_encoding import flat_ids
from llmpipe.training.loaders import Epochs


def test_split_of_is_stable_and_close_to_the_fractions():
    ids = [f"doc:{i}" for i in range(20000)]
    splits = [split_of(i, 0.1, 0.05) for i in ids]
    assert splits == [split_of(i, 0.1, 0.05) for i in ids]
    assert abs(splits.count("val") / len(ids) - 0.1) < 0.01
    assert abs(splits.count("test") / len(ids) - 0.05) < 0.01


def test_token_file_ends_every_document_with_eot(tmp_path):
    flat = flat_ids([[5, 6], [7]], eot_id=0, dtype=token_dtype(100))
    flat.tofile(tmp_path / "t.bin")
    assert len(flat) == 5
    assert np.fromfile(tmp_path / "t.bin", dtype=np.uint16).tolist() == [5, 6, 0, 7, 0]


def test_random_windows_are_reproducible_and_shifted_by_one():
    tokens = np.arange(1000, dtype=np.uint16)
    a, b = RandomWindows(tokens, 16, 10, seed=3), RandomWindows(tokens, 16, 10, seed=3)
    x, y = a[4]
    assert (x == b[4][0]).all() and (y == x + 1).all() and len(x) == 16
    assert not (RandomWindows(tokens, 16, 10, seed=4)[4][0] == x).all()


def test_sequential_windows_predict_every_token_but_the_first_once():
    tokens = np.arange(50, dtype=np.uint16)
    ds = SequentialWindows(tokens, 8)
    xs, ys = pad_windows([ds[i] for i in range(len(ds))])
    targets = ys[ys != -100].tolist()
    assert targets == list(range(1, 50))


def test_choose_labels_by_count_and_explicit_list():
    docs = [{"label": "a"}] * 5 + [{"label": "b"}] * 3 + [{"label": "c"}] * 1
    assert choose_labels(docs, None, min_examples=2, max_labels=None) == ["a", "b"]
    assert choose_labels(docs, None, min_examples=1, max_labels=2) == ["a", "b"]
    assert choose_labels(docs, ["c", "a"], min_examples=100, max_labels=None) == ["c", "a"]
    with pytest.raises(ValueError, match="'z'"):
        choose_labels(docs, ["z"], 1, None)
    with pytest.raises(ValueError, match="fewer than 2 labels"):
        choose_labels(docs, None, min_examples=4, max_labels=None)


def test_ranks_split_every_global_batch_between_them(monkeypatch):
    import llmpipe.training.loaders as datasets

    def batches(world: int, skip: int = 0) -> list[set]:
        """Global batches of 4 indices, as `world` ranks with 4 // world each see them."""
        per_rank = []
        for rank in range(world):
            monkeypatch.setattr(datasets, "data_parallel_rank", lambda rank=rank: (rank, world))
            sampler = datasets.SkipSampler(16)
            sampler.skip = skip
            per_rank.append(list(sampler))
        micro = 4 // world
        return [set().union(*(r[i : i + micro] for r in per_rank)) for i in range(0, len(per_rank[0]), micro)]

    assert batches(1) == batches(2) == batches(4) == [set(range(i, i + 4)) for i in range(0, 16, 4)]
    assert batches(2, skip=2) == batches(1, skip=4) == [set(range(4, 8)), set(range(8, 12)), set(range(12, 16))]


def test_epochs_shuffle_each_pass_reproducibly():
    data = list(range(10))
    epochs = Epochs(data, 25, seed=3)
    items = [epochs[i] for i in range(25)]
    assert sorted(items[:10]) == sorted(items[10:20]) == data and items[:10] != items[10:20]
    assert items == [Epochs(data, 25, seed=3)[i] for i in range(25)]
    assert items != [Epochs(data, 25, seed=4)[i] for i in range(25)]


def test_document_fraction_takes_whole_documents_nested_and_from_everywhere():
    # 400 documents of 1 to 9 tokens, in source order: ids 1..4 stand for four sources
    rng = np.random.default_rng(0)
    docs = [[1 + i * 4 // 400] * int(rng.integers(1, 10)) + [0] for i in range(400)]
    tokens = np.array([t for doc in docs for t in doc], dtype=np.uint16)
    taken = {}
    for fraction in (0.125, 0.25, 0.5):
        part = document_fraction(tokens, eot_id=0, fraction=fraction, seed=3)
        assert fraction * len(tokens) <= len(part) < fraction * len(tokens) + 10  # just reaches it
        assert part[-1] == 0 and set(np.unique(part)) == {0, 1, 2, 3, 4}  # whole documents, every source
        pieces = np.split(part, np.flatnonzero(part == 0)[:-1] + 1)
        taken[fraction] = {tuple(p) for p in pieces}
        assert all(list(p) in docs for p in pieces)
    assert taken[0.125] <= taken[0.25] <= taken[0.5] and len(taken[0.125]) < len(taken[0.25]) < len(taken[0.5])
    assert document_fraction(tokens, 0, 0.25, seed=3).tolist() == document_fraction(tokens, 0, 0.25, seed=3).tolist()
    assert document_fraction(tokens, 0, 1.0, seed=3) is tokens
    with pytest.raises(ValueError, match="end-of-text"):
        document_fraction(tokens[:-1], eot_id=0, fraction=0.5, seed=3)


def test_document_sequences_frame_each_text_with_eot_and_predict_its_next_token():
    texts = DocumentSequences([[5, 6, 7], [], [8]], eot_id=0)
    assert len(texts) == 2  # an empty text has nothing to learn from
    x, y = texts[0]
    assert x.tolist() == [0, 5, 6, 7] and y.tolist() == [5, 6, 7, 0]  # from a document start to its end
    xs, ys = pad_windows([texts[0], texts[1]])
    assert ys[1].tolist() == [8, 0, -100, -100]  # padding is never a target
