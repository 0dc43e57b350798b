"""check: params.yaml, whole, against llmpipe.schema and for credentials, before any stage runs.

DVC removes a stage's outputs just before it runs the stage's command, so a bad value found only
inside the first stage it changes (`dvc exp run -S pretrain.lr=abc`) would already have cost that
stage's outputs. This stage depends on the whole of params.yaml, so any change to it (a new `+key`
too) runs it, and every other stage comes after it (ingest depends on its stamp, whose content never
changes and so never re-runs anything). A bad value, an unknown key or a credential fails here, with
the schema's one report of every problem, and no output is touched.

Under `dvc exp run` (DVC_EXP_NAME set), DVC wrote params.yaml from conf/ and its `-S` overrides: the
last one that passed here at this commit (else the commit's own) is put back. Under `dvc repro` it is
the user's file, left for them to fix. Not a runner stage: no MLflow run (nothing ran worth tracking).
Writes: metrics/check.json (a stamp that never changes); .llmpipe/good-params/<commit>.yaml.
Run: python -m llmpipe.stages.check"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from llmpipe.atomic import WriteError, replace_file
from llmpipe.config import PARAMS_FILE, load_params
from llmpipe.logs import setup_logging

log = logging.getLogger("llmpipe")
STAMP = Path("metrics") / "check.json"
LAST_GOOD = Path(".llmpipe") / "good-params"  # <commit>.yaml: the last params.yaml that passed at that commit


def check(root: Path) -> str | None:
    """None if params.yaml is good (then it is saved as the last good one), else the report, with
    what was done about it."""
    text = (root / PARAMS_FILE).read_text(encoding="utf-8") if (root / PARAMS_FILE).is_file() else None
    try:
        load_params(root / PARAMS_FILE)
    except ValueError as err:
        return f"{err}\n{restore_last_good(root)}" if os.environ.get("DVC_EXP_NAME") else str(err)
    with replace_file(root / LAST_GOOD / f"{git(root, 'rev-parse', 'HEAD') or 'no-commit'}.yaml") as tmp:
        tmp.write_text(text, encoding="utf-8")
    with replace_file(root / STAMP) as tmp:
        tmp.write_text(json.dumps({"params": "valid"}) + "\n")
    return None


def restore_last_good(root: Path) -> str:
    """Put back the last params.yaml that passed at this commit, else the experiment's baseline commit's."""
    target, saved = root / PARAMS_FILE, root / LAST_GOOD / f"{git(root, 'rev-parse', 'HEAD') or 'no-commit'}.yaml"
    if saved.is_file():
        target.write_text(saved.read_text(encoding="utf-8"), encoding="utf-8")
        return f"{target} is restored to the last one that passed this check ({saved.relative_to(root)})"
    baseline = os.environ.get("DVC_EXP_BASELINE_REV", "HEAD")
    shown = git(root, "show", f"{baseline}:{PARAMS_FILE}")
    if shown is not None:
        target.write_text(shown, encoding="utf-8")
        return f"{target} is restored to the one in commit {baseline[:12]}"
    return f"{target} is left as DVC wrote it: no earlier good one was found"


def git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return (done.stdout.strip() if args[0] == "rev-parse" else done.stdout) if done.returncode == 0 else None


def main():
    setup_logging()
    try:
        report = check(Path("."))
    except WriteError as err:
        report = str(err)
    if report:
        log.error("check failed: %s\nNo stage ran and no output was removed.", report)
        sys.exit(2)
    log.info("check done: %s is valid", PARAMS_FILE)


if __name__ == "__main__":
    main()
