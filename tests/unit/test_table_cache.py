"""Tables kept on disk between runs (llmpipe.data.table_cache): built once, read back equal, and
never an error when the cache folder is unusable or a stored entry is damaged."""

import numpy as np

from llmpipe.data import table_cache

CALLS = []


def squares(n: int) -> dict[str, np.ndarray]:
    CALLS.append(n)
    return {"squares": np.arange(n) ** 2, "n": np.array([n])}


def test_built_once_then_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPIPE_CACHE", str(tmp_path))
    CALLS.clear()
    first = table_cache.cached_arrays(squares, 5)
    second = table_cache.cached_arrays(squares, 5)
    other = table_cache.cached_arrays(squares, 6)
    assert CALLS == [5, 6]  # 5 came from disk the second time; other arguments are another entry...
    assert np.array_equal(first["squares"], second["squares"]) and second["n"][0] == 5
    assert len(other["squares"]) == 6
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["squares"]  # one entry per table, the latest
    assert table_cache.cached_arrays(squares, 5)["n"][0] == 5 and CALLS == [5, 6, 5]


def test_a_damaged_entry_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPIPE_CACHE", str(tmp_path))
    CALLS.clear()
    table_cache.cached_arrays(squares, 4)
    entry = table_cache.entry(squares, (4,))
    entry.write_bytes(entry.read_bytes()[:50])  # cut short, as a full disk would leave it
    assert table_cache.cached_arrays(squares, 4)["squares"].tolist() == [0, 1, 4, 9]
    assert CALLS == [4, 4]
    assert table_cache.cached_arrays(squares, 4)["n"][0] == 4 and CALLS == [4, 4]  # and stored whole again


def test_an_unusable_cache_folder_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LLMPIPE_CACHE", str(blocker / "cache"))
    CALLS.clear()
    assert table_cache.cached_arrays(squares, 3)["squares"].tolist() == [0, 1, 4]
    assert table_cache.cached_arrays(squares, 3)["squares"].tolist() == [0, 1, 4]
    assert CALLS == [3, 3]
    assert blocker.read_text() == "not a folder"
