"""The transfer study: does pretraining help the fine-tuning tasks, and does task-adaptive
pretraining help on top of it? Each task trained from the pretrained weights and from random
initialization (and, for a task with adapt_steps, from the pretrained weights without adapting),
under several seeds, compared by the mean and standard deviation over the seeds: a small task's
score moves by several points from one seed to the next, more than one run can settle.

`llmpipe transfer queue --run [OVERRIDES]` composes conf/ (with the Hydra overrides given), reads its
`transfer` section and queues one DVC experiment per seed and variant, each setting
finetune.<task>.seed and .init (or .adapt_steps=0) for every task studied and running the
finetune@<task> stages only: the pretrained model comes from DVC's run cache. Every point sets the
seed explicitly, so even the one equal to the default pipeline runs (and is tracked) anew.

`llmpipe transfer report [OVERRIDES]` reads each point's finetune/<task> MLflow run back by
experiment name and writes reports/transfer.md.
"""

import statistics
from dataclasses import dataclass
from pathlib import Path

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.registry import tracking
from llmpipe.schema import Params
from llmpipe.studies import experiments

PREFIX = "transfer-"
# variant -> (label, the finetune.<task> overrides it makes, whether only adapted tasks have it)
VARIANTS = {
    "pretrained": ("from pretrained weights", {"init": "pretrained"}, False),
    "unadapted": ("from pretrained weights, not adapted", {"init": "pretrained", "adapt_steps": 0}, True),
    "scratch": ("from scratch", {"init": "scratch"}, False),
}
# the validation metrics a task type is compared on, the first the headline; True: higher is better
METRICS = {"classify": {"macro_f1": True, "acc": True, "loss": False}, "sft": {"loss": False}}


@dataclass(frozen=True)
class Point:
    name: str
    seed: int
    variant: str
    tasks: tuple[str, ...]
    overrides: tuple[str, ...]  # Hydra overrides of `dvc exp run -S`


def plan(params: Params, base: list[str] = ()) -> list[Point]:
    """The study's points from composed params: its `transfer` section, the tasks' settings and the
    global seed; base: the Hydra overrides every point starts from."""
    cfg, finetune = params.transfer, params.finetune
    tasks = cfg.tasks or finetune.tasks
    unknown = sorted(set(tasks) - set(finetune.tasks))
    if unknown:
        raise ValueError(f"transfer.tasks: {unknown} are not in finetune.tasks ({finetune.tasks})")
    adapted = [t for t in tasks if getattr(finetune[t], "adapt_steps", 0)]
    points = []
    for seed in range(params.seed, params.seed + cfg.seeds):
        for variant, (_, changes, adapted_only) in VARIANTS.items():
            chosen = adapted if adapted_only else tasks
            if not chosen:
                continue
            overrides = [f"finetune.{t}.{k}={v}" for t in chosen for k, v in {**changes, "seed": seed}.items()]
            points.append(Point(f"{PREFIX}{variant}-{seed}", seed, variant, tuple(chosen), (*base, *overrides)))
    return points


def study(overrides: list[str], conf_dir: str | Path = "conf") -> list[Point]:
    """The points conf/ describes with these overrides, each point's config composed and checked
    before anything is queued (a bad override fails here, naming the point)."""
    import yaml

    points = plan(typed_params.build(yaml.safe_load(compose(overrides, conf_dir))), overrides)
    return experiments.check_points(points, conf_dir, "transfer")


def queue(points: list[Point], run: bool, replace: bool = False) -> list[str]:
    queued = {p.name: list(p.overrides) for p in points}
    names = []
    for point in points:  # each point runs the finetune stages of its own tasks
        targets = [f"finetune@{task}" for task in point.tasks]
        names += experiments.queue({point.name: queued[point.name]}, targets=targets, replace=replace, run=run)
    return names


def collect(client, experiment_id: str, points: list[Point], task_types: dict[str, str]) -> list[dict]:
    """One row per (point, task) that has a finished finetune run: its validation metrics."""
    by_name = {p.name: p for p in points}
    runs = experiments.finished_runs(client, experiment_id, "finetune/%", PREFIX)
    found = {}
    for run in runs:
        name, stage = run.data.tags[tracking.EXPERIMENT_TAG], run.data.tags[tracking.STAGE_TAG]
        task = stage.removeprefix("finetune/")
        if name not in by_name or task not in by_name[name].tasks or (name, task) in found:
            continue  # another study's run, or an older run of the same point
        if "llmpipe.skipped" in run.data.tags:  # the corpus could not feed the task: nothing to compare
            continue
        point, metrics = by_name[name], run.data.metrics
        if int(metrics[f"{stage}/seed"]) != point.seed:  # the point's overrides did not apply
            raise ValueError(
                f"MLflow run {run.info.run_id} of {name} trained {task} under seed {metrics[f'{stage}/seed']}"
            )
        scores = {m: metrics[f"{stage}/{m}"] for m in METRICS[task_types[task]] if f"{stage}/{m}" in metrics}
        found[(name, task)] = {"task": task, "variant": point.variant, "seed": point.seed, **scores}
    return [found[(p.name, t)] for p in points for t in p.tasks if (p.name, t) in found]


