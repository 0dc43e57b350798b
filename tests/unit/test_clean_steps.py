"""The clean stage's own steps (llmpipe.clean.steps): the shards between jobs, written by
datatrove's JsonlWriter, one file per task, read back by RankFileReader as they were written."""

import json

from datatrove.data import Document

from llmpipe.clean.steps import RankFileReader, shard_writer


def docs(*sizes: int) -> list[Document]:
    return [Document(text="x" * size, id=str(i)) for i, size in enumerate(sizes)]


def test_shard_writer_writes_one_file_per_rank_that_rank_file_reader_reads_back(tmp_path):
    writer = shard_writer(tmp_path / "out")
    written = docs(1, 2)
    written[1].metadata = {"lang": "zh", "fixes": ["nfc"], "pii": {"email": 1}}
    for rank in (0, 3):
        passed = list(writer.run(iter(written), rank=rank))
        assert [d.id for d in passed] == ["0", "1"]  # a writer passes every document on
    assert list(writer.run(iter([]), rank=5)) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.jsonl", "00003.jsonl"]
    lines = (tmp_path / "out" / "00003.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"text": "x", "id": "0", "metadata": {}},
        {"text": "xx", "id": "1", "metadata": {"lang": "zh", "fixes": ["nfc"], "pii": {"email": 1}}},
    ]
    reader = RankFileReader(tmp_path / "out")
    for rank in (0, 3):
        assert list(reader.run(None, rank=rank)) == written
    assert list(reader.run(None, rank=5)) == []  # a task that wrote nothing left no file
    assert writer.stats["total"].total == 4
