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

import contextlib
import importlib
import json
import logging
import os
import pkgutil
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("llmpipe")

ENV = "LLMPIPE_STAGE_SERVER"
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
MESSAGE_BYTES = 1 << 20


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


def serve(path: str, owner: int):
    """Answer stage commands on the socket at `path` until the process `owner` ends. Returns only in
    a forked copy, with the command that copy must run."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(16)  # a stage that connects while the imports run waits in the queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the stages; llmpipe repro ends the server
    started = dict(os.environ)
    preload()
    import threading

    import torch

    # fork copies the calling thread only, and a CUDA context not at all
    assert threading.active_count() == 1 and not torch.cuda.is_initialized()
    stamps, env = source_stamps(), dict(os.environ)
    imported = {name: value for name, value in env.items() if name not in started}  # set by the imports
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select below when a copy ends
    watch = selectors.DefaultSelector()
    watch.register(listener, selectors.EVENT_READ, "accept")
    watch.register(wake_read, selectors.EVENT_READ, "ended")
    owner_fd = os.pidfd_open(owner)
    watch.register(owner_fd, selectors.EVENT_READ, "owner")
    running: dict[int, socket.socket] = {}  # pid of a copy: the connection of the stage it runs for
    while True:
        for key, _ in watch.select():
            if key.data == "accept":
                conn, _ = listener.accept()
                watch.register(conn, selectors.EVENT_READ, "request")
                continue
            if key.data == "owner":
                sys.exit(0)  # llmpipe repro ended (or was killed): so does its server
            if key.data == "ended":
                os.read(wake_read, 4096)
                reap(running, watch)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(key.fileobj, MESSAGE_BYTES, 3)
            except OSError:  # the stage process was killed: its copy, watching it, ends too
                message, fds = b"", []
            if not message:
                drop(key.fileobj, watch)
                continue
            request = json.loads(message)
            request["env"] = {**imported, **request["env"]}  # what the imports set, as in any process
            reason = decline_reason(request, started, env, stamps)
            if reason is not None or len(fds) != 3:
                answer(key.fileobj, {"declined": reason or "no standard streams came"}, watch)
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                become_stage(request, fds, [*(k.fileobj for k in watch.get_map().values()), watch, wake_write])
                return request
            for fd in fds:
                os.close(fd)
            running[pid] = key.fileobj
            answer(key.fileobj, {"pid": pid, "joined": join_group(pid, request["pid"])}, watch)


def answer(conn: socket.socket, message: dict, watch: selectors.BaseSelector):
    try:
        conn.send(json.dumps(message).encode())
    except OSError:  # the stage process is gone
        drop(conn, watch)


def drop(conn: socket.socket, watch: selectors.BaseSelector):
    if conn.fileno() >= 0:
        watch.unregister(conn)
        conn.close()


def join_group(pid: int, stage_pid: int) -> bool:
    """Put process `pid` into the process group of the stage process `stage_pid`, so that a Ctrl-C or a
    kill of that group reaches it; False where it cannot (another session). Both the server and the
    copy call it, as a shell does for its jobs: the group is right whichever runs first."""
    try:
        os.setpgid(pid, os.getpgid(stage_pid))
    except OSError:
        return False
    return True


def reap(running: dict, watch: selectors.BaseSelector):
    """Tell each stage whose copy ended how it ended (its wait status)."""
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        conn = running.pop(pid)
        if conn.fileno() >= 0:
            answer(conn, {"status": status}, watch)
            drop(conn, watch)


def become_stage(request: dict, fds: list[int], server_files: list):
    """In the forked copy: drop the server's state, take the stage's streams, folder, environment and
    process group, and die with the stage process."""
    from llmpipe import lifetime

    signal.set_wakeup_fd(-1)
    for number in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for item in server_files:  # the copy answers nothing: the stage process's connection is the server's
        item.close() if hasattr(item, "close") else os.close(item)
    join_group(0, request["pid"])  # where it cannot, the watch below still ends this copy with the stage
    for number, fd in enumerate(fds):
        os.dup2(fd, number)
        os.close(fd)
    # New Python streams on the stage's descriptors: buffered as a fresh process's (a terminal or not).
    sys.stdin = open(0, closefd=False, encoding=sys.stdin.encoding)  # noqa: SIM115 (the process's own)
    sys.stdout = open(1, "w", closefd=False, encoding=sys.stdout.encoding, buffering=1 if os.isatty(1) else -1)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, encoding=sys.stderr.encoding, errors="backslashreplace", buffering=1)  # noqa: SIM115
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
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

    sys.argv = [request["module"], *request["args"]]
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


def finish(code: int):
    """End the copy as the interpreter ends a process (waiting for its threads, then atexit: logging's
    flush, multiprocessing's clean-up), but without tearing down its modules one by one: that touches
    every object the server imported, and each page touched is copied (2.5 s for nothing)."""
    import atexit
    import threading

    # What CPython's Py_FinalizeEx calls first (private, as CPython's own at-exit calls are): threading's
    # exit hooks (a ThreadPoolExecutor's workers are told to stop), then a join of every thread not a
    # daemon; then the atexit functions.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if code < 0:
        die_by(-code)
    os._exit(code)


def hand_over(module: str, args: list[str]) -> int | None:
    """In a stage process: have the server at $LLMPIPE_STAGE_SERVER run `python -m module args` and
    wait for it. Returns its exit code (negative: killed by that signal), or None when the stage
    must run by itself (no server answers, or it declined)."""
    path = os.environ[ENV]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    request = {
        "module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ),
        "executable": sys.executable, "pid": os.getpid(),
    }  # fmt: skip
    streams = [fd if fd_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    try:
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(request).encode()], streams)
        reply = conn.recv(MESSAGE_BYTES)
    except OSError as err:
        log.warning("the warm stage runner at %s does not answer (%s): the stage runs by itself", path, err)
        return None
    if not reply:
        log.warning("the warm stage runner at %s ended: the stage runs by itself", path)
        return None
    answer = json.loads(reply)
    if "declined" in answer:
        log.info("the stage runs by itself, not in the warm runner: %s", answer["declined"])
        return None
    if answer["joined"]:  # the copy gets the group's signals itself, as a shell's job does
        for number in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(number, signal.SIG_IGN)
    else:
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, lambda number, _: os.kill(answer["pid"], number))
    try:
        ended = conn.recv(MESSAGE_BYTES)
    except OSError:
        ended = b""
    if not ended:  # the server died: its copy must not outlive this wait
        with contextlib.suppress(OSError):
            os.kill(answer["pid"], signal.SIGKILL)
        log.error("the warm stage runner at %s ended before the stage did", path)
        return 1
    return os.waitstatus_to_exitcode(json.loads(ended)["status"])


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def exit_as(code: int):
    """End this process as the copy ended: with its exit code, or killed by the same signal."""
    if code < 0:
        die_by(-code)
    sys.exit(code)


def die_by(number: int):
    if number not in (signal.SIGKILL, signal.SIGSTOP):  # the two whose action cannot be changed
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)


def start(env: dict) -> subprocess.Popen:
    """Start a warm runner for the commands run with the environment `env` (the server's own: a stage
    whose environment differs is declined); it ends with this process, or at stop(). Its socket is
    `server.args[3]`; `env` gets LLMPIPE_STAGE_SERVER, the socket's path."""
    path = os.path.join(tempfile.mkdtemp(prefix="llmpipe-stages-"), "socket")
    env[ENV] = path
    server = subprocess.Popen([sys.executable, "-m", "llmpipe.stage_server", path, str(os.getpid())], env=env)
    while not os.path.exists(path) and server.poll() is None:  # bound at once, before the imports
        time.sleep(0.02)
    return server


def stop(server: subprocess.Popen):
    server.terminate()
    server.wait()
    shutil.rmtree(os.path.dirname(server.args[3]), ignore_errors=True)


def repro(dvc_args: list[str]) -> int:
    """`dvc repro dvc_args` with a warm runner for its stages; dvc's exit code."""
    env = dict(os.environ)
    server = start(env)
    try:
        dvc = subprocess.Popen(["dvc", "repro", *dvc_args], env=env)
        # A Ctrl-C reaches dvc and its stage (one process group): wait for dvc to end as it sees fit.
        signal.signal(signal.SIGINT, lambda *_: None)
        return dvc.wait()
    finally:
        stop(server)


def main(argv: list[str] | None = None):
    path, owner = argv or sys.argv[1:]
    request = serve(path, int(owner))
    finish(run_command(request))  # in a forked copy


if __name__ == "__main__":
    main()
