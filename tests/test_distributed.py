"""Data-parallel pretraining in two CPU processes (gloo), DDP and FSDP2, against the single-process
run of the tiny project: with the same global batch the loss curves and the trained weights must
agree to float tolerance, whatever the number of processes or the sharding."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from llmpipe.config import compose

from .conftest import REPO, free_port

pytestmark = pytest.mark.slow


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def pretrain_in_two_processes(tiny_project, tmp_path: Path, overrides: list[str]) -> Path:
    root, _, _ = tiny_project
    project = tmp_path / "project"
    shutil.copytree(root / "data" / "tokens", project / "data" / "tokens")
    (project / "params.yaml").write_text(compose(["experiment=tiny", "hardware=ddp_cpu", *overrides], REPO / "conf"))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "MASTER_PORT": str(free_port()),  # never collide with another test's process group
    }
    done = subprocess.run(
        [sys.executable, "-m", "llmpipe.stages.pretrain"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return project


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_give_the_single_process_run(tiny_project, tmp_path, strategy):
    root, metrics, _ = tiny_project
    project = pretrain_in_two_processes(tiny_project, tmp_path, [f"hardware.strategy={strategy}"])

    one, two = (read_csv(p / "plots" / "pretrain" / "train.csv") for p in (root, project))
    assert [r["step"] for r in one] == [r["step"] for r in two] and len(one) > 5
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["lr"] == pytest.approx(a["lr"], rel=1e-9)
    val_one, val_two = (read_csv(p / "plots" / "pretrain" / "val.csv") for p in (root, project))
    assert [r["loss"] for r in val_two] == pytest.approx([r["loss"] for r in val_one], rel=1e-5)

    # The export holds whole (gathered) weights under sharding too, equal to the one-process run's.
    single, parallel = (load_file(p / "models" / "pretrain" / "model.safetensors") for p in (root, project))
    assert single.keys() == parallel.keys()
    for name in single:
        assert parallel[name].shape == single[name].shape
        assert (parallel[name] - single[name]).abs().max() < 1e-4, name
    assert json.loads((project / "metrics" / "pretrain.json").read_text())["val_loss"] == pytest.approx(
        metrics["pretrain"]["val_loss"], rel=1e-5
    )
