"""What every stage's main() does around its run(): read params.yaml, hand the stage the typed sections
it declares, open its MLflow run, call run(), log and write metrics/<stage>.json."""

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmpipe import stage_client, typed_params
from llmpipe.atomic import STORAGE_ERRORS, WriteError, replace_file
from llmpipe.config import load_params, section
from llmpipe.logs import setup_logging
from llmpipe.registry import tracking

log = logging.getLogger("llmpipe")


class Sections:
    """The params sections one stage declared, typed (llmpipe.schema's dataclasses), as attributes:
    `cfg.pretrain.lr`, `cfg.finetune["topics"]`, `cfg.seed`. A section the stage did not declare is
    not there, so what DVC hashes for a stage is all it can read. `raw` holds the same sections as
    params.yaml writes them (for exports and MLflow), keyed by their dotted names."""

    def __init__(self, params: dict, names: list[str]):
        self.raw = {name: section(params, name) for name in names}
        for name, value in self.raw.items():
            head, _, rest = name.partition(".")
            typed = typed_params.build(value, typed_params.type_at(name, params))
            if not rest:
                setattr(self, head, typed)
                continue
            holder = self.__dict__.setdefault(head, Partial(head))
            setattr(holder, rest, typed)

    def nested(self, names: list[str] | None = None) -> dict:
        """The raw sections (all, or `names`) as one mapping nested like params.yaml."""
        out = {}
        for name in names or self.raw:
            *heads, last = name.split(".")
            node = out
            for head in heads:
                node = node.setdefault(head, {})
            node[last] = self.raw[name]
        return out

    def __getattr__(self, name: str):
        raise AttributeError(f"this stage did not declare the params section `{name}` (its sections: {list(self.raw)})")


class Partial:
    """Some entries of a section (a stage that declares `finetune.topics` sees that task only)."""

    def __init__(self, name: str):
        self._name = name

    def __getitem__(self, key: str):
        return getattr(self, key)

    def __getattr__(self, key: str):
        raise AttributeError(f"this stage did not declare the params section `{self._name}.{key}`")


@dataclass
class Stage:
    """One stage, declared once: the runner runs it and dvc.yaml is generated from it (llmpipe.dvc_yaml).
    `name` is the stage's module, MLflow run and metrics file (`finetune/topics`:
    metrics/finetune/topics.json); `params` are the sections it is handed and DVC hashes; with
    `hardware`, it also reads the hardware section, which is logged to MLflow but never hashed;
    `summary` chooses what its summary line shows. What DVC tracks besides its params: `reads` (other
    stages' outputs; its code, the package modules it imports, is found from the imports), `writes`
    (its outputs, cached by DVC), `plots` (folders of plot data), `code` (package files it reads
    without importing them), its metrics file unless `metrics` is False; `persist_metrics` keeps that
    file when DVC would restore the stage from its run cache (a stage that must run to reconcile the
    registry with it)."""

    name: str
    run: Callable[[Sections, Path], dict]
    params: list[str]
    hardware: bool = False
    summary: list[str] | None = None
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    metrics: bool = True
    persist_metrics: bool = False

    @property
    def sections(self) -> list[str]:
        return [*self.params, "hardware"] if self.hardware else list(self.params)


def write_metrics(stage: str, metrics: dict, root: Path) -> Path:
    path = root / "metrics" / f"{stage}.json"
    with replace_file(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def run_stage(stage: Stage, root: Path = Path(".")) -> dict:
    """Run one stage as DVC does: read params.yaml, hand the stage its declared sections, track it
    in MLflow, write metrics/<stage>.json and one summary line."""
    setup_logging()
    started = time.perf_counter()
    cfg = Sections(load_params(root / "params.yaml"), stage.sections)
    if not is_rank_zero():  # a worker process of distributed training: rank zero tracks and writes metrics
        return stage.run(cfg, root)
    with tracking.stage_run(stage.name, cfg.raw, root):
        metrics = stage.run(cfg, root)
        tracking.log_metrics(metrics, prefix=stage.name)
        if isinstance(metrics.get("skipped"), str):  # a task the corpus cannot feed (data.task_support): why
            tracking.set_tag("llmpipe.skipped", metrics["skipped"])
            log.warning("%s skipped: %s", stage.name, metrics["skipped"])
    if metrics:  # a stage that only writes a report has none
        write_metrics(stage.name, metrics, root)
    log.info("%s done in %.1fs: %s", stage.name, time.perf_counter() - started, summary(metrics, stage.summary))
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
    every entry there that is not 0: "removed/*/docs" gives each rule's count), never cut short; keys
    that a stage's metrics lack are left out. Without keys, every top-level number."""
    if keys is None:
        keys = [k for k, v in metrics.items() if isinstance(v, int | float | str)]
    parts = []
    for key in keys:
        found = lookup(metrics, key.split("/"))
        head, star, tail = key.partition("*")
        if star and not head:  # "*/test_macro_f1": each match by its whole path
            parts += [f"{name}{tail}={number(v)}" for name, v in found.items()]
        elif star:  # the entries that are not 0 (metrics list every reason of a count, 0 included)
            shown = sorted(((name, v) for name, v in found.items() if v != 0), key=lambda kv: str(kv[0]))
            entries = ", ".join(f"{name}={number(v)}" for name, v in shown)
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


def stage_main(make_stage: Callable[..., Stage], targets: bool = False, args: list[str] | None = None):
    """Entry point of `python -m llmpipe.stages.<stage> [target]` (args: the command line's, by
    default): a user error ends with one clear line."""
    args = sys.argv[1:] if args is None else args
    if targets and len(args) != 1:
        sys.exit(f"usage: python -m {make_stage.__module__} <target>")
    setup_logging()
    stage_client.run_in_warm_runner(make_stage.__module__, args)  # under `llmpipe repro`: returns where it declines
    stage = make_stage(args[0]) if targets else make_stage()
    try:
        run_stage(stage)
    except (ValueError, FloatingPointError, WriteError) as err:
        log.error("%s failed: %s", stage.name, err)
        sys.exit(2)
    except OSError as err:
        if err.errno not in STORAGE_ERRORS:
            raise
        # outside the helpers of llmpipe.atomic (an input it cannot read, a checkpoint, an MLflow artifact)
        log.error("%s failed: %s: %s", stage.name, err.filename or "a file it needs", STORAGE_ERRORS[err.errno])
        sys.exit(2)
