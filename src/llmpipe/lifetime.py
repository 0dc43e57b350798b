"""A stage dies with the `dvc` process that started it.

Killing `dvc repro` alone (kill -9 on its pid, not its process group; an IDE's stop button; a CI
runner timing out) would leave the stage running as an orphan that writes its outputs while the
next `dvc repro` starts the same stage again. So a stage started by DVC (DVC_STAGE is set) watches
the process that owns it, the nearest ancestor that is not a shell (DVC runs the command through
$SHELL -c, which may or may not exec it), and kills itself the moment that process is gone: through
a pidfd where Linux has them (no polling, no mistaking a reused pid), else by polling once a second,
and it takes its own child processes (worker pools, data loaders) with it.
A stage run by hand (`python -m llmpipe.stages.x`, `nohup`) is left alone. The watch starts when
llmpipe.stages is imported, the first thing a stage process does, before its slow imports.
"""

import os
import select
import signal
import threading
import time
from pathlib import Path

SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}
WATCHING = threading.Event()


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state; the name may hold spaces


def name_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def owner() -> int:
    """The nearest ancestor that is not a shell: dvc, for a stage that DVC runs."""
    pid = os.getppid()
    while name_of(pid) in SHELLS:
        parent = parent_of(pid)
        if not parent or parent == 1:
            break
        pid = parent
    return pid


def die_with_dvc():
    """Start the watch when DVC started this process (Linux only; elsewhere nothing happens), once."""
    if "DVC_STAGE" not in os.environ or not Path("/proc").is_dir() or WATCHING.is_set():
        return
    WATCHING.set()
    pid = owner()
    if pid <= 1:  # dvc is init itself (`docker run ... dvc repro`): when it ends, so does everything
        return
    watch_in_background(pid)


def watch_in_background(pid: int):
    """Die (with this process's descendants) the moment process `pid` ends."""
    threading.Thread(target=watch, args=(pid,), name="llmpipe-die-with-owner", daemon=True).start()


def watch(pid: int):
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        die()
    except OSError:  # an old kernel: poll
        while Path(f"/proc/{pid}").exists():
            time.sleep(1)
        die()
    else:
        select.select([fd], [], [])  # readable when the process has ended
        die()


def die():
    """SIGKILL this process's descendants (a datatrove worker pool, DataLoader workers), then itself."""
    for child in descendants(os.getpid()):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass  # gone already
    os.kill(os.getpid(), signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        parent = parent_of(int(stat.parent.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
