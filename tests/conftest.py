import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORTUNE_DIR = Path("/usr/share/games/fortunes")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fortunes_installed():
    if not (FORTUNE_DIR / "fortunes").is_file() or not (FORTUNE_DIR / "tang300").is_file():
        pytest.fail(f"Debian's fortunes and fortunes-zh are not installed in {FORTUNE_DIR}: run `make setup`")
    return FORTUNE_DIR


def copy_repo(dest: Path) -> Path:
    """A copy of the project's tracked and new (not ignored) files, as a fresh clone would have."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory, fortunes_installed):
    """Every stage run once, in order, on the tiny config in a temporary project with its own MLflow
    store: (root, metrics per stage, params). Tests read it; tests that register more versions
    build on what is there."""
    import yaml

    from llmpipe.config import compose
    from llmpipe.runner import run_stage
    from llmpipe.stages import STAGES

    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    metrics = {}
    for name in STAGES:
        module = importlib.import_module(f"llmpipe.stages.{name}")
        metrics[name] = run_stage(name, module.run, module.SECTIONS, root, module.LOGGED)
    yield root, metrics, yaml.safe_load((root / "params.yaml").read_text())
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old
