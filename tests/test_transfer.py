"""The transfer study: its points from the composed config, and its report from the runs' scores."""

from dataclasses import replace

import pytest
import yaml

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.schema import Params, Transfer
from llmpipe.studies import transfer

from .conftest import REPO


def composed(*overrides: str) -> Params:
    return typed_params.build(yaml.safe_load(compose(list(overrides), REPO / "conf")))


def test_the_default_plan_trains_every_task_pretrained_and_from_scratch_and_the_adapted_one_unadapted():
    params = composed()
    points = transfer.plan(params)
    seeds = [params.seed + i for i in range(params.transfer.seeds)]
    assert len(seeds) >= 3
    assert [(p.variant, p.seed) for p in points] == [
        (v, s) for s in seeds for v in ("pretrained", "unadapted", "scratch")
    ]
    adapted = [t for t in params.finetune.tasks if getattr(params.finetune[t], "adapt_steps", 0)]
    for point in points:
        assert point.name == f"transfer-{point.variant}-{point.seed}"
        assert point.tasks == tuple(adapted if point.variant == "unadapted" else params.finetune.tasks)
        for task in point.tasks:  # every point sets its seed, so none equals the default pipeline's params
            assert f"finetune.{task}.seed={point.seed}" in point.overrides
            init = "scratch" if point.variant == "scratch" else "pretrained"
            assert f"finetune.{task}.init={init}" in point.overrides
        assert ("finetune.sentiment.adapt_steps=0" in point.overrides) == (point.variant == "unadapted")


def test_the_plan_refuses_unknown_tasks_and_checks_each_point():
    params = composed()
    with pytest.raises(ValueError, match=r"transfer.tasks: \['poems'\] are not in finetune.tasks"):
        transfer.plan(replace(params, transfer=Transfer(seeds=3, tasks=["poems"])))
    with pytest.raises(ValueError, match=r"transfer.tasks: \['poems'\] are not in finetune.tasks"):
        transfer.study(["transfer.tasks=[poems]"], REPO / "conf")
    tiny = transfer.plan(composed("experiment=tiny"), ["experiment=tiny"])  # topics has no adaptation
    assert [p.name for p in tiny] == [f"transfer-{v}-{s}" for s in (1337, 1338) for v in ("pretrained", "scratch")]
    assert all(p.overrides[0] == "experiment=tiny" and p.tasks == ("topics",) for p in tiny)


def rows() -> list[dict]:
    """Three seeds of a classifier and an SFT task, pretrained ahead of scratch at every seed."""
    out = []
    for seed, f1, loss in ((1, 0.40, 4.7), (2, 0.36, 4.8), (3, 0.38, 4.6)):
        out += [
            {"task": "topics", "variant": "pretrained", "seed": seed, "macro_f1": f1, "acc": f1 + 0.1, "loss": 1.0},
            {"task": "topics", "variant": "scratch", "seed": seed, "macro_f1": f1 - 0.07, "acc": f1, "loss": 1.2},
            {"task": "sft", "variant": "pretrained", "seed": seed, "loss": loss},
            {"task": "sft", "variant": "scratch", "seed": seed, "loss": loss + 1.0},
        ]
    return out


def test_the_summary_is_the_mean_and_sample_sd_over_seeds():
    summary = transfer.summarize(rows(), {"topics": "classify", "sft": "sft"})
    topics = summary["topics"]["pretrained"]
    assert topics["seeds"] == 3 and topics["macro_f1"] == pytest.approx(0.38)
    assert topics["macro_f1_sd"] == pytest.approx(0.02)  # sqrt(((0.02)^2 + (0.02)^2 + 0) / 2)
    assert summary["sft"]["scratch"]["loss"] == pytest.approx(5.7) and "macro_f1" not in summary["sft"]["scratch"]


def test_the_report_tables_each_task_and_says_what_pretraining_buys(tmp_path):
    text = transfer.write_report(rows(), {"topics": "classify", "sft": "sft"}, tmp_path).read_text()
    assert "| from pretrained weights | 3 | 0.3800 ± 0.0200 |" in text
    assert "| from scratch | 3 | 0.3100 ± 0.0200 |" in text
    assert "- topics: pretraining helps: macro_f1 +0.0700 on the mean" in text and "better at 3 of 3 seeds" in text
    assert "- sft: pretraining helps: loss +1.0000 on the mean (lower is better)" in text
    with pytest.raises(ValueError, match="no finished transfer points"):
        transfer.write_report([], {}, tmp_path)
