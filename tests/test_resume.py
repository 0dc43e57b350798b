"""Kill pretraining after a checkpoint, run it again, and get the same weights, bit for bit, as a run
that was never interrupted (CPU, same seed): the Transformer and a recurrent model."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from llmpipe.config import compose
from llmpipe.runner import Sections
from llmpipe.stages import clean, ingest, tokenize

from .conftest import REPO, venv_env

pytestmark = pytest.mark.slow


def start_pretrain(root: Path) -> subprocess.Popen:
    env = {**venv_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "llmpipe.stages.pretrain"]
    return subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def finish(process: subprocess.Popen):
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-3000:]


SMALL_RECURRENT = ["model.n_layer=1", "model.d_model=64", "model.block_size=64"]
ARCHITECTURES = {
    "transformer": ["hardware.precision=bf16-mixed", "pretrain.optimizer=muon"],  # the default CPU recipe
    # One recurrent model stands for the three: they share RecurrentLM and its training path, and
    # each sequence's state starts at zero, so nothing but weights and optimizer state is resumed.
    # LSTM, with its two states, is the one with most to lose.
    "lstm": ["model=lstm", *SMALL_RECURRENT],
    # The encoder: its masks are drawn per example from (seed, position), so they must come back too.
    "bert": ["model=bert", "model.n_layer=1", "model.d_model=64", "model.n_head=2", "model.block_size=64"],
    # The encoder-decoder: its spans, like the masks, are drawn per example from (seed, position).
    "t5": ["model=t5", "model.n_layer=1", "model.d_model=64", "model.n_head=2", "model.block_size=64"],
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def projects(request, tmp_path_factory, fortunes_installed):
    """Two projects with the same tokens and params: 100 steps, a checkpoint every 10; one for each
    architecture."""
    first = tmp_path_factory.mktemp("uninterrupted")
    run = ["pretrain.max_tokens=51200", "pretrain.val_every=10", "pretrain.val_batches=2"]
    text = compose(["experiment=tiny", *run, *ARCHITECTURES[request.param]], REPO / "conf")
    (first / "params.yaml").write_text(text)
    params = yaml.safe_load(text)
    for module in (ingest, clean, tokenize):  # without MLflow: only the outputs are needed
        module.run(Sections(params, module.stage().sections), first)
    second = tmp_path_factory.mktemp("killed")
    shutil.copy(first / "params.yaml", second / "params.yaml")
    shutil.copytree(first / "data", second / "data")
    return first, second


def test_killed_pretraining_resumes_to_bit_identical_weights(projects):
    uninterrupted, killed = projects
    finish(start_pretrain(uninterrupted))

    process = start_pretrain(killed)
    deadline = time.monotonic() + 300
    while not list((killed / "checkpoints" / "pretrain").glob("*/last.ckpt")):
        assert process.poll() is None, "pretraining ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (last,) = (killed / "checkpoints" / "pretrain").glob("*/last.ckpt")
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < step < 100, f"killed at step {step}: nothing left to resume"
    assert not (killed / "models" / "pretrain").exists()

    finish(start_pretrain(killed))
    a = load_file(uninterrupted / "models" / "pretrain" / "model.safetensors")
    b = load_file(killed / "models" / "pretrain" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming from step {step}"
    for curve in ("train.csv", "val.csv"):  # the curves before the kill survive in the checkpoint
        assert (killed / "plots" / "pretrain" / curve).read_text() == (
            uninterrupted / "plots" / "pretrain" / curve
        ).read_text()
