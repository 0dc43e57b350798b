"""Tables the clean stage builds from installed data, kept on disk between runs.

Three tables cost more than half a second at every start of the clean stage, more than cleaning a
megabyte of short documents: the character classes of the quality rules and the combining marks of
MinHash's text simplification (a pass over all 1.1 million code points each), and py3langid's
model (4.5 MB of LZMA decompressed into 68 MB). Each is built once and stored as an uncompressed
.npz in the user's cache folder, under a key made of what it is built from: the source code of the
module that builds it, its arguments, and the versions of Python's Unicode database and of NumPy.
A change to any of them builds a new entry; nothing has to be cleared by hand.

The folder is $LLMPIPE_CACHE, else $XDG_CACHE_HOME/llmpipe, else ~/.cache/llmpipe (about 70 MB:
one entry per table, a new one replacing the old).
A cache that cannot be read or written is not an error: the table is built in memory as before.
"""

import contextlib
import hashlib
import inspect
import os
import unicodedata
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_folder() -> Path:
    if folder := os.environ.get("LLMPIPE_CACHE"):
        return Path(folder)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmpipe"


def entry(build: Callable, args: tuple) -> Path:
    """The cache file of build(*args)."""
    module = inspect.getsource(inspect.getmodule(build))  # all of it: build may call the module's other functions
    made_from = repr((module, build.__name__, args, unicodedata.unidata_version, np.__version__))
    key = hashlib.sha256(made_from.encode("utf-8", errors="surrogatepass")).hexdigest()[:24]
    return cache_folder() / f"{build.__name__}-{key}.npz"


def cached_arrays(build: Callable[..., dict[str, np.ndarray]], *args) -> dict[str, np.ndarray]:
    """build(*args): named NumPy arrays, read from the cache when an earlier run stored them."""
    path = entry(build, args)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # not there yet, or damaged
        pass
    arrays = build(*args)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, **arrays)
        os.replace(partial, path)  # whole or not at all, even with several processes at once
        for older in path.parent.glob(f"{build.__name__}-*.npz"):  # one entry per table: the latest
            if older != path and ".partial" not in older.name:
                older.unlink(missing_ok=True)
    except OSError:  # a read-only home or a full disk: built again next time
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return arrays
