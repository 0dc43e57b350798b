import time

import pytest

from llmpipe import tracking
from llmpipe.runner import run_stage

from ..conftest import free_port


def test_an_unreachable_tracking_server_fails_the_stage_fast_naming_the_uri(tmp_path, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (tmp_path / "params.yaml").write_text("clean: {}\n")
    started = time.monotonic()
    with pytest.raises(ValueError, match=f"MLflow tracking server {uri} is unreachable"):
        run_stage("clean", lambda params, root: {}, ["clean"], tmp_path)
    assert time.monotonic() - started < 10


def test_local_stores_need_no_server(tmp_path):
    tracking.check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")  # returns without a network call


def test_params_are_flattened_and_metrics_keys_use_slashes():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}
    assert tracking.flatten({"lm": {"val_bpb": 2.5}}, sep="/", prefix="evaluate/") == {"evaluate/lm/val_bpb": 2.5}
