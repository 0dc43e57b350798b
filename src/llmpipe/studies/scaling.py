"""The data-scale study: how validation bits per byte fall with training data and model size, with
and without the clean stage.

`llmpipe scaling queue --run [OVERRIDES]` composes conf/ (with the Hydra overrides given, e.g.
experiment=tiny), reads its `scaling` section and queues one DVC experiment per point: every size
in scaling.sizes on every fraction in scaling.fractions of the train split (pretrain.data_fraction),
and the sizes in scaling.uncleaned_sizes again with clean.enabled=false. A point runs the pipeline
up to pretrain only (`dvc exp run --queue ... pretrain`): ingest, clean and tokenize come from DVC's
run cache after their first run. Each pretrain run logs to MLflow its tokens (D: one pass over the
fraction with scaling.pretrain.epochs 1), parameters (N: non-embedding) and FLOPs (C: tokens x
flops_per_token, 6N plus attention and the output layer).

`llmpipe scaling report [OVERRIDES]` reads the points back from MLflow by experiment name, fits
power laws (llmpipe.studies.power_law) and writes reports/scaling.md and reports/scaling.png.
"""

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from llmpipe import schema, typed_params
from llmpipe.config import compose
from llmpipe.registry import tracking
from llmpipe.studies import experiments, power_law

PREFIX = "scale-"
TARGET = "pretrain"  # the last stage a point runs


@dataclass(frozen=True)
class Point:
    name: str
    size: str
    fraction: float
    cleaned: bool
    overrides: tuple[str, ...]  # Hydra overrides of `dvc exp run -S`


def hydra_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def plan(cfg: schema.Scaling, base: list[str] = ()) -> list[Point]:
    """The study's points from a composed `scaling` section; base: the Hydra overrides every point
    starts from (the ones the section was composed with)."""
    model_keys = {f.name for f in fields(schema.Model)}
    for size, keys in cfg.sizes.items():
        unknown = sorted(set(keys) - model_keys)
        if unknown:
            raise ValueError(f"scaling.sizes.{size}: {unknown} are not model keys (model has {sorted(model_keys)})")
    missing = sorted(set(cfg.uncleaned_sizes) - set(cfg.sizes))
    if missing:
        raise ValueError(f"scaling.uncleaned_sizes: {missing} are not in scaling.sizes ({sorted(cfg.sizes)})")
    if len(set(cfg.fractions)) != len(cfg.fractions):
        raise ValueError(f"scaling.fractions repeats a fraction: {cfg.fractions}")
    shared = [f"pretrain.{k}={hydra_value(v)}" for k, v in cfg.pretrain.items()]
    points = []
    for cleaned in (True, False):
        for size in cfg.sizes if cleaned else cfg.uncleaned_sizes:
            model = [f"model.{k}={hydra_value(v)}" for k, v in cfg.sizes[size].items()]
            for fraction in sorted(cfg.fractions):
                name = f"{PREFIX}{size}-{fraction:g}-{'clean' if cleaned else 'raw'}"
                extra = [f"pretrain.data_fraction={fraction}", f"clean.enabled={hydra_value(cleaned)}"]
                points.append(Point(name, size, fraction, cleaned, (*base, *model, *shared, *extra)))
    return points


def study(overrides: list[str], conf_dir: str | Path = "conf") -> list[Point]:
    """The points conf/ describes with these overrides, each point's config composed and checked
    before anything is queued (a bad override fails here, naming the point)."""
    import yaml

    from llmpipe.families import family

    params = typed_params.build(yaml.safe_load(compose(overrides, conf_dir)))
    if not family(params.model.arch).bits_per_byte:  # the laws are fitted to bits per byte
        raise ValueError(
            f"model.arch={params.model.arch}: the scaling study fits bits per byte, which only a "
            "next-token model (a decoder) has"
        )
    return experiments.check_points(plan(params.scaling, overrides), conf_dir, "scaling")


def queue(points: list[Point], run: bool, replace: bool = False) -> list[str]:
    names = experiments.queue({p.name: list(p.overrides) for p in points}, targets=[TARGET], replace=replace, run=run)
    return names


