"""Kill `dvc repro` in the middle of every stage, twice each, at random moments, then let it finish.

Checks after every kill that whatever outputs exist are whole (the previous complete version or
none, never a partial one), and at the end that the pipeline is complete and up to date, that the
pretrained weights are bit-identical to those of the uninterrupted run (the session's tiny project,
same config and seed, on CPU), and that the training and evaluation metrics are identical too.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llmpipe.data.token_files import token_dtype

from .conftest import sh, tiny_dvc_project

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
    "ingest", "plan", "clean", "tokenize", "pretrain", *(f"finetune@{t}" for t in TASKS), "evaluate",
    *(f"evaluate_task@{t}" for t in TASKS), "evaluate_harness", "report", "register",
    *(f"register_task@{t}" for t in TASKS),
]  # fmt: skip  # every stage, in the order dvc runs them


def start_repro(root: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as out:  # a file, not a pipe: nobody has to read it while dvc runs
        return subprocess.Popen(
            ["dvc", "repro"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_during(root: Path, stage: str, rng: random.Random, log: Path) -> str | None:
    """Start `dvc repro`, wait until it starts `stage` (or a stage after it: one finished by an
    earlier attempt is not run again), let it run a random while, then SIGKILL dvc and the stage
    with it. Returns the stage that was running when killed, or None if dvc finished."""
    process = start_repro(root, log)
    deadline = time.monotonic() + 300
    awaited = [f"Running stage '{s}'" for s in PIPELINE[PIPELINE.index(stage) :]]
    while not any(line in log.read_text() for line in awaited):
        if process.poll() is not None:
            return None  # the stage was already done: dvc had nothing to run for it
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(rng.uniform(0.2, 4.0))
    if process.poll() is not None:
        assert process.returncode == 0, log.read_text()[-3000:]
        return None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    text = log.read_text()
    running = [line.split("'")[1] for line in text.splitlines() if line.startswith("Running stage '")]
    return running[-1]


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
            assert np.fromfile(tokens / f"{split}.bin", dtype=dtype).size == info["tokens"], split
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
    assert "Data and pipelines are up to date" in sh(root, "dvc", "status") or not sh(root, "dvc", "status").strip()
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
