"""Kill `dvc repro` in the middle of every stage, twice each, at random moments, then let it finish.

Checks after every kill that whatever outputs exist are whole (the previous complete version or
none, never a partial one), and at the end that the pipeline is complete and up to date, that the
pretrained weights are bit-identical to those of the uninterrupted run (the session's tiny project,
same config and seed, on CPU), and that the training and evaluation metrics are identical too.
Then, on the same project: register and promote killed at each of their registry writes (named
failpoints, llmpipe.failpoints) and rerun, leaving one whole version each; and `dvc` killed alone,
not its process group, taking its running stage with it.
"""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llmpipe.data.token_files import token_dtype
from llmpipe.registry import integrity

from .conftest import alive, assert_up_to_date, running_processes, sh, tiny_dvc_project, venv_env

pytestmark = pytest.mark.slow

# A stage of each kind: the per-task stages of one task stand for the others.
STAGES = [
    "ingest", "clean", "tokenize", "pretrain", "finetune@topics", "finetune@sft", "evaluate",
    "evaluate_task@sentiment", "register", "register_task@sft",
]  # fmt: skip
# Twice inside the stages that resume from checkpoints (a second kill lands in a resumed run), once
# inside the others, whose outputs are written whole or not at all.
KILLS_PER_STAGE = {"pretrain": 2, "finetune@topics": 2, "finetune@sft": 2}
TASKS = ("topics", "sentiment", "sft")
PIPELINE = [
    "check", "ingest", "plan", "clean", "tokenize", "pretrain", *(f"finetune@{t}" for t in TASKS), "evaluate",
    *(f"evaluate_task@{t}" for t in TASKS), "evaluate_harness", "report", "register",
    *(f"register_task@{t}" for t in TASKS),
]  # fmt: skip  # every stage, in the order dvc runs them