def collect(client, experiment_id: str, points: list[Point]) -> list[dict]:
    """The latest finished pretraining run of each point that has one: its N, D, C and val bpb."""
    by_name = {p.name: p for p in points}
    runs = experiments.finished_runs(client, experiment_id, "pretrain", PREFIX)
    found = {}
    for run in runs:
        name = run.data.tags[tracking.EXPERIMENT_TAG]
        if name in found or name not in by_name:
            continue
        point, metrics = by_name[name], run.data.metrics
        if bool(metrics["pretrain/train_cleaned"]) != point.cleaned:  # the point's overrides did not apply
            kind = "cleaned" if metrics["pretrain/train_cleaned"] else "raw"
            raise ValueError(f"MLflow run {run.info.run_id} of experiment {name} trained on {kind} text")
        found[name] = {
            "name": name,
            "size": point.size,
            "fraction": point.fraction,
            "cleaned": point.cleaned,
            "params": int(metrics["pretrain/params_non_embedding"]),
            "params_total": int(metrics["pretrain/params"]),
            "tokens": int(metrics["pretrain/tokens_seen"]),
            "train_tokens": int(metrics["pretrain/train_tokens"]),
            "flops": metrics["pretrain/flops"],
            "val_bpb": metrics["pretrain/val_bpb"],
            "seconds": (run.info.end_time - run.info.start_time) / 1000,
            "run_id": run.info.run_id,
        }
    return [found[p.name] for p in points if p.name in found]


def frontier(fits: dict[str, power_law.Fit], points: list[dict], flops: np.ndarray) -> np.ndarray | None:
    """The lowest fitted loss at each compute budget over the model sizes: a joint law's over 200
    sizes between the smallest and largest measured (FLOPs per token interpolated log-log between
    theirs), else the per-size laws' lower envelope. None without a fit."""
    if not fits:
        return None
    per_token = {}  # size -> (N, FLOPs per token)
    for p in points:
        per_token[p["size"]] = (p["params"], p["flops"] / p["tokens"])
    if "all" in fits:
        n_known, f_known = (np.array(v) for v in zip(*sorted(per_token.values()), strict=True))
        sizes = np.geomspace(n_known.min(), n_known.max(), 200)
        per_size = np.exp(np.interp(np.log(sizes), np.log(n_known), np.log(f_known)))
        curves = [fits["all"](n, flops / f) for n, f in zip(sizes, per_size, strict=True)]
    else:
        curves = [fit(per_token[size][0], flops / per_token[size][1]) for size, fit in fits.items()]
    return np.min(curves, axis=0)


def plot(points: list[dict], fits: dict[bool, dict], path: Path):
    """Two panels: val bpb against training tokens per size (cleaned: filled, raw: hollow), with the
    fitted laws; and against compute, with each setting's fitted frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(p["size"] for p in points))
    colours = {size: f"C{i}" for i, size in enumerate(sizes)}
    fig, (by_data, by_compute) = plt.subplots(1, 2, figsize=(12, 4.5))
    for cleaned, style in ((True, "-"), (False, "--")):
        setting = "cleaned" if cleaned else "raw"
        own = [p for p in points if p["cleaned"] == cleaned]
        for size in sizes:
            mine = sorted((p for p in own if p["size"] == size), key=lambda p: p["tokens"])
            if not mine:
                continue
            face = colours[size] if cleaned else "none"
            tokens, bpb, flops = (np.array([p[k] for p in mine]) for k in ("tokens", "val_bpb", "flops"))
            label = f"{size} ({mine[0]['params'] / 1e6:.3g}M), {setting}"
            by_data.plot(tokens, bpb, "o", mfc=face, color=colours[size], label=label)
            by_compute.plot(flops, bpb, "o", mfc=face, color=colours[size], label=label)
            fit = law_for(fits[cleaned], size)
            if fit is not None:
                grid = np.geomspace(tokens.min(), tokens.max(), 50)
                by_data.plot(grid, fit(mine[0]["params"], grid), style, color=colours[size], alpha=0.7)
        if own and fits[cleaned]:
            flops = np.array([p["flops"] for p in own])
            grid = np.geomspace(flops.min(), flops.max(), 100)
            by_compute.plot(grid, frontier(fits[cleaned], own, grid), style, color="k", label=f"frontier, {setting}")
    by_data.set(xscale="log", xlabel="training tokens D", ylabel="validation bits per byte", title="Data")
    by_compute.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="validation bits per byte")
    by_compute.set_title("Compute, with the fitted frontier")
    by_data.legend(fontsize=7)
    by_compute.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


BOUND_NOTE = " (at a bound of the search: these points do not pin it down)"


def fit_lines(fit: power_law.Fit, scope: str) -> list[str]:
    def cell(value, low, high):
        return f"{value:.3g}" + ("" if low is None else f" [{low:.3g}, {high:.3g}]")

    law = "E + A/N^alpha + B/D^beta" if fit.law == "joint" else "E + B/D^beta"
    table = fit.table()
    return [
        f"**{scope}**: L = {law} from {fit.points} points, RMSE {fit.rmse:.3g} bits/byte "
        f"({fit.points - len(fit.names)} degrees of freedom{'; no interval' if fit.low is None else ''})",
        "",
        "| parameter | estimate [95% interval] |",
        "| --- | --- |",
        *(f"| {name} | {cell(*table[name])}{BOUND_NOTE * (name in fit.at_bound)} |" for name in fit.names),
        "",
    ]


def law_for(fits: dict[str, power_law.Fit], size: str) -> power_law.Fit | None:
    return fits.get("all") or fits.get(size)


def cleaning_gain(points: list[dict], fits: dict[bool, dict]) -> list[str]:
    """Table rows, one per size and fraction run both ways: raw minus cleaned val bpb as measured
    (the raw run saw more tokens: the same documents are longer before cleaning), and between the two
    fitted laws at the cleaned run's tokens, where both settings have a law for that size."""
    cleaned = {(p["size"], p["fraction"]): p for p in points if p["cleaned"]}
    rows = []
    for raw in (p for p in points if not p["cleaned"]):
        twin = cleaned.get((raw["size"], raw["fraction"]))
        if twin is None:
            continue
        laws = law_for(fits[True], raw["size"]), law_for(fits[False], raw["size"])
        at_equal_d = "-"
        if None not in laws:
            at_equal_d = (
                f"{float(laws[1](twin['params'], twin['tokens']) - laws[0](twin['params'], twin['tokens'])):+.4f}"
            )
        rows.append(
            f"| {raw['size']} | {raw['fraction']:g} | {twin['val_bpb']:.4f} | {raw['val_bpb']:.4f} | "
            f"{raw['val_bpb'] - twin['val_bpb']:+.4f} | {at_equal_d} |"
        )
    return rows


