"""The architecture comparison report, from real pretraining runs: the tiny project's Transformer
and an LSTM trained on the same tokens, read back from MLflow."""

import importlib
import shutil

import mlflow
import pytest

from llmpipe.config import compose
from llmpipe.registry import tracking
from llmpipe.runner import run_stage
from llmpipe.studies import architectures

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_report_compares_architectures_from_their_mlflow_runs(tiny_project, tmp_path, monkeypatch):
    root, _, _ = tiny_project
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    pretrain = importlib.import_module("llmpipe.stages.pretrain")
    small = ["model.n_layer=1", "model.d_model=64", "model.block_size=64"]
    for arch, option in [("transformer", "default"), ("lstm", "lstm")]:
        project = tmp_path / arch
        shutil.copytree(root / "data" / "tokens", project / "data" / "tokens")
        (project / "params.yaml").write_text(compose(["experiment=tiny", f"model={option}", *small], REPO / "conf"))
        monkeypatch.setenv("DVC_EXP_NAME", f"{architectures.PREFIX}{arch}")  # as a queued experiment has
        run_stage(pretrain.stage(), project)
    monkeypatch.delenv("DVC_EXP_NAME")
    run_stage(pretrain.stage(), tmp_path / "lstm")  # not an arch-* run

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment_id = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    results = architectures.collect(client, experiment_id)
    assert set(results) == {"transformer", "lstm"}
    untagged = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])[0].info.run_id
    assert untagged not in {r["run_id"] for r in results.values()}
    for arch, result in results.items():
        tokens = [t for t, _ in result["curve"]]
        assert tokens == sorted(set(tokens)) and tokens[-1] == result["tokens"], arch  # ends at the budget
        assert result["curve"][-1][1] == pytest.approx(result["val_bpb"], rel=1e-6), arch
        assert result["tokens_per_s"] > 0 and result["params"] > result["params_non_embedding"] > 0
        # bits per token by context: buckets 0, 1, 2-3, ..., 16-31, 32-64 for a block of 64
        buckets = result["context_bits"]
        assert [(low, high) for low, high, _ in buckets] == [(0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, 31),
                                                             (32, 64)]  # fmt: skip
        assert all(0 < bits < 16 for _, _, bits in buckets), arch

    gpu = architectures.load_gpu_results(REPO / "reports" / "architectures_gpu.json")  # measured on a GPU
    report = architectures.write_report(results, tmp_path / "reports", gpu)
    text = report.read_text()
    assert "| transformer |" in text and "| lstm |" in text and "architectures.png" in text
    assert "| 2-3 | 4-7 |" in text and gpu["device"] in text and "## What it shows" in text
    assert "the Transformer trains" in text  # the GPU throughput finding, computed from the JSON
    assert (tmp_path / "reports" / "architectures.png").stat().st_size > 10_000


def test_context_gain_is_short_context_loss_minus_the_longest_buckets():
    buckets = [(0, 0, 9.0), (1, 1, 8.0), (2, 3, 7.0), (4, 7, 6.0), (8, 15, 5.5), (16, 16, 5.0)]
    assert architectures.context_gain(buckets) == pytest.approx(1.0)
    assert architectures.context_gain(buckets[:4]) is None  # nothing beyond 4-7


def test_context_bits_are_read_back_in_order_from_metric_names():
    metrics = {"pretrain/val_context_bits/16-31": 3.0, "pretrain/val_context_bits/0": 9.0,
               "pretrain/val_context_bits/2-3": 5.0, "pretrain/val_bpb": 2.5}  # fmt: skip
    assert architectures.context_bits(metrics) == [(0, 0, 9.0), (2, 3, 5.0), (16, 31, 3.0)]


def test_queue_gives_every_architecture_the_overrides_and_stops_at_pretrain(monkeypatch):
    queued = {}
    monkeypatch.setattr(
        architectures.experiments,
        "queue",
        lambda points, targets, replace, run: queued.update(points, targets=targets),
    )
    architectures.queue(["experiment=tiny"], run=False)
    assert queued.pop("targets") == ["pretrain"]
    assert queued == {
        "arch-transformer": [*architectures.BUDGET, "experiment=tiny", "model=default"],
        "arch-rnn": [*architectures.BUDGET, "experiment=tiny", "model=rnn"],
        "arch-lstm": [*architectures.BUDGET, "experiment=tiny", "model=lstm"],
        "arch-gru": [*architectures.BUDGET, "experiment=tiny", "model=gru"],
    }
