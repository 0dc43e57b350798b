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
