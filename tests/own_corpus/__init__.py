"""The README's "Bring your own corpus" recipes, each line run as written (plus `-S experiment=tiny`)
in a fresh project copy, on real text the tests lay out as a user's corpus would be: a folder of
JSON lines without labels, one 2 MB book in one file, and a labelled CSV (tests/test_pipeline.py, the
end-to-end test). One file per recipe, so that pytest's workers run them side by side; the helpers
they share live here."""

import json
import re
import shlex

from ..conftest import FORTUNE_DIR, REPO, sh

CHINESE_FILES = {"tang300", "song100", "chinese"}


def english_files() -> list[str]:
    return sorted(
        p.name for p in FORTUNE_DIR.iterdir() if p.is_file() and "." not in p.name and p.name not in CHINESE_FILES
    )


def entries(name: str, min_chars: int = 40) -> list[str]:
    text = (FORTUNE_DIR / name).read_text(encoding="utf-8", errors="replace")
    return [e.strip() for e in re.split(r"^%$", text, flags=re.M) if len(e.strip()) > min_chars]


def readme_recipes() -> list[str]:
    """The dvc lines of the README block marked as the recipes."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- recipes:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("dvc exp run")]
    assert len(lines) == 3, lines
    return lines


def recipe_args(line: str, placeholder: str, path) -> list[str]:
    """The README line as a command, with the test's file in place of the README's example path."""
    args = [arg.replace(placeholder, str(path)) for arg in shlex.split(line)]
    assert any(str(path) in arg for arg in args), f"{placeholder} is not in the README line {line!r}"
    assert args[:3] == ["dvc", "exp", "run"] and all(flag == "-S" for flag in args[3::2]), line
    return args


def run_recipe(repo, line: str, placeholder: str, path) -> str:
    return sh(repo, *recipe_args(line, placeholder, path), "-S", "experiment=tiny")


def metrics(repo, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())
