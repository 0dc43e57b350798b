"""Promotion gates, loading by alias, `llmpipe generate` from the registry, and serving over HTTP
(`llmpipe serve`)."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from llmpipe import typed_params
from llmpipe.cli import registered_models
from llmpipe.registry import tracking
from llmpipe.registry.model_registry import list_versions, promote
from llmpipe.runner import run_stage
from llmpipe.stages import register

from .conftest import mlflow_on_loopback


def register_again(root: Path, lm_bpb: float) -> dict:
    """Register a new version of the language model whose evaluation says lm_bpb."""
    path = root / "metrics" / "evaluate.json"
    original = path.read_text()
    evaluation = json.loads(original)
    evaluation["lm"]["val_bpb"] = lm_bpb
    path.write_text(json.dumps(evaluation))
    try:
        return run_stage(register.stage(), root)
    finally:
        path.write_text(original)  # other tests read the project's real evaluation


def aliases(client, name: str) -> dict:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_promotion_accepts_refuses_and_can_be_forced(tiny_project):
    root, metrics, params = tiny_project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    lm, gates = registered_models(typed_params.build(params))["lm"]
    first = promote(lm, gates, "challenger", "champion")
    assert first.promoted and first.reason == "no champion yet"
    champion = aliases(client, lm)["champion"]
    again = promote(lm, gates, "challenger", "champion")
    assert not again.promoted and "already is champion" in again.reason

    bpb = metrics["evaluate"]["lm"]["val_bpb"]
    register_again(root, lm_bpb=bpb + 0.5)  # a worse language model
    refused = promote(lm, gates, "challenger", "champion")
    assert not refused.promoted and "lm/val_bpb" in refused.reason and "not lower" in refused.reason
    assert aliases(client, lm)["champion"] == champion
    tags = client.get_model_version(lm, refused.challenger).tags
    assert tags["promotion.decision"] == "refused"
    assert json.loads(tags["promotion.compared"])["lm/val_bpb"]["challenger"] == pytest.approx(bpb + 0.5)

    forced = promote(lm, gates, "challenger", "champion", force=True)
    assert forced.promoted and forced.reason.startswith("forced over:")

    better = register_again(root, lm_bpb=bpb - 0.5)
    accepted = promote(lm, gates, "challenger", "champion")
    assert accepted.promoted and aliases(client, lm)["champion"] == str(better["version"])
    rows = list_versions(lm, ["lm/val_bpb"])
    assert rows[0]["version"] == better["version"] and "champion" in rows[0]["aliases"]

    model = mlflow.pyfunc.load_model(f"models:/{lm}@champion")
    out = model.predict(pd.DataFrame({"prompt": ["床前明月光，"]}), params={"max_new_tokens": 5, "temperature": 0.0})
    assert isinstance(out["text"][0], str)


def llmpipe(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(root)}
    cli = [sys.executable, "-m", "llmpipe.cli", *args]
    return subprocess.run(cli, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_cli_generate_from_the_registry_and_models_listing(tiny_project):
    root, _, params = tiny_project
    out = llmpipe(root, "generate", "models:/llmpipe-lm@challenger", "The", "--max-new-tokens", "5")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The")
    sft = llmpipe(root, "generate", str(root / "models" / "finetune" / "sft"), "床前明月光，", "--max-new-tokens", "5")
    assert sft.returncode == 0 and sft.stdout.startswith("床前明月光，\n"), sft.stderr  # asked through its template
    listing = llmpipe(root, "models")
    assert listing.returncode == 0 and "challenger" in listing.stdout and "llmpipe-lm" in listing.stdout


def test_llmpipe_serve_answers_a_prompt_on_loopback(tiny_project):
    """`llmpipe serve` on a registry URI: the version's files checked against its SHA-256 tags, then
    served from memory in MLflow's scoring protocol (its limits and faults: tests/test_serving.py)."""
    root, _, params = tiny_project
    uri = "models:/llmpipe-lm@challenger"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(root)}
    with mlflow_on_loopback(["serve", uri], "/ping", root, env, program="llmpipe") as base:
        body = json.dumps(
            {"dataframe_records": [{"prompt": "The"}], "params": {"max_new_tokens": 6, "temperature": 0.0}}
        )
        request = urllib.request.Request(f"{base}/invocations", body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.loads(r.read())
        assert isinstance(answer["predictions"][0]["text"], str)