def summarize(rows: list[dict], task_types: dict[str, str]) -> dict[str, dict[str, dict]]:
    """task -> variant -> {metric: mean, metric_sd: sample standard deviation, seeds: n, by_seed}."""
    out: dict = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        for variant in VARIANTS:
            mine = [r for r in rows if r["task"] == task and r["variant"] == variant]
            if mine:
                out.setdefault(task, {})[variant] = over_seeds(mine, METRICS[task_types[task]])
    return out


def over_seeds(rows: list[dict], metrics) -> dict:
    """One arm of a study over its seeds' rows: {metric: mean, metric_sd: sample standard deviation
    (None from one seed), seeds: n, by_seed: seed -> row}."""
    summary = {"seeds": len(rows), "by_seed": {r["seed"]: r for r in rows}}
    for metric in metrics:
        values = [r[metric] for r in rows if metric in r]
        if values:
            summary[metric] = statistics.mean(values)
            summary[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else None
    return summary


def mean_sd(summary: dict, metric: str) -> str:
    sd = summary.get(f"{metric}_sd")
    return f"{summary[metric]:.4f} ± {sd:.4f}" if sd is not None else f"{summary[metric]:.4f}"


def verdict(task: str, summaries: dict, metric: str, higher: bool) -> str:
    """One sentence per comparison with the pretrained run: the difference of the means, against
    the spread, in plain words."""
    base = summaries.get("pretrained")
    if base is None:
        return ""
    lines = []
    for variant in ("scratch", "unadapted"):
        other = summaries.get(variant)
        if other is None:
            continue
        gain = (base[metric] - other[metric]) * (1 if higher else -1)
        spreads = [s.get(f"{metric}_sd") for s in (base, other)]
        wins = sum(
            (b[metric] - other["by_seed"][s][metric]) * (1 if higher else -1) > 0
            for s, b in base["by_seed"].items()
            if s in other["by_seed"]
        )
        paired = len(set(base["by_seed"]) & set(other["by_seed"]))
        what = "pretraining" if variant == "scratch" else "task adaptation"
        if None in spreads:
            against = "one seed: no seed-to-seed spread to weigh it against"
        else:
            size = "larger" if abs(gain) > max(spreads) else "smaller"
            against = f"{size} than the larger seed-to-seed standard deviation ({max(spreads):.4f})"
        lines.append(
            f"- {task}: {what} {'helps' if gain > 0 else 'does not help'}: {metric} "
            f"{'+' if gain >= 0 else ''}{gain:.4f} on the mean ({'higher' if higher else 'lower'} is better), "
            f"{against}; better at {wins} of {paired} seeds."
        )
    return "\n".join(lines)


def write_report(rows: list[dict], task_types: dict[str, str], out_dir: Path) -> Path:
    """reports/transfer.md: per task, each variant's mean ± sd over the seeds and each seed's score."""
    if not rows:
        raise ValueError("no finished transfer points in MLflow: run `llmpipe transfer queue --run` first")
    summaries = summarize(rows, task_types)
    lines = [
        "# Transfer study: what pretraining and task adaptation buy each fine-tuning task",
        "",
        "Each task is fine-tuned from the pretrained weights and from random initialization for the same",
        "steps (a task with task-adaptive pretraining also from the pretrained weights without it), under",
        "each seed; one DVC experiment per seed and variant (`dvc exp show`), scores on the validation",
        "split. Mean ± sample standard deviation over the seeds.",
        "",
    ]
    findings = []
    for task, by_variant in summaries.items():
        metrics = METRICS[task_types[task]]
        headline, higher = next(iter(metrics.items()))
        seeds = sorted({s for v in by_variant.values() for s in v["by_seed"]})
        lines += [f"## {task}", ""]
        lines.append("| variant | seeds | " + " | ".join(f"val {m}" for m in metrics) + " | "
                     + " | ".join(f"{headline}, seed {s}" for s in seeds) + " |")  # fmt: skip
        lines.append("| --- " * (2 + len(metrics) + len(seeds)) + "|")
        for variant, summary in by_variant.items():
            cells = [mean_sd(summary, m) if m in summary else "" for m in metrics]
            per_seed = [f"{summary['by_seed'][s][headline]:.4f}" if s in summary["by_seed"] else "" for s in seeds]
            lines.append(f"| {VARIANTS[variant][0]} | {summary['seeds']} | " + " | ".join(cells + per_seed) + " |")
        lines.append("")
        findings.append(verdict(task, by_variant, headline, higher))
    lines += ["## What it shows", "", *filter(None, findings), ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "transfer.md"
    path.write_text("\n".join(lines))
    return path
