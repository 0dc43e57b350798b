"""check: params.yaml, whole (schema, rules between settings, credentials), and the MLflow store.

DVC removes a stage's outputs just before it runs the stage, so a problem found inside a stage (`-S
pretrain.lr=abc`, a tracking server down) would cost them. Every stage comes after this one (ingest needs its
stamp), and it is `always_changed` (the store is outside DVC's sight): a bad value, an unknown key, settings that
do not fit together (training.setting_rules), a credential or a store that cannot be used fails here, in one
report, and no output is touched. Under `dvc exp run` the last params.yaml that passed at this commit (else the
commit's) is put back. No MLflow run. Writes: metrics/check.json (a stamp), .llmpipe/good-params/<commit>.yaml."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from llmpipe.atomic import WriteError, replace_file
from llmpipe.config import PARAMS_FILE, load_params
from llmpipe.logs import setup_logging
from llmpipe.registry import tracking
from llmpipe.stage_client import run_in_warm_runner
from llmpipe.training import setting_rules

log = logging.getLogger("llmpipe")
STAMP = Path("metrics") / "check.json"
LAST_GOOD = Path(".llmpipe") / "good-params"  # <commit>.yaml: the last params.yaml that passed at that commit


def check(root: Path) -> str | None:
    """None if params.yaml is good (then saved as the last good one), else the report and what was done."""
    text = (root / PARAMS_FILE).read_text(encoding="utf-8") if (root / PARAMS_FILE).is_file() else None
    last_good = root / LAST_GOOD / f"{git(root, 'rev-parse', 'HEAD') or 'no-commit'}.yaml"
    try:
        params = load_params(root / PARAMS_FILE)
        if not (last_good.is_file() and last_good.read_text(encoding="utf-8") == text):
            setting_rules.check(params)  # imports torch (a second): only for a params.yaml not passed yet
        tracking.check_store(root)
    except ValueError as err:
        return f"{err}\n{restore_last_good(root, last_good)}" if os.environ.get("DVC_EXP_NAME") else str(err)
    with replace_file(last_good) as tmp:
        tmp.write_text(text, encoding="utf-8")
    with replace_file(root / STAMP) as tmp:
        tmp.write_text(json.dumps({"params": "valid"}) + "\n")
    return None


def restore_last_good(root: Path, saved: Path) -> str:
    """Put back the last params.yaml that passed at this commit, else the experiment's baseline commit's."""
    target = root / PARAMS_FILE
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
    return None if done.returncode else done.stdout.strip() if args[0] == "rev-parse" else done.stdout


def main():
    setup_logging()
    run_in_warm_runner(__spec__.name, sys.argv[1:])  # under `llmpipe repro`: returns where it declines
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