def write_report(points: list[dict], out_dir: Path) -> Path:
    """reports/scaling.md and reports/scaling.png from the collected points."""
    if not points:
        raise ValueError("no finished scaling points in MLflow: run `llmpipe scaling queue --run` first")
    fits = {cleaned: power_law.fit_points([p for p in points if p["cleaned"] == cleaned]) for cleaned in (True, False)}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(points, fits, out_dir / "scaling.png")
    rows = [
        f"| {p['size']} | {p['params'] / 1e6:.3f}M | {p['fraction']:g} | {'yes' if p['cleaned'] else 'no'} | "
        f"{p['tokens']:,} | {p['flops']:.3g} | {p['val_bpb']:.4f} | {p['seconds']:.0f} |"
        for p in points
    ]
    lines = [
        "# Data-scale study: validation bits per byte against data, model size and compute",
        "",
        "Each point is one pretraining run (a DVC experiment, `dvc exp show`) on a fraction of the train",
        "split's documents, for one pass: D is the tokens trained on, N the non-embedding parameters,",
        "C the training FLOPs (D x FLOPs per token: 6N, attention and the output layer). Scores are bits",
        "per byte on the cleaned validation split, the same documents for every point. Runs without",
        "cleaning (`clean.enabled=false`) train on the raw text, with their own tokenizer.",
        "",
        "| size | N | fraction | cleaned | D (tokens) | C (FLOPs) | val bits/byte | pretrain s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "![validation bits per byte against training tokens and compute](scaling.png)",
        "",
        "## Fitted laws",
        "",
        "L is validation bits per byte; N in millions of non-embedding parameters, D in millions of",
        "tokens. 95% intervals come from the fit's covariance (Student t); a wide one says the points",
        "do not pin that parameter down.",
        "",
    ]
    for cleaned, setting in ((True, "cleaned"), (False, "without cleaning")):
        if not any(p["cleaned"] == cleaned for p in points):
            continue
        if not fits[cleaned]:
            lines += [f"**{setting}**: too few points for a fit (a size needs 3 data amounts).", ""]
        for scope, fit in fits[cleaned].items():
            lines += fit_lines(fit, f"{setting}, {'all sizes' if scope == 'all' else scope}")
    gains = cleaning_gain(points, fits)
    if gains:
        lines += [
            "## What cleaning buys",
            "",
            "Validation bits per byte at the same size and fraction of the documents, trained on cleaned",
            "and on raw text (positive: cleaning helps). The raw run trains on more tokens (the documents",
            "cleaning removes, and the text its rules shorten); the last column compares the two fitted",
            "laws at the cleaned run's tokens instead. The raw train split keeps the duplicates cleaning",
            "removes, including near-copies of validation documents, which flatter the raw runs.",
            "",
            "| size | fraction | cleaned | raw | raw - cleaned | at equal tokens (fitted laws) |",
            "| --- | --- | --- | --- | --- | --- |",
            *gains,
            "",
        ]
    lines += ["MLflow runs: " + ", ".join(f"{p['name']} `{p['run_id']}`" for p in points), ""]
    report = out_dir / "scaling.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
