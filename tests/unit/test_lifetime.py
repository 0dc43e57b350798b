"""A stage started by DVC dies with the dvc process, even when a shell sits between them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import alive


def start_owner(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """A stand-in for dvc: it starts the stage through `sh -c` (which does not exec a command that is
    followed by another) and waits; returns it and the stage's pid."""
    pid_file, script = tmp_path / "stage.pid", tmp_path / "stage.py"
    # the pid is written once llmpipe.stages is imported: from then on the watch is on
    script.write_text(
        f"import os, time, llmpipe.stages\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    command = f"{sys.executable} {script}; true"
    parent = f"import subprocess, time; subprocess.Popen(['/bin/sh', '-c', {command!r}]); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", parent], env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process, int(pid_file.read_text())


def test_a_stage_started_by_dvc_dies_when_dvc_is_killed(tmp_path):
    process, stage = start_owner(tmp_path, {**os.environ, "DVC_STAGE": "evaluate"})
    assert alive(stage)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while alive(stage):
        assert time.monotonic() < deadline, "the stage outlived its dvc"
        time.sleep(0.05)


def test_a_stage_run_by_hand_is_left_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    process, stage = start_owner(tmp_path, env)
    assert alive(stage)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.0)
    try:
        assert alive(stage)  # nohup-style runs survive their parent
    finally:
        os.kill(stage, signal.SIGKILL)


def test_the_owner_skips_the_shells_between():
    shell = subprocess.run(
        ["/bin/sh", "-c", f"{sys.executable} -c 'from llmpipe.lifetime import owner; print(owner())'; true"],
        capture_output=True,
        text=True,
    )
    assert int(shell.stdout) == os.getpid()  # sh -c, not exec'ing: its parent, this test, is the owner
