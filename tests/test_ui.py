"""The MLflow UI in a real browser: headless Chromium opens the experiment's runs and a run's page
served by `mlflow server` from the tiny pipeline's store, and finds the runs and a metric there.
Skipped where Debian's chromium is missing (`make setup` installs it)."""

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from llmpipe.registry import tracking

from .conftest import REPO, mlflow_on_loopback

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"  # screenshots, kept for a person to look at (gitignored)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it)")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def browse(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot), from headless Chromium."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1600,1000",
    ]  # fmt: skip
    if screenshot is not None:
        subprocess.run([CHROMIUM, *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    done = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.fixture
def mlflow_ui(tiny_project):
    root, _, _ = tiny_project
    server = ["server", "--backend-store-uri", tracking.tracking_uri(root), "--host", "127.0.0.1"]
    with mlflow_on_loopback(server, "/health", root) as base:
        yield base


def test_runs_and_a_metric_show_in_the_mlflow_ui(mlflow_ui, tmp_path):
    base = mlflow_ui
    experiment = get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={tracking.EXPERIMENT}")
    experiment_id = experiment["experiment"]["experiment_id"]
    ARTIFACTS.mkdir(exist_ok=True)

    runs_page = browse(f"{base}/#/experiments/{experiment_id}/runs", tmp_path / "p1", ARTIFACTS / "mlflow-runs.png")
    for stage in ("ingest", "clean", "tokenize", "pretrain", "finetune/topics", "evaluate", "register"):
        assert f">{stage}<" in runs_page, f"run {stage} is not on the experiment's page"

    request = {"experiment_ids": [experiment_id], "filter": "tags.`llmpipe.stage` = 'pretrain'"}
    search = urllib.request.Request(
        f"{base}/api/2.0/mlflow/runs/search", json.dumps(request).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(search, timeout=10) as r:
        run_id = json.loads(r.read())["runs"][0]["info"]["run_id"]
    run_page = browse(
        f"{base}/#/experiments/{experiment_id}/runs/{run_id}", tmp_path / "p2", ARTIFACTS / "mlflow-run.png"
    )
    assert "val/bpb" in run_page and "pretrain/val_bpb" in run_page
    assert (ARTIFACTS / "mlflow-runs.png").stat().st_size > 10_000
