"""Outputs appear whole or not at all: write next to the destination, then rename into place.

A stage killed half-way leaves a `.tmp` sibling behind, never a partial output that the next stage
would take as valid.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replace_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `out`."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


@contextmanager
def replace_file(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    yield tmp
    tmp.replace(out)
