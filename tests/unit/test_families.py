"""The family comparison: its points from the composed config, the families' sizes, and its report
and verdicts from the runs' scores."""

import pytest
import yaml

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.studies import families

from ..conftest import REPO

TYPES = {"topics": "classify", "sft": "sft"}


def composed(*overrides: str):
    return typed_params.build(yaml.safe_load(compose(list(overrides), REPO / "conf")))


def test_the_plan_runs_each_family_under_each_seed_on_every_task():
    params = composed()
    points = families.study([], seeds=3, conf_dir=REPO / "conf")
    seeds = [params.seed + i for i in range(3)]
    assert [(p.family, p.seed) for p in points] == [(f, s) for f in ("gpt", "bert", "t5") for s in seeds]
    for point in points:
        assert point.name == f"family-{point.family}-{point.seed}"
        assert f"model={families.FAMILIES[point.family]}" in point.overrides
        assert point.tasks == tuple(params.finetune.tasks)
        assert all(f"finetune.{task}.seed={point.seed}" in point.overrides for task in point.tasks)
    with pytest.raises(ValueError, match="at least one seed"):
        families.plan(params, 0)


def test_the_families_are_about_the_same_size(tmp_path):
    (tmp_path / "meta.json").write_text('{"vocab_size": 4096}')
    sizes = families.family_sizes([], tmp_path, REPO / "conf")
    assert {s["objective"] for s in sizes.values()} == {"causal", "masked", "span"}
    assert len({s["tokens"] for s in sizes.values()}) == 1  # the same pretraining budget
    counts = [s["params_non_embedding"] for s in sizes.values()]
    assert max(counts) / min(counts) < 1.2


def rows() -> list[dict]:
    out = []
    for seed, (gpt, bert, t5) in enumerate([(0.30, 0.40, 0.36), (0.32, 0.44, 0.35), (0.31, 0.42, 0.37)]):
        for family, f1 in (("gpt", gpt), ("bert", bert), ("t5", t5)):
            out.append({"task": "topics", "family": family, "seed": seed, "test_macro_f1": f1, "test_acc": f1 + 0.1})
        out.append({"task": "sft", "family": "gpt", "seed": seed, "greedy/chrf": 20.0 + seed, "test_loss": 3.0})
        out.append({"task": "sft", "family": "t5", "seed": seed, "greedy/chrf": 25.0 + seed, "test_loss": 2.9})
        out.append({"task": "sft", "family": "bert", "seed": seed, "skipped": "an encoder does not generate"})
    return out


def test_the_summary_is_the_mean_and_sample_sd_and_keeps_skips():
    summary = families.summarize(rows(), TYPES)
    assert summary["topics"]["bert"]["test_macro_f1"] == pytest.approx(0.42)
    assert summary["topics"]["bert"]["test_macro_f1_sd"] == pytest.approx(0.02)
    assert summary["sft"]["bert"] == {"skipped": "an encoder does not generate"}


def test_the_verdicts_say_whether_the_advice_holds_against_the_spread(tmp_path):
    summary = families.summarize(rows(), TYPES)
    topics = families.verdict("topics", "classify", summary["topics"])
    assert "bert 0.4200 > t5 0.3600 > gpt 0.3100" in topics and "holds: bert leads gpt by 0.1100" in topics
    assert "larger than the larger seed-to-seed" in topics
    sft = families.verdict("sft", "sft", summary["sft"])
    assert "does not hold: t5 leads gpt by 5.0000" in sft and "larger than" in sft
    sizes = {f: {"objective": "x", "params_non_embedding": 1, "tokens": 2} for f in families.FAMILIES}
    text = families.write_report(rows(), TYPES, sizes, tmp_path).read_text()
    assert "| bert | skipped: an encoder does not generate |" in text and "## What it shows" in text
    with pytest.raises(ValueError, match="no finished family points"):
        families.write_report([], TYPES, sizes, tmp_path)
