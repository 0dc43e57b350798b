"""The golden curve: the tiny config's pretraining, loss at every logged step and the final weights'
hash, as committed in tests/golden/tiny_pretrain.json. A refactor that should not change numbers
must pass it bit for bit (CPU, one thread, fixed seed); a change that should is recorded again with
`LLMPIPE_UPDATE_GOLDEN=1 pytest tests/test_golden.py`, and its note says why the numbers moved.

The record was first written by the code before the structural step (issue #20), so this test is
also the proof that the step changed nothing."""

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "tiny_pretrain.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_tokens_sha256(tokens_dir: Path) -> str:
    """The SHA-256 of the train split's token stream (its shards, joined in order)."""
    from llmpipe.data.token_files import load_tokens

    return hashlib.sha256(np.asarray(load_tokens(tokens_dir, "train")).tobytes()).hexdigest()


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def record(root: Path) -> dict:
    """What a finished pretrain run under `root` computed: its inputs' and weights' hashes, and every
    logged training and validation figure, as written (repr-exact floats)."""
    return {
        "train_bin_sha256": train_tokens_sha256(root / "data" / "tokens"),
        "model_safetensors_sha256": sha256(root / "models" / "pretrain" / "model.safetensors"),
        "train": rows(root / "plots" / "pretrain" / "train.csv"),
        "val": rows(root / "plots" / "pretrain" / "val.csv"),
    }


def pretrain_alone(root: Path):
    """The pretrain stage in a process of its own, on one thread (the thread count changes the order
    of floating-point sums, so the golden record fixes it), with its own MLflow store."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "llmpipe.stages.pretrain"], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_tiny_pretraining_gives_the_golden_curve_and_weights(tiny_project, tmp_path):
    import torch

    project, _, _ = tiny_project
    if torch.get_num_threads() == 1:  # a pytest worker (make test): the tiny project trained on one thread
        ours = record(project)
    else:
        shutil.copytree(project / "data" / "tokens", tmp_path / "data" / "tokens")
        shutil.copy(project / "params.yaml", tmp_path / "params.yaml")
        pretrain_alone(tmp_path)
        ours = record(tmp_path)
    if os.environ.get("LLMPIPE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(ours, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert ours["train_bin_sha256"] == golden["train_bin_sha256"], "the tiny corpus's tokens changed, not training"
    assert ours["train"] == golden["train"], "the training loss curve changed"
    assert ours["val"] == golden["val"], "the validation curve changed"
    assert ours["model_safetensors_sha256"] == golden["model_safetensors_sha256"], "the trained weights changed"
