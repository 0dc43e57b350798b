import time

import pytest

from llmpipe import secrets
from llmpipe.registry import tracking
from llmpipe.runner import Stage, run_stage

from ..conftest import REPO, free_port


def test_an_unreachable_tracking_server_fails_the_stage_fast_naming_the_uri(tmp_path, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    started = time.monotonic()
    with pytest.raises(ValueError, match=f"MLflow tracking server {uri} is unreachable"):
        run_stage(Stage("clean", lambda cfg, root: {}, ["clean"]), tmp_path)
    assert time.monotonic() - started < 10


def test_local_stores_need_no_server(tmp_path):
    tracking.check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")  # returns without a network call


def test_params_are_flattened_and_metrics_keys_use_slashes():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}
    assert tracking.flatten({"lm": {"val_bpb": 2.5}}, sep="/", prefix="evaluate/") == {"evaluate/lm/val_bpb": 2.5}


def test_secrets_from_the_environment_are_never_logged_as_params(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("HF_TOKEN", "hf_s3cr3tvalue")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t-key")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = {
        "ingest": {"source": "https://user:hf_s3cr3tvalue@example.org/corpus", "format": "hf"},
        "register": {"api_key": "typed-into-the-config", "lm_name": "llmpipe-lm"},
        "pretrain": {"batch_tokens": 4096, "max_tokens": 8192},  # 'token' in a key is no secret
        "tokenize": {"vocab_size": 4096},
    }
    with tracking.stage_run("ingest", params, tmp_path) as run:
        run_id = run.info.run_id
    logged = mlflow.get_run(run_id).data
    assert logged.params["ingest.source"] == secrets.REDACTED
    assert logged.params["register.api_key"] == secrets.REDACTED
    assert logged.params["pretrain.batch_tokens"] == "4096" and logged.params["tokenize.vocab_size"] == "4096"
    assert logged.params["register.lm_name"] == "llmpipe-lm" and logged.params["ingest.format"] == "hf"
    everything = " ".join([*logged.params.values(), *logged.tags.values()])
    assert "s3cr3t" not in everything and "typed-into-the-config" not in everything
