"""The architecture comparison report, from real pretraining runs: the tiny project's Transformer
and an LSTM trained on the same tokens, read back from MLflow."""

import importlib
import shutil

import mlflow
import pytest

from llmpipe import architectures, tracking
from llmpipe.config import compose
from llmpipe.runner import run_stage

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_report_compares_architectures_from_their_mlflow_runs(tiny_project, tmp_path, monkeypatch):
    root, _, _ = tiny_project
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    shutil.copy(root / "mlflow.db", tmp_path / "mlflow.db")  # the tiny project's runs, in a store of our own
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    lstm = tmp_path / "lstm"
    shutil.copytree(root / "data" / "tokens", lstm / "data" / "tokens")
    overrides = ["experiment=tiny", "model=lstm", "model.n_layer=1", "model.d_model=64", "model.block_size=64"]
    (lstm / "params.yaml").write_text(compose(overrides, REPO / "conf"))
    pretrain = importlib.import_module("llmpipe.stages.pretrain")
    run_stage("pretrain", pretrain.run, pretrain.SECTIONS, lstm, pretrain.LOGGED)

    client = mlflow.MlflowClient(tracking_uri=store)
    results = architectures.collect(client, client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id)
    assert set(results) == {"transformer", "lstm"}
    for arch, result in results.items():
        tokens = [t for t, _ in result["curve"]]
        assert tokens == sorted(set(tokens)) and tokens[-1] == result["tokens"], arch  # ends at the budget
        assert result["curve"][-1][1] == pytest.approx(result["val_bpb"], rel=1e-6), arch
        assert result["tokens_per_s"] > 0 and result["params"] > result["params_non_embedding"] > 0

    report = architectures.write_report(results, tmp_path / "reports")
    text = report.read_text()
    assert "| transformer |" in text and "| lstm |" in text and "architectures.png" in text
    assert (tmp_path / "reports" / "architectures.png").stat().st_size > 10_000
