"""Work split by records, not by files: task r of n reads the r-th n-th of the bytes of every input
file, so one big file keeps every worker busy (datatrove's own readers hand out whole files).

A record belongs to the range that holds its first byte. A task seeks to its range's start and skips
the rest of the line it lands in (the task before owns that record), then reads whole lines until the
next line would start past its range. So the tasks together read every line exactly once, and which
task gets a record depends only on the file and the number of tasks, never on the number of workers.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep


def byte_range(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """The [start, end) bytes of a `size`-byte file that task `rank` of `world_size` owns."""
    return size * rank // world_size, size * (rank + 1) // world_size


def lines_in_range(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The lines of `path` whose first byte lies in [start, end), without their newline."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the end of the line that byte start - 1 is in: that line is the task before's
        position = f.tell()
        while position < end:
            line = f.readline()
            if not line:
                return
            position += len(line)
            yield line.rstrip(b"\n")


class RecordRangeReader(PipelineStep):
    """datatrove step that reads this task's byte range of every `*.jsonl` file of a folder (sorted
    by name), as Documents: `text` and `id` from the record, every other field into metadata."""

    name = "📖 record ranges"
    type = "llmpipe"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data, rank: int = 0, world_size: int = 1):
        documents = 0
        for path in sorted(self.folder.glob("*.jsonl")):
            start, end = byte_range(path.stat().st_size, rank, world_size)
            for line in lines_in_range(path, start, end):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text, doc_id = record.pop("text"), record.pop("id")
                except (ValueError, KeyError, TypeError, AttributeError) as err:
                    raise ValueError(
                        f"{path}: a record in bytes {start}..{end} is not an ingest record ({err!r}): "
                        "data/raw is written by ingest; run `dvc repro -f -s ingest`"
                    ) from err
                documents += 1
                yield Document(text=text, id=str(doc_id), metadata=record)
        self.stat_update("documents", value=documents, unit="task")
