"""The warm stage runner (llmpipe.stage_server), on a real server: a stage handed to it ends as it
would by itself (exit code, messages), it declines what it cannot run as a fresh process would, and a
copy never outlives its stage process. The pipeline's numbers through it are checked by
tests/test_chaos.py (bit-identical to the tiny project run in one process); `llmpipe repro` here."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmpipe import stage_client

from .conftest import running_processes, sh, tiny_dvc_project, venv_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    env = {k: v for k, v in venv_env().items() if k != stage_client.ENV}
    process = stage_client.start(env)
    yield process, env
    stage_client.stop(process)


def copies(server_pid: int) -> list[int]:
    """The server's forked copies still running."""
    return [pid for pid, fields in running_processes().items() if int(fields[1]) == server_pid]


def wait_for(predicate, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stage(env: dict, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_failing_stage_ends_as_it_does_by_itself(server, tmp_path):
    process, env = server
    cold = stage({**env, stage_client.ENV: ""}, tmp_path, "llmpipe.stages.plan")
    warm = stage(env, tmp_path, "llmpipe.stages.plan")  # no params.yaml here: a user error
    assert cold.returncode == warm.returncode == 2
    for done in (cold, warm):
        assert "plan failed: params.yaml not found" in done.stderr, done.stderr
    assert "runs by itself" not in warm.stderr, warm.stderr


def test_the_runner_declines_an_environment_a_fresh_process_would_see_differently(server, tmp_path):
    _, env = server
    done = stage({**env, "OMP_NUM_THREADS": "7"}, tmp_path, "llmpipe.stages.plan")
    assert "runs by itself, not in the warm runner: the environment variable OMP_NUM_THREADS differs" in done.stderr
    assert done.returncode == 2  # and it still ran, by itself
    done = stage({**env, "LLMPIPE_FAILPOINT": "nowhere", "DVC_STAGE": "plan"}, tmp_path, "llmpipe.stages.plan")
    assert "runs by itself" not in done.stderr, done.stderr  # read when used: the copy gets them


def test_a_copy_dies_with_its_stage_process_and_a_stage_process_with_its_copy(server, tmp_path):
    process, env = server
    # http.server waits for requests until it is stopped: a long stage that costs no CPU
    command = [sys.executable, "-c", HAND_OVER, "http.server", "--bind", "127.0.0.1", "0"]
    client = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: copies(process.pid), "no copy started")
    [copy] = copies(process.pid)
    client.kill()
    client.wait()
    wait_for(lambda: not copies(process.pid), "the copy outlived its stage process", seconds=10)

    client = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: copies(process.pid), "no copy started")
    [copy] = copies(process.pid)
    os.kill(copy, signal.SIGTERM)
    assert client.wait(timeout=30) == -signal.SIGTERM  # the stage process ends as its copy did
    assert process.poll() is None  # and the server goes on
    assert stage(env, tmp_path, "llmpipe.stages.plan").returncode == 2


def test_the_runner_declines_once_llmpipe_code_changed(server, tmp_path):
    _, env = server
    source = Path(stage_client.__file__).with_name("runner.py")
    stamp = source.stat()
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    try:
        done = stage(env, tmp_path, "llmpipe.stages.plan")
    finally:
        os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert f"{source} changed since the warm runner started" in done.stderr, done.stderr
    assert "runs by itself" not in stage(env, tmp_path, "llmpipe.stages.plan").stderr


def test_llmpipe_repro_and_plain_dvc_repro_make_the_same_files(tmp_path, fortunes_installed):
    """The data stages through `llmpipe repro` (a runner of its own, stopped at the end) and through
    plain `dvc repro` (each stage in a fresh process): the same token files and metrics, byte for byte."""
    warm, cold = (tiny_dvc_project(tmp_path / name) for name in ("warm", "cold"))
    scratch = tmp_path / "tmp"  # where the runner's socket goes (tempfile): this test's own
    scratch.mkdir()
    out = sh(warm, "env", f"{stage_client.ENV}=", f"TMPDIR={scratch}", "llmpipe", "repro", "tokenize")
    assert "Running stage 'tokenize'" in out and "runs by itself" not in out, out[-2000:]
    assert not list(scratch.glob("llmpipe-stages-*"))  # its socket's folder is gone
    assert not commands_naming(str(scratch))  # and the server with it
    out = sh(cold, "env", f"{stage_client.ENV}=", "dvc", "repro", "tokenize")
    assert "Running stage 'tokenize'" in out, out[-2000:]
    made = sorted(
        p.relative_to(warm) for p in [*(warm / "data" / "tokens").rglob("*"), *(warm / "metrics").glob("*.json")]
    )
    assert len(made) > 5
    for path in made:
        if (warm / path).is_file():
            assert (warm / path).read_bytes() == (cold / path).read_bytes(), path


def commands_naming(text: str) -> list[str]:
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = path.read_bytes().decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if text in command:
            found.append(command)
    return found


# A stage process for any module: what `python -m module args` does in a stage process under a runner.
HAND_OVER = "import sys; from llmpipe import stage_client as c; c.run_in_warm_runner(sys.argv[1], sys.argv[2:])"
