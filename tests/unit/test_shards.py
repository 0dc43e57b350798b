"""Work split by records (record_ranges) and splits read as one stream over their shards (TokenShards)."""

import json
from itertools import pairwise

import numpy as np
import pytest

from llmpipe.clean.record_ranges import RecordRangeReader, byte_range, lines_in_range
from llmpipe.data.token_files import TokenShards


@pytest.mark.parametrize("tasks", [1, 2, 3, 7, 64])
def test_the_tasks_together_read_every_line_once_in_order(tmp_path, tasks):
    rng = np.random.default_rng(tasks)
    lines = [("é" * int(rng.integers(0, 40)) + f" line {i}").encode() for i in range(200)]
    lines[5] = b""  # an empty line, and lines far longer than a task's range
    lines[9] = b"x" * 5000
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    size = path.stat().st_size
    read = [line for rank in range(tasks) for line in lines_in_range(path, *byte_range(size, rank, tasks))]
    assert read == lines
    ranges = [byte_range(size, rank, tasks) for rank in range(tasks)]
    assert ranges[0][0] == 0 and ranges[-1][1] == size and all(a[1] == b[0] for a, b in pairwise(ranges))


def test_a_file_without_a_final_newline_loses_no_record(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"one\ntwo\nthree")
    assert [line for rank in range(2) for line in lines_in_range(path, *byte_range(13, rank, 2))] == [
        b"one",
        b"two",
        b"three",
    ]


def test_one_big_file_is_shared_by_every_task(tmp_path):
    (tmp_path / "raw").mkdir()
    records = [{"id": f"r{i}", "text": f"document {i}", "lang": "en"} for i in range(100)]
    (tmp_path / "raw" / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    reader = RecordRangeReader(tmp_path / "raw")
    per_task = [[doc.id for doc in reader.run(None, rank, 4)] for rank in range(4)]
    assert all(15 <= len(ids) <= 35 for ids in per_task)  # every task gets a share
    assert sum(per_task, []) == [r["id"] for r in records]
    first = next(reader.run(None, 0, 4))
    assert first.text == "document 0" and first.metadata == {"lang": "en"}


def test_token_shards_read_as_one_stream():
    parts = [np.arange(0, 5, dtype=np.uint16), np.arange(5, 6, dtype=np.uint16), np.arange(6, 20, dtype=np.uint16)]
    stream, whole = TokenShards(parts), np.arange(20, dtype=np.uint16)
    assert len(stream) == 20 and stream.dtype == np.uint16
    for start in range(21):
        for stop in range(start, 22):
            assert stream[start:stop].tolist() == whole[start:stop].tolist(), (start, stop)
    assert stream[:-1].tolist() == whole[:-1].tolist() and stream[1:].tolist() == whole[1:].tolist()
    assert [int(stream[i]) for i in range(-20, 20)] == whole[-20:].tolist() + whole.tolist()
    assert np.asarray(stream).tolist() == whole.tolist() and np.bincount(stream).tolist() == [1] * 20
    with pytest.raises(IndexError):
        stream[20]


def test_a_damaged_raw_record_names_its_file(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.jsonl").write_text('{"id": "1", "text": "fine"}\n{"text": "no id"}\n')
    with pytest.raises(ValueError, match=r"a.jsonl: a record in bytes 0\.\.\d+ is not an ingest record"):
        list(RecordRangeReader(tmp_path / "raw").run(None, 0, 1))


def test_the_bpe_sample_spreads_over_every_shard_whatever_their_order(tmp_path):
    from llmpipe.data.splits import Placement
    from llmpipe.jsonl import write_jsonl
    from llmpipe.tokenize.shards import bpe_sample

    docs = [{"id": f"doc-{i}", "text": f"text number {i} " * 20} for i in range(400)]
    for name, order in (("a", docs), ("b", docs[::-1])):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "00000.jsonl", order[:200])
        write_jsonl(tmp_path / name / "00001.jsonl", order[200:])
    place, on_disk = Placement("hash", 0.0, 0.0), sum(p.stat().st_size for p in (tmp_path / "a").iterdir())
    drawn = {}
    for name in ("a", "b"):
        samples: list[str] = []
        drawn[name] = set(bpe_sample(tmp_path / name, place, on_disk // 4, samples))
        assert len(samples) == min(256, len(drawn[name]))
    assert drawn["a"] == drawn["b"] and 50 < len(drawn["a"]) < 150  # about a quarter, the same documents
    numbers = sorted(int(t.split()[2]) for t in drawn["a"])
    assert numbers[0] < 100 and numbers[-1] > 300  # from both ends of the corpus
    everything: list[str] = []
    assert len(list(bpe_sample(tmp_path / "a", place, None, everything))) == 400
