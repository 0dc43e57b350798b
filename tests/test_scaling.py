"""The data-scale study on the tiny config, end to end: `llmpipe scaling queue --run` queues and runs
the DVC experiments, `llmpipe scaling report` reads their MLflow runs back, fits and plots."""

import re
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.registry import tracking
from llmpipe.studies import power_law, scaling

from .conftest import REPO, fortune_docs, sh, tiny_dvc_project
from .unit.test_power_law import TRUE


def test_the_plan_crosses_sizes_and_fractions_and_checks_its_names():
    import yaml

    cfg = typed_params.build(yaml.safe_load(compose(["experiment=tiny"], REPO / "conf"))).scaling
    points = scaling.plan(cfg, ["experiment=tiny"])
    assert len(points) == len(cfg.fractions) * (len(cfg.sizes) + len(cfg.uncleaned_sizes))
    raw = [p for p in points if not p.cleaned]
    assert {p.size for p in raw} == set(cfg.uncleaned_sizes) and all("clean.enabled=false" in p.overrides for p in raw)
    assert all(
        p.overrides[0] == "experiment=tiny" and f"pretrain.data_fraction={p.fraction}" in p.overrides for p in points
    )
    with pytest.raises(ValueError, match=r"scaling.sizes.a: \['n_layers'\] are not model keys"):
        scaling.plan(replace(cfg, sizes={"a": {"n_layers": 2}}, uncleaned_sizes=[]))
    with pytest.raises(ValueError, match=r"scaling.uncleaned_sizes: \['z'\] are not in scaling.sizes"):
        scaling.plan(replace(cfg, uncleaned_sizes=["z"]))
    with pytest.raises(ValueError, match="scaling point scale-a-0.03125-clean: .*pretrain.batch_tokens=-1"):
        scaling.study(["experiment=tiny", "scaling.pretrain.batch_tokens=-1"], REPO / "conf")


def synthetic_points() -> list[dict]:
    """Three sizes on four fractions, cleaned and raw, from known laws (raw 0.05 bits/byte worse)."""
    points = []
    for size, n, per_token in (("s", 0.4e6, 6.5e6), ("m", 1.3e6, 14e6), ("l", 3.2e6, 29e6)):
        for fraction in (0.125, 0.25, 0.5, 1.0):
            for cleaned in (True, False):
                d = fraction * 1.1e6 * (1 if cleaned else 1.2)
                bpb = float(power_law.joint_law((n / 1e6, d / 1e6), *TRUE.values())) + (0 if cleaned else 0.05)
                name = f"scale-{size}-{fraction:g}-{'clean' if cleaned else 'raw'}"
                points.append(
                    {"name": name, "size": size, "fraction": fraction, "cleaned": cleaned, "params": n, "tokens": d,
                     "flops": d * per_token, "val_bpb": bpb, "seconds": 1.0, "run_id": "0" * 32}
                )  # fmt: skip
    return points


def test_the_report_fits_the_joint_law_and_shows_what_cleaning_buys(tmp_path):
    report = scaling.write_report(synthetic_points(), tmp_path)
    text = report.read_text()
    assert "**cleaned, all sizes**: L = E + A/N^alpha + B/D^beta from 12 points" in text
    assert "**without cleaning, all sizes**" in text
    for name, value in TRUE.items():  # noiseless points: the estimates are the law's
        assert re.search(rf"\| {name} \| {value:.3g} \[", text), name
    assert text.count("| +0.0500 |") == 12  # the raw law's offset at equal tokens, at every size and fraction
    assert (tmp_path / "scaling.png").stat().st_size > 40_000


def test_the_frontier_is_the_best_size_at_each_compute():
    points = [p for p in synthetic_points() if p["cleaned"]]
    fits = power_law.fit_points(points)
    flops = np.geomspace(1e11, 3e13, 20)
    best = scaling.frontier(fits, points, flops)
    for size, n, per_token in (("s", 0.4e6, 6.5e6), ("l", 3.2e6, 29e6)):  # never above a measured size's curve
        assert np.all(best <= fits["all"](n, flops / per_token) + 1e-9), size
    small, large = (fits["all"](n, flops / f) for n, f in ((0.4e6, 6.5e6), (3.2e6, 29e6)))
    assert small[0] < large[0] and large[-1] < small[-1]  # small models win on little compute, large on much


@pytest.mark.slow
def test_the_tiny_study_runs_as_dvc_experiments_and_reports_fitted_laws(tmp_path, fortunes_installed):
    repo = tiny_dvc_project(tmp_path / "clone")
    out = sh(repo, "llmpipe", "scaling", "queue", "--run", "experiment=tiny")
    assert "queued 6 points; all finished" in out
    shown = sh(repo, "dvc", "exp", "show", "--csv")
    assert all(f"scale-a-{f}-{k}" in shown for f in ("0.03125", "0.0625", "0.125") for k in ("clean", "raw"))

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    study = scaling.study(["experiment=tiny"], REPO / "conf")
    points = {p["name"]: p for p in scaling.collect(client, experiment_id, study)}
    assert len(points) == 6
    # How many tokens each fraction trains on is checked exactly below, against its own train split.
    for kind in ("clean", "raw"):  # one pass over the fraction's tokens
        small, large = points[f"scale-a-0.0625-{kind}"], points[f"scale-a-0.125-{kind}"]
        assert large["train_tokens"] - 512 < large["tokens"] <= large["train_tokens"]
        assert large["flops"] > small["flops"] and large["params"] == small["params"]
        assert large["val_bpb"] < small["val_bpb"]
    # without cleaning: more (raw) training documents, but the very same validation documents
    tokenize = {
        run.data.tags[tracking.EXPERIMENT_TAG]: run.data.metrics
        for run in client.search_runs([experiment_id], filter_string=f"tags.`{tracking.STAGE_TAG}` = 'tokenize'")
        if tracking.EXPERIMENT_TAG in run.data.tags
    }
    (clean,), (raw,) = ([m for n, m in tokenize.items() if n.endswith(kind)] for kind in ("-clean", "-raw"))
    assert raw["tokenize/splits/train/docs"] > clean["tokenize/splits/train/docs"]
    for key in ("docs", "bytes"):
        assert raw[f"tokenize/splits/val/{key}"] == clean[f"tokenize/splits/val/{key}"]
    # each point trains on its fraction of its own train split: whole documents, just past the fraction,
    # by less than one document (a document has at most as many tokens as bytes, plus end-of-text)
    longest = 1 + max(len(d["text"].encode("utf-8")) for d in fortune_docs(fortunes_installed, [], []))
    for name, point in points.items():
        split_tokens = (clean if point["cleaned"] else raw)["tokenize/splits/train/tokens"]
        assert point["fraction"] * split_tokens <= point["train_tokens"] < point["fraction"] * split_tokens + longest, (
            name
        )

    out = sh(repo, "llmpipe", "scaling", "report", "experiment=tiny")
    assert "wrote reports/scaling.md and reports/scaling.png (6 of 6 points)" in out
    text = (repo / "reports" / "scaling.md").read_text()
    assert "**cleaned, a**: L = E + B/D^beta from 3 points" in text and "**without cleaning, a**" in text
    assert len(re.findall(r"^\| a \| [\d.]+M \| ", text, re.M)) == 6  # the points
    # cleaned against raw at each fraction, measured and between the fitted laws
    assert len(re.findall(r"^\| a \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [+-][\d.]+ \| [+-][\d.]+ \|$", text, re.M)) == 3
    assert (repo / "reports" / "scaling.png").stat().st_size > 20_000
