"""What every stage's main() does around its run(): read params.yaml, seed, open the stage's MLflow
run, call run(), log and write metrics/<stage>.json. The CLI goes through here too."""

import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
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
        # Libraries' notices about their own future (Lightning's, torch's) say nothing about the run.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)


@contextmanager
def quiet_bars():
    """Other libraries' progress bars off while a block runs, unless LLMPIPE_VERBOSE: datatrove's
    (one per task and file, in every worker), lm-evaluation-harness's, datasets' and transformers'.
    tqdm reads TQDM_DISABLE only when it is imported, so its default is changed instead, for every
    bar that does not say otherwise; forked workers inherit it. A stage's own bar passes
    disable=False and stays."""
    if verbose():
        yield
        return
    from functools import partialmethod

    from tqdm import std

    init = std.tqdm.__init__
    std.tqdm.__init__ = partialmethod(init, disable=True)
    try:
        yield
    finally:
        std.tqdm.__init__ = init


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
    summary_keys: list[str] | None = None,
) -> dict:
    """Run one stage as DVC does. `sections` are the params it depends on; `logged_sections` are
    logged to MLflow beside them without being dependencies (hardware settings); `summary_keys`
    choose what its summary line shows (`summary`)."""
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
    log.info("%s done in %.1fs: %s", stage, time.perf_counter() - started, summary(metrics, summary_keys))
    return metrics


def is_rank_zero() -> bool:
    """False in the extra processes of distributed training. The same variables, in the same order,
    that Lightning reads for its rank_zero_only (read here without importing Lightning: it is slow)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return True


def summary(metrics: dict, keys: list[str] | None = None) -> str:
    """The stage's summary line: the metrics at `keys` (paths such as "lm/val_bpb"; a `*` part takes
    every entry there: "removed/*/docs" gives each rule's count), all of them, never cut short; keys
    that a stage's metrics lack are left out. Without keys, every top-level number."""
    if keys is None:
        keys = [k for k, v in metrics.items() if isinstance(v, int | float | str)]
    parts = []
    for key in keys:
        found = lookup(metrics, key.split("/"))
        head, star, tail = key.partition("*")
        if star and not head:  # "*/test_macro_f1": each match by its whole path
            parts += [f"{name}{tail}={number(v)}" for name, v in found.items()]
        elif star:
            entries = ", ".join(f"{name}={number(v)}" for name, v in sorted(found.items(), key=lambda kv: str(kv[0])))
            if head.rstrip("/") in flat_keys(metrics):  # present, if empty: "quarantined: none" is news too
                parts.append(f"{key.removesuffix('/*')}: {entries or 'none'}")
        elif found:
            parts.append(f"{key}={number(found[''])}")
    return ", ".join(parts)


def lookup(tree, path: list[str], name: str = "") -> dict:
    """{name: value} of everything at `path` in nested dicts, `*` matching every key (its name kept)."""
    if not path:
        return {name: tree}
    if not isinstance(tree, dict):
        return {}
    head, rest = path[0], path[1:]
    if head == "*":
        found = {}
        for key, value in tree.items():
            found.update(lookup(value, rest, f"{name}/{key}".strip("/")))
        return found
    return lookup(tree[head], rest, name) if head in tree else {}


def flat_keys(metrics: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in metrics.items():
        keys.add(f"{prefix}{key}")
        if isinstance(value, dict):
            keys |= flat_keys(value, f"{prefix}{key}/")
    return keys


def number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def stage_main(
    stage: str,
    run: Callable[[dict, Path], dict],
    sections: list[str],
    logged_sections: list[str] = (),
    summary_keys: list[str] | None = None,
):
    """Entry point of `python -m llmpipe.stages.<stage>`: a user error ends with one clear line."""
    try:
        run_stage(stage, run, sections, logged_sections=logged_sections, summary_keys=summary_keys)
    except (ValueError, FloatingPointError) as err:
        log.error("%s failed: %s", stage, err)
        sys.exit(2)