def start_repro(root: Path, log: Path, *args: str) -> subprocess.Popen:
    env = venv_env()
    with open(log, "w") as out:  # a file, not a pipe: nobody has to read it while dvc runs
        return subprocess.Popen(
            ["dvc", "repro", *args], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_during(root: Path, stage: str, rng: random.Random, log: Path) -> str | None:
    """Start `dvc repro`, wait until it starts `stage` (or a stage after it: one finished by an
    earlier attempt is not run again), then SIGKILL dvc and the stage with it at a random moment while
    the stage's process runs (or the next stage's, if it ends first). Returns the stage that was
    running when killed, or None if dvc finished. Kills land inside stages, never in DVC's own work
    between them: DVC rewrites dvc.lock in place, and a kill during that write truncates it."""
    process = start_repro(root, log)
    deadline = time.monotonic() + 300
    awaited = PIPELINE[PIPELINE.index(stage) :]
    while process.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        running = [line.split("'")[1] for line in log.read_text().splitlines() if line.startswith("Running stage '")]
        pid = stage_process(process.pid, running[-1]) if running and running[-1] in awaited else None
        if pid is None:
            time.sleep(0.02)
            continue
        kill_at = time.monotonic() + rng.uniform(0.05, 1.5)
        while time.monotonic() < kill_at and alive(pid):
            time.sleep(0.02)
        if alive(pid):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return running[-1]
        awaited = PIPELINE[PIPELINE.index(running[-1]) + 1 :]  # it ended first: kill inside the next one
    assert process.returncode == 0, log.read_text()[-3000:]
    return None


def check_outputs_whole(root: Path):
    """Every output that exists is complete and readable."""
    for path in (root / "data").rglob("*.jsonl"):
        if ".tmp" not in str(path.relative_to(root)):
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
    tokens = root / "data" / "tokens"
    if tokens.is_dir():
        meta = json.loads((tokens / "meta.json").read_text())
        for split, info in meta["splits"].items():
            dtype = token_dtype(meta["vocab_size"])
            shards = [tokens / split / f"{shard}.bin" for shard in meta["shards"][split]]
            assert sum(np.fromfile(path, dtype=dtype).size for path in shards) == info["tokens"], split
    for model in [root / "models" / "pretrain", *(root / "models" / "finetune").glob("*")]:
        if model.is_dir() and not model.name.endswith(".tmp"):
            assert load_file(model / "model.safetensors")
            json.loads((model / "config.json").read_text())
    for path in (root / "metrics").rglob("*.json"):
        json.loads(path.read_text())


def test_killing_every_stage_anywhere_loses_nothing(tiny_project, tmp_path):
    reference_root, _, _ = tiny_project
    root = tiny_dvc_project(tmp_path / "project")
    rng = random.Random(20261122)
    killed = []
    for stage in STAGES:
        for attempt in range(KILLS_PER_STAGE.get(stage, 1)):
            interrupted = kill_during(root, stage, rng, tmp_path / f"{stage}-{attempt}.log")
            if interrupted:
                killed.append(interrupted)
            check_outputs_whole(root)

    final = sh(root, "dvc", "repro")
    assert_up_to_date(root)
    check_outputs_whole(root)
    # Most kills land inside the stage they waited for; a short stage may finish first.
    assert len(killed) >= len(STAGES) and {"pretrain", "finetune@topics"} <= set(killed), (killed, final[-2000:])

    weights = load_file(root / "models" / "pretrain" / "model.safetensors")
    reference = load_file(reference_root / "models" / "pretrain" / "model.safetensors")
    assert weights.keys() == reference.keys()
    for name in weights:
        assert torch.equal(weights[name], reference[name]), name
    # Determinism: same seed and config on CPU, the same metrics, whatever the interruptions.
    names = [
        "pretrain",
        "evaluate",
        "evaluate_harness",
        *(f"{s}/{t}" for s in ("finetune", "evaluate_task") for t in ("topics", "sentiment", "sft")),
    ]
    for name in names:
        ours, theirs = (json.loads((r / "metrics" / f"{name}.json").read_text()) for r in (root, reference_root))
        assert ours == theirs, name
    assert json.loads((root / "metrics" / "register.json").read_text())["alias"] == "challenger"

    kill_register_and_promote_at_each_write(root, tmp_path)
    kill_dvc_alone(root, tmp_path)


def run_with_failpoint(root: Path, point: str, *cmd: str) -> subprocess.CompletedProcess:
    env = {**venv_env(), "LLMPIPE_FAILPOINT": point}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def kill_register_and_promote_at_each_write(root: Path, tmp_path: Path):
    """register killed after logging the model, after creating the version, after moving the alias:
    the rerun leaves exactly one version, with its tags, under the alias, as metrics/register.json
    says, and no run left RUNNING. promote killed between its decision and the alias: the rerun
    promotes. Each point registers under a model name of its own (register.name_prefix)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    for i, point in enumerate(["register:logged", "register:versioned", "register:aliased"]):
        name = f"crash{i}-lm"
        sh(root, "llmpipe", "compose", "experiment=tiny", f"register.name_prefix=crash{i}")
        killed = run_with_failpoint(root, point, "dvc", "repro", "register")
        assert killed.returncode != 0 and "Running stage 'register'" in killed.stdout, killed.stdout[-2000:]
        assert not (root / "metrics" / "register.json").exists()  # so DVC must run register again
        sh(root, "dvc", "repro", "register")
        versions = client.search_model_versions(f"name='{name}'")
        assert len(versions) == 1, (point, [v.version for v in versions])
        tags = versions[0].tags
        assert "eval/lm/val_bpb" in tags and integrity.WEIGHTS_TAG in tags and integrity.CODE_TAG in tags, point
        version = str(versions[0].version)
        assert str(client.get_model_version_by_alias(name, "challenger").version) == version, point
        recorded = json.loads((root / "metrics" / "register.json").read_text())
        assert (recorded["model_name"], str(recorded["version"])) == (name, version), point
        experiment = client.get_experiment_by_name("llmpipe").experiment_id
        running = client.search_runs(
            [experiment], "tags.`llmpipe.stage` = 'register' and attributes.status = 'RUNNING'"
        )
        assert not running, point  # the killed run was closed as KILLED by the rerun

    killed = run_with_failpoint(root, "promote:decided", "llmpipe", "promote", "--model", name)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with pytest.raises(mlflow.exceptions.MlflowException):  # the decision was written, the alias not moved
        client.get_model_version_by_alias(name, "champion")
    assert client.get_model_version(name, "1").tags["promotion.decision"] == "pending"  # not "promoted"
    assert f"{name}: version 1 promoted" in sh(root, "llmpipe", "promote", "--model", name)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, "1").tags["promotion.decision"] == "promoted"

    name = "crash1-lm"  # killed after the alias moved, before the decision was final
    sh(root, "llmpipe", "compose", "experiment=tiny", "register.name_prefix=crash1")
    killed = run_with_failpoint(root, "promote:aliased", "llmpipe", "promote", "--model", name)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert client.get_model_version(name, "1").tags["promotion.decision"] == "pending"
    sh(root, "llmpipe", "promote", "--model", name)  # already champion: it finishes the decision
    assert client.get_model_version(name, "1").tags["promotion.decision"] == "promoted"
    sh(root, "llmpipe", "compose", "experiment=tiny")


def kill_dvc_alone(root: Path, tmp_path: Path):
    """SIGKILL to the dvc process only (its process group lives on): the running stage notices its
    owner is gone and dies too, instead of writing outputs while the next `dvc repro` starts."""
    log = tmp_path / "dvc-alone.log"
    process = start_repro(root, log, "-f", "-s", "evaluate")
    deadline = time.monotonic() + 120
    while "Running stage 'evaluate'" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    while (stage := stage_process(process.pid, "evaluate")) is None:
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    time.sleep(0.2)  # into its work
    assert process.poll() is None and group_alive(process.pid), log.read_text()[-2000:]
    assert Path(f"/proc/{stage}").exists(), "the stage ended before dvc was killed: nothing was tested"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 15
    while group_alive(process.pid):
        assert time.monotonic() < deadline, "the stage outlived dvc"
        time.sleep(0.1)
    out = sh(root, "dvc", "repro")  # evaluate runs again, or comes back from DVC's run cache
    assert "'evaluate'" in out and "Running stage 'pretrain'" not in out, out[-2000:]
    assert (root / "reports" / "samples.md").is_file()
    assert_up_to_date(root)


def stage_process(pgid: int, stage: str) -> int | None:
    """The pid of the process in the group that runs `stage` (`finetune@topics`: `python -m
    llmpipe.stages.finetune topics`, not the shell around it), if it runs."""
    module, _, task = stage.partition("@")
    wanted = ["-m", f"llmpipe.stages.{module}", *([task] if task else [])]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().decode(errors="replace").split("\0")[1:-1] == wanted:
                if os.getpgid(int(cmdline.parent.name)) == pgid and alive(int(cmdline.parent.name)):
                    return int(cmdline.parent.name)
        except OSError:
            continue
    return None


def group_alive(pgid: int) -> bool:
    """A process of the group that is still running."""
    return any(int(fields[2]) == pgid for fields in running_processes().values())
