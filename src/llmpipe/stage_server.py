"""A warm stage runner: `llmpipe repro` runs `dvc repro` beside one process that has imported torch,
Lightning, MLflow and the rest once, and every stage process DVC starts hands its command to it.

Why: a stage process spends 2.5 to 6 seconds importing its libraries before it does anything (MLflow
alone 1.5 s, Lightning 5 s), paid again by each of the pipeline's stages; on a small corpus that is
most of a `dvc repro`. With the server, a stage's process (`python -m llmpipe.stages.<stage>`, as
dvc.yaml says) imports only llmpipe's light modules, connects to the server's socket (its path in
LLMPIPE_STAGE_SERVER) and sends its command, working directory, environment and standard streams
(the file descriptors themselves); the server forks a copy of itself, already warm, that runs the
command exactly as `python -m` would, and the stage process ends with the copy's exit status.

What does not change: DVC still starts, hashes and records every stage; the fork runs in the stage's
folder, environment and terminal, joins its process group (so a Ctrl-C or a kill of the group reaches
it), and dies the moment the stage process dies (llmpipe.lifetime). The numbers are the same: the
fork has the same threads and kernels a fresh process gets (a test runs the tiny pipeline both ways).
When the server cannot give that, it declines and the stage runs by itself, as under plain `dvc
repro`: an environment variable that a library reads when it is imported (OMP_NUM_THREADS, CUDA,
Hugging Face, tqdm settings...) differs from the server's, or llmpipe's code changed since the server
started.

The server is single-threaded (fork copies only the calling thread: a lock another thread held would
stay locked in the copy forever), lives as long as the `llmpipe repro` that started it, and ends
with it.
"""

import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import sys
from pathlib import Path

from llmpipe.stage_client import ENV, MESSAGE_BYTES, die_by

# The libraries stages import when they run (llmpipe imports them inside functions, so that a module
# loads fast): the heaviest first. A module left out is imported by the stage itself, as without a server.
PRELOAD = (
    "torch",
    "lightning",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "transformers",
    "llmpipe.training.pretraining",
    "llmpipe.training.finetuning",
    "llmpipe.evaluation.lm_metrics",
    "llmpipe.evaluation.tasks",
    "llmpipe.evaluation.harness",
    "llmpipe.registry.export",
    "llmpipe.registry.model_registry",
    "llmpipe.clean.pipeline",
    "llmpipe.tokenize.shards",
    "lm_eval.evaluator",
    "matplotlib.pyplot",
)
# Environment variables that may differ between the server and a stage: each is read when it is used,
# never when a module is imported. Any other difference makes the server decline.
READ_WHEN_USED = ("DVC_", "LLMPIPE_FAILPOINT", "MLFLOW_TRACKING_URI", "PWD", "OLDPWD", "SHLVL", "_")


def preload():
    for name in PRELOAD:
        importlib.import_module(name)
    import llmpipe

    for module in pkgutil.walk_packages(llmpipe.__path__, "llmpipe."):  # the light ones, and the stages
        importlib.import_module(module.name)


def source_stamps() -> dict[str, int]:
    """{file: mtime} of llmpipe's modules this process has loaded."""
    root = str(Path(__file__).resolve().parent)
    stamps = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(root):
            stamps[path] = os.stat(path).st_mtime_ns
    return stamps


def decline_reason(request: dict, started: dict, env: dict, stamps: dict) -> str | None:
    """Why the server must not run this command (None: it may). `started` is the server's environment
    as it started, `env` after its imports (which set a few variables, as they do in any process)."""
    theirs = request["env"]
    for name in sorted(set(env) | set(theirs)):
        if name.startswith(READ_WHEN_USED):
            continue
        if name in theirs and theirs[name] != env.get(name):
            return f"the environment variable {name} differs from the warm runner's"
        if name not in theirs and name in started:
            return f"the environment variable {name} is set for the warm runner, not for the stage"
    if request["executable"] != sys.executable:
        return f"another Python ({request['executable']}, the runner's: {sys.executable})"
    for path, stamp in stamps.items():
        try:
            if os.stat(path).st_mtime_ns != stamp:
                return f"{path} changed since the warm runner started"
        except OSError:
            return f"{path} is gone since the warm runner started"
    return None


