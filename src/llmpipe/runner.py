"""What every stage's main() does around its run(): read params.yaml, seed, open the stage's MLflow
run, call run(), log and write metrics/<stage>.json. The CLI goes through here too."""

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llmpipe import tracking
from llmpipe.atomic import replace_file
from llmpipe.config import load_params, section

log = logging.getLogger("llmpipe")


def verbose() -> bool:
    """LLMPIPE_VERBOSE set (and not 0): libraries' own log lines are shown."""
    return os.environ.get("LLMPIPE_VERBOSE", "") not in ("", "0")


def setup_logging():
    logging.basicConfig(
        level=logging.DEBUG if verbose() else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose():  # Lightning's hardware report and tips, MLflow's notices: on request only
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow"):
            logging.getLogger(name).setLevel(logging.WARNING)


def write_metrics(stage: str, metrics: dict, root: Path) -> Path:
    path = root / "metrics" / f"{stage}.json"
    with replace_file(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def run_stage(
    stage: str,
    run: Callable[[dict, Path], dict],
    sections: list[str],
    root: Path = Path("."),
    logged_sections: list[str] = (),
) -> dict:
    """Run one stage as DVC does. `sections` are the params it depends on; `logged_sections` are
    logged to MLflow beside them without being dependencies (hardware settings)."""
    setup_logging()
    started = time.perf_counter()
    params = load_params(root / "params.yaml")
    if not is_rank_zero():  # a worker process of distributed training: rank zero tracks and writes metrics
        return run(params, root)
    stage_params = {name: section(params, name) for name in [*sections, *logged_sections]}
    with tracking.stage_run(stage, stage_params, root):
        metrics = run(params, root)
        tracking.log_metrics(metrics, prefix=stage)
    if metrics:  # a stage that only writes a report has none
        write_metrics(stage, metrics, root)
    log.info("%s done in %.1fs: %s", stage, time.perf_counter() - started, summary(metrics))
    return metrics


def is_rank_zero() -> bool:
    """False in the extra processes of distributed training. The same variables, in the same order,
    that Lightning reads for its rank_zero_only (read here without importing Lightning: it is slow)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def summary(metrics: dict, limit: int = 6) -> str:
    flat = tracking.flatten(metrics, sep="/")
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(flat.items())[:limit]]
    return ", ".join(shown) + (", ..." if len(flat) > limit else "")


def stage_main(stage: str, run: Callable[[dict, Path], dict], sections: list[str], logged_sections: list[str] = ()):
    """Entry point of `python -m llmpipe.stages.<stage>`: a user error ends with one clear line."""
    try:
        run_stage(stage, run, sections, logged_sections=logged_sections)
    except (ValueError, FloatingPointError) as err:
        log.error("%s failed: %s", stage, err)
        sys.exit(2)
