"""check: params.yaml, whole, against llmpipe.schema and for credentials, before any stage runs.

DVC removes a stage's outputs just before it runs the stage's command, so a bad value found only
inside the first stage it changes (`dvc exp run -S pretrain.lr=abc`) would already have cost that
stage's outputs. This stage depends on the whole of params.yaml, so any change to it (a new `+key`
too) runs it, and every other stage comes after it (ingest depends on its stamp, whose content never
changes and so never re-runs anything). A bad value, an unknown key or a credential fails here, with
the schema's one report of every problem, and no output is touched.

When `dvc exp run` wrote the bad params.yaml from its `-S` overrides (DVC_EXP_NAME is set), the last
params.yaml that passed this check is put back, so the workspace is as it was before the command. A
params.yaml edited by hand is left for its author to fix.

Not a runner stage: it opens no MLflow run (nothing ran yet worth tracking).
Writes: metrics/check.json (a stamp that never changes); .llmpipe/params.good.yaml (the last good one).
Run: python -m llmpipe.stages.check
"""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from llmpipe.atomic import replace_file
from llmpipe.config import PARAMS_FILE, load_params
from llmpipe.logs import setup_logging

log = logging.getLogger("llmpipe")
STAMP = Path("metrics") / "check.json"
LAST_GOOD = Path(".llmpipe") / "params.good.yaml"


def check(root: Path) -> str | None:
    """None if params.yaml is good (then it is saved as the last good one), else the report, with
    what was done about it."""
    try:
        load_params(root / PARAMS_FILE)
    except ValueError as err:
        if os.environ.get("DVC_EXP_NAME"):
            return f"{err}\n{restore_last_good(root)}"
        return str(err)
    (root / LAST_GOOD).parent.mkdir(exist_ok=True)
    with replace_file(root / LAST_GOOD) as tmp:
        shutil.copyfile(root / PARAMS_FILE, tmp)
    with replace_file(root / STAMP) as tmp:
        tmp.write_text(json.dumps({"params": "valid"}) + "\n")
    return None


def restore_last_good(root: Path) -> str:
    """Put back the last params.yaml that passed, else the experiment's baseline commit's."""
    target = root / PARAMS_FILE
    if (root / LAST_GOOD).is_file():
        shutil.copyfile(root / LAST_GOOD, target)
        return f"{target} is restored to the last one that passed this check ({LAST_GOOD})"
    baseline = os.environ.get("DVC_EXP_BASELINE_REV", "HEAD")
    shown = subprocess.run(["git", "show", f"{baseline}:{PARAMS_FILE}"], cwd=root, capture_output=True)
    if shown.returncode == 0:
        target.write_bytes(shown.stdout)
        return f"{target} is restored to the one in commit {baseline[:12]}"
    return f"{target} is left as DVC wrote it: no earlier good one was found"


def main():
    setup_logging()
    report = check(Path("."))
    if report:
        log.error("check failed: %s\nNo stage ran and no output was removed.", report)
        sys.exit(2)
    log.info("check done: %s is valid", PARAMS_FILE)


if __name__ == "__main__":
    main()
