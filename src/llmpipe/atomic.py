"""Outputs appear whole or not at all: write next to the destination, then rename into place.

A stage killed half-way leaves a `.tmp` sibling behind, never a partial output that the next stage
would take as valid (the next write removes it first). A write that fails with a file-system fault
(disk full, no permission, read-only disk, quota) removes its temporary files at once, so a full disk
is not kept full by them, leaves the previous output as it was, and raises WriteError: one message
with the path, the bytes written before the fault and the space left.
"""

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# File-system faults a user can fix (free space, permissions, remount): reported in one message.
STORAGE_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
}


class WriteError(OSError):
    """An output could not be written for a reason outside llmpipe (see STORAGE_ERRORS)."""


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def free_bytes(path: Path) -> int | None:
    """Space left on the file system that holds path (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return None


def fault_errno(err: BaseException, free: int | None, tmp: Path) -> int | None:
    """The storage fault behind an error in writing tmp, if it is one (a fault in reading an input
    passes unchanged). Some writers lose the errno: numpy's tofile raises `OSError: 234070 requested
    and 22528 written` on a full disk; a disk with almost nothing left is taken as the cause then."""
    if not isinstance(err, OSError) or isinstance(err, WriteError):
        return None
    if err.filename is not None and not Path(err.filename).resolve().is_relative_to(tmp.resolve()):
        return None
    if err.errno in STORAGE_ERRORS:
        return err.errno
    if err.errno is None and free is not None and free < FULL_BELOW:
        return errno.ENOSPC
    return None


FULL_BELOW = 1 << 20  # bytes left on a disk that a failed write is blamed on


def storage_error(err: OSError, code: int, out: Path, written: int, free: int | None) -> WriteError:
    where = f" at {err.filename}" if err.filename and str(err.filename) != str(out) else ""
    space = f"; {free / 1e6:.1f} MB were left on that disk" if free is not None else ""
    return WriteError(
        code,
        f"cannot write {out}: {STORAGE_ERRORS[code]}{where} ({written / 1e6:.1f} MB written before the "
        f"fault{space}). The partial files were removed and the previous {out.name} is unchanged; "
        "free space or fix the permissions, then run the stage again",
    )


@contextmanager
def removing_on_fault(out: Path, tmp: Path) -> Iterator[None]:
    """Remove tmp if the body fails; turn a storage fault into a WriteError naming out."""
    try:
        yield
    except BaseException as err:
        written, free = size_of(tmp), free_bytes(tmp)  # before the partial files go
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        code = fault_errno(err, free, tmp)
        if code is not None:
            raise storage_error(err, code, out, written, free) from err
        raise


@contextmanager
def replace_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `out`."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with removing_on_fault(out, tmp):
        tmp.mkdir(parents=True)
        yield tmp
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)


@contextmanager
def replace_file(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `out`."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with removing_on_fault(out, tmp):
        out.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, out)
