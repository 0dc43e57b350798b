"""SHA-256 of files and folders: what tokenize records of its token files, what an export records of
its weights, what a registered version is tagged with, and what ties a resume checkpoint to the data
and weights it started from."""

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:
    """A file's size and SHA-256, as tokenize's meta.json and an export's llmpipe.json record them."""
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def bytecode(path: Path) -> bool:
    return path.suffix == ".pyc" or "__pycache__" in path.parts


def tree_sha256(folder: Path, skip: set[str] = frozenset()) -> str:
    """One SHA-256 over every file under folder: relative paths and contents, in sorted order, so a
    file added, removed, renamed or changed changes it. `skip`: relative paths left out (a folder
    leaves out everything under it). Python's bytecode caches are left out too: importing the code
    writes them beside it, and MLflow does not log them."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(rel == s or rel.startswith(s + "/") for s in skip) or bytecode(path):
            continue
        digest.update(f"{rel}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest()
