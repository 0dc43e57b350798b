"""The golden curve: the tiny config's pretraining, its loss at every logged step and its final
weights, as committed in tests/golden/tiny_pretrain.json with the machine that recorded them.

On that machine (the same CPU model, kernels and torch) the check is exact, bit for bit: a refactor
that should not change numbers must pass it so. On another CPU, PyTorch and oneDNN pick other kernels
(AVX-512, AMX) and float sums differ in their last bits, so the curve and the weights are compared
within GOLDEN_TOLERANCE, which benchmarks/golden_kernels.py derives from measured differences. A change
that should move the numbers is recorded again with `LLMPIPE_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
(on one thread, as make test runs it), and its note says why the numbers moved.

See the kernels of other CPUs on this one: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2 (or ATEN_CPU_CAPABILITY=default) pytest tests/test_golden.py."""

import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "tiny_pretrain.json"

# Across machines, a logged loss may differ from the golden one by at most this much (absolute; the
# losses are 4 to 7 nats), and each weight tensor's sum and sum of squares by this much relative to
# the tensor's size. Measured (benchmarks/RESULTS.md, "Golden curve across CPU kernels"): other
# kernels move the losses by at most 9.5e-7 (an Intel Xeon with AMX) and 2.4e-6 here; a one-line
# change to the optimizer or the model moves them by 1e-3 or more. The tolerance sits between, with a
# margin of 10x over the largest difference measured across CPUs.
GOLDEN_TOLERANCE = 2.5e-5
# The environment variables that change which kernels run on the same CPU.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_tokens_sha256(tokens_dir: Path) -> str:
    """The SHA-256 of the train split's token stream (its shards, joined in order)."""
    from llmpipe.data.token_files import load_tokens

    return hashlib.sha256(np.asarray(load_tokens(tokens_dir, "train")).tobytes()).hexdigest()


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What decides the kernels, and so the last bits, of a CPU run."""
    import torch

    return {
        "cpu": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        **{name: os.environ.get(name, "") for name in KERNEL_VARIABLES},
    }


def weight_sums(path: Path) -> dict[str, list[float]]:
    """Each tensor's sum, sum of absolute values and sum of squares (float64): close weights give
    close sums."""
    from safetensors.numpy import load_file

    sums = {}
    for name, w in sorted(load_file(path).items()):
        w = w.astype(np.float64)
        sums[name] = [float(w.sum()), float(np.abs(w).sum()), float(np.square(w).sum())]
    return sums


def record(root: Path) -> dict:
    """What a finished pretrain run under `root` computed: its inputs' and weights' hashes, its
    weights' sums, every logged training and validation figure (repr-exact floats), and the machine."""
    weights = root / "models" / "pretrain" / "model.safetensors"
    return {
        "machine": machine(),
        "train_bin_sha256": train_tokens_sha256(root / "data" / "tokens"),
        "model_safetensors_sha256": sha256(weights),
        "weights": weight_sums(weights),
        "train": rows(root / "plots" / "pretrain" / "train.csv"),
        "val": rows(root / "plots" / "pretrain" / "val.csv"),
    }


def differences(ours: dict, golden: dict, tolerance: float) -> list[str]:
    """Where `ours` differs from `golden` by more than `tolerance` (0: exactly), one line each."""
    found = []
    if ours["train_bin_sha256"] != golden["train_bin_sha256"]:
        return ["the tiny corpus's tokens changed, not training"]  # integers: equal on every machine
    for curve in ("train", "val"):
        steps, golden_steps = ([row["step"] for row in rows] for rows in (ours[curve], golden[curve]))
        if steps != golden_steps or [sorted(r) for r in ours[curve]] != [sorted(r) for r in golden[curve]]:
            return [f"the {curve} curve logs other steps or columns"]
        for mine, theirs in zip(ours[curve], golden[curve], strict=True):
            for key, value in mine.items():
                if abs(value - theirs[key]) > tolerance * max(1.0, abs(theirs[key])):
                    found.append(f"{curve} {key} at step {mine['step']:g}: {value!r}, golden {theirs[key]!r}")
    if tolerance == 0:
        if ours["model_safetensors_sha256"] != golden["model_safetensors_sha256"]:
            found.append("the trained weights changed (their SHA-256)")
        return found
    if sorted(ours["weights"]) != sorted(golden["weights"]):
        return [*found, "the trained weights have other tensors"]
    for name, (total, _, squares) in ours["weights"].items():
        golden_total, golden_abs, golden_squares = golden["weights"][name]
        # a sum measured against the sum of absolute values: it may be near 0 by cancellation
        if abs(total - golden_total) > tolerance * max(1.0, golden_abs):
            found.append(f"weight {name} sum: {total!r}, golden {golden_total!r}")
        if abs(squares - golden_squares) > tolerance * max(1.0, golden_squares):
            found.append(f"weight {name} sum of squares: {squares!r}, golden {golden_squares!r}")
    return found


def tolerance_for(ours: dict, golden: dict) -> float:
    """0 (bit for bit) on the machine that recorded the golden run; GOLDEN_TOLERANCE elsewhere."""
    return 0.0 if ours["machine"] == golden["machine"] else GOLDEN_TOLERANCE


def pretrain_alone(root: Path, extra_env: dict | None = None):
    """The pretrain stage in a process of its own, on one thread (the thread count changes the order
    of floating-point sums, so the golden record fixes it), with its own MLflow store."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(extra_env or {})}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "llmpipe.stages.pretrain"], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def pretrain_copy(project: Path, dest: Path, params_text: str | None = None, extra_env: dict | None = None) -> dict:
    """The tiny project's pretraining run again in `dest` (with other params, if given): its record."""
    shutil.copytree(project / "data" / "tokens", dest / "data" / "tokens")
    (dest / "params.yaml").write_text(params_text or (project / "params.yaml").read_text())
    pretrain_alone(dest, extra_env)
    return record(dest)


def test_the_tiny_pretraining_gives_the_golden_curve_and_weights(tiny_project, tmp_path):
    import torch

    project, _, _ = tiny_project
    if torch.get_num_threads() == 1:  # a pytest worker (make test): the tiny project trained on one thread
        ours = record(project)
    else:
        ours = pretrain_copy(project, tmp_path)
    if os.environ.get("LLMPIPE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(ours, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    tolerance = tolerance_for(ours, golden)
    found = differences(ours, golden, tolerance)
    where = "bit for bit, on the machine that recorded it" if tolerance == 0 else f"within {tolerance:g}"
    assert not found, f"the tiny pretraining moved from the golden run ({where}):\n" + "\n".join(found[:20])


def test_a_small_change_to_training_fails_the_golden_check(tiny_project, tmp_path):
    """The tolerance still catches a real change: the learning rate 0.1 % higher (a change far smaller
    than a typical edit of the model or the optimizer) fails it."""
    import yaml

    project, _, _ = tiny_project
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["pretrain"]["lr"] *= 1.001
    ours = pretrain_copy(project, tmp_path, yaml.safe_dump(params, sort_keys=False))
    found = differences(ours, json.loads(GOLDEN.read_text()), GOLDEN_TOLERANCE)
    assert found, "a 0.1 % higher learning rate passed the golden check"
