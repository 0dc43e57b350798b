"""The stage process's side of the warm stage runner (llmpipe.stage_server), and `llmpipe repro`.

A stage process under a runner (LLMPIPE_STAGE_SERVER names its socket) hands its command to it and
ends as the runner's copy ended; where no runner answers, or it declines, the stage runs in its own
process as under plain `dvc repro`. Only the standard library: a stage process imports this first.
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

log = logging.getLogger("llmpipe")

ENV = "LLMPIPE_STAGE_SERVER"
MESSAGE_BYTES = 1 << 20


def run_in_warm_runner(module: str, args: list[str]):
    """In a stage process (`python -m module args`) under a warm runner: have it run the stage and end
    this process as the stage ended. Returns only where the stage must run here."""
    if not os.environ.get(ENV):
        return
    if module == "__main__":  # python -m llmpipe.stages.<stage>
        module = sys.modules["__main__"].__spec__.name
    code = hand_over(module, args)
    if code is None:
        return
    if code < 0:
        die_by(-code)
    sys.exit(code)


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
