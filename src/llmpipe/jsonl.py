"""JSON Lines I/O: one JSON document per line, UTF-8, the format of every record file the data stages
write (data/raw, data/clean, data/removed, the quarantine)."""

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    return list(iter_jsonl(path))


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """The records of a file one at a time: memory holds one line, whatever the file's size."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def iter_folder(folder: str | Path) -> Iterator[dict]:
    """The records of every *.jsonl file of a folder (a stage's shards), in file-name order."""
    for path in sorted(Path(folder).glob("*.jsonl")):
        yield from iter_jsonl(path)


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records (any iterable: a generator streams) and return how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