class Server:
    """The warm runner's loop: one socket, one thread, a forked copy per stage command."""

    def __init__(self, path: str, owner: int):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(16)  # a stage that connects while the imports run waits in the queue
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the stages; llmpipe repro ends the server
        self.started = dict(os.environ)
        preload()
        import threading

        import torch

        # fork copies the calling thread only, and a CUDA context not at all
        assert threading.active_count() == 1 and not torch.cuda.is_initialized()
        self.stamps, self.env = source_stamps(), dict(os.environ)
        self.imported = {k: v for k, v in self.env.items() if k not in self.started}  # set by the imports
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below when a copy ends
        self.watch = selectors.DefaultSelector()
        self.watch.register(self.listener, selectors.EVENT_READ, "accept")
        self.watch.register(self.wake_read, selectors.EVENT_READ, "ended")
        self.watch.register(os.pidfd_open(owner), selectors.EVENT_READ, "owner")
        self.running: dict[int, socket.socket] = {}  # pid of a copy: the connection of its stage process

    def serve(self) -> dict:
        """Answer stage commands until the owner ends. Returns only in a forked copy, with the
        command that copy must run."""
        while True:
            for key, _ in self.watch.select():
                if key.data == "accept":
                    self.watch.register(self.listener.accept()[0], selectors.EVENT_READ, "request")
                elif key.data == "owner":
                    sys.exit(0)  # llmpipe repro ended (or was killed): so does its server
                elif key.data == "ended":
                    os.read(self.wake_read, 4096)
                    self.reap()
                elif (request := self.request(key.fileobj)) is not None:
                    return request

    def request(self, conn: socket.socket) -> dict | None:
        """Read one stage's command and fork a copy for it, or decline. Returns the command in the copy."""
        try:
            message, fds, _, _ = socket.recv_fds(conn, MESSAGE_BYTES, 3)
        except OSError:  # the stage process was killed: its copy, watching it, ends too
            message, fds = b"", []
        if not message:
            self.drop(conn)
            return None
        request = json.loads(message)
        request["env"] = {**self.imported, **request["env"]}  # what the imports set, as in any process
        reason = decline_reason(request, self.started, self.env, self.stamps)
        if reason is not None or len(fds) != 3:
            self.answer(conn, {"declined": reason or "no standard streams came"})
            for fd in fds:
                os.close(fd)
            return None
        pid = os.fork()
        if pid == 0:
            self.close_in_copy()
            become_stage(request, fds)
            return request
        for fd in fds:
            os.close(fd)
        self.running[pid] = conn
        self.answer(conn, {"pid": pid, "joined": join_group(pid, request["pid"])})
        return None

    def answer(self, conn: socket.socket, message: dict):
        try:
            conn.send(json.dumps(message).encode())
        except OSError:  # the stage process is gone
            self.drop(conn)

    def drop(self, conn: socket.socket):
        if conn.fileno() >= 0:
            self.watch.unregister(conn)
            conn.close()

    def reap(self):
        """Tell each stage whose copy ended how it ended (its wait status)."""
        while self.running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            conn = self.running.pop(pid)
            if conn.fileno() >= 0:
                self.answer(conn, {"status": status})
                self.drop(conn)

    def close_in_copy(self):
        """The copy answers nothing: it closes the server's socket, connections and signal plumbing."""
        signal.set_wakeup_fd(-1)
        for key in list(self.watch.get_map().values()):
            key.fileobj.close() if isinstance(key.fileobj, socket.socket) else os.close(key.fileobj)
        self.watch.close()
        os.close(self.wake_write)


def join_group(pid: int, stage_pid: int) -> bool:
    """Put process `pid` into the process group of the stage process `stage_pid`, so that a Ctrl-C or a
    kill of that group reaches it; False where it cannot (another session). Both the server and the
    copy call it, as a shell does for its jobs: the group is right whichever runs first."""
    try:
        os.setpgid(pid, os.getpgid(stage_pid))
    except OSError:
        return False
    return True


def become_stage(request: dict, fds: list[int]):
    """In the forked copy: take the stage's streams, folder, environment and process group, and die
    with the stage process."""
    from llmpipe import lifetime

    for number in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    join_group(0, request["pid"])  # where it cannot, the watch below still ends this copy with the stage
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    # sys.stdout now writes to the stage's stdout: buffered as a fresh process's would be (a terminal or not)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(ENV, None)  # processes this stage starts (distributed training's ranks) start cold
    if "numpy" in sys.modules:  # numpy's global generator, which a fresh process seeds from the OS
        sys.modules["numpy"].random.seed()
    lifetime.watch_in_background(request["pid"])


def run_command(request: dict) -> int:
    """Run `python -m <module> <args>` in this process; its exit code, as the interpreter's would be
    (a KeyboardInterrupt that ends it ends this process by SIGINT, as it does Python)."""
    import runpy
    import traceback

    sys.argv[:] = [request["module"], *request["args"]]
    sys.modules.pop(request["module"], None)  # imported by preload(): run it afresh as __main__
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as end:
        if end.code is None or isinstance(end.code, int):
            return end.code or 0
        print(end.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return -signal.SIGINT
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


ENDED: dict[str, int] = {}  # in a copy: {"code": how its stage ended}


def end_copy():
    """The last atexit function of a copy (registered before the libraries': atexit runs in reverse
    order). Python's exit has by then joined the copy's threads (a ThreadPoolExecutor's too) and run
    the libraries' atexit functions; this ends the process without what comes next, tearing down its
    modules one by one: that touches every object the server imported, and each page touched is
    copied (2.5 s for nothing). The server itself exits as usual."""
    if "code" not in ENDED:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if ENDED["code"] < 0:
        die_by(-ENDED["code"])
    os._exit(ENDED["code"])


def main(argv: list[str] | None = None):
    path, owner = argv or sys.argv[1:]
    atexit.register(end_copy)
    request = Server(path, int(owner)).serve()
    ENDED["code"] = run_command(request)  # in a forked copy, which now exits as Python does
    sys.exit(ENDED["code"])


if __name__ == "__main__":
    main()
