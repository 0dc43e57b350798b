"""The clean stage's own steps (llmpipe.data.clean_steps): batches bounded in documents and
characters, and the lean shard writer's files and counts."""

import json

from datatrove.data import Document

from llmpipe.data.clean_steps import ShardWriter, batches


def docs(*sizes: int) -> list[Document]:
    return [Document(text="x" * size, id=str(i)) for i, size in enumerate(sizes)]


def test_batches_keep_order_and_bounds():
    sizes = [3, 3, 3, 10, 1, 1, 1, 1, 20, 2]
    got = [[int(d.id) for d in batch] for batch in batches(docs(*sizes), max_docs=3, max_chars=8)]
    assert got == [[0, 1], [2], [3], [4, 5, 6], [7], [8], [9]]  # a document longer than the cap goes alone
    assert sum(got, []) == list(range(len(sizes)))
    assert list(batches([], 3, 8)) == []


def test_shard_writer_writes_one_file_per_rank_and_counts_once(tmp_path):
    writer = ShardWriter(tmp_path / "out")
    for rank in (0, 3):
        passed = list(writer.run(iter(docs(1, 2)), rank=rank))
        assert [d.id for d in passed] == ["0", "1"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.jsonl", "00003.jsonl"]
    lines = (tmp_path / "out" / "00003.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"text": "x", "id": "0", "metadata": {}},
        {"text": "xx", "id": "1", "metadata": {}},
    ]
    assert writer.stats["total"].total == 4 and writer.written == 0
