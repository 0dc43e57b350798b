"""Rules between settings (llmpipe.training.setting_rules) and the check stage that runs them with the store's
check before any stage: each bad combination is reported naming every key involved; a good config
passes; a store that cannot be reached or is no database stops the check naming it."""

from pathlib import Path

import pytest
import yaml

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.stages import check
from llmpipe.training import setting_rules

from ..conftest import REPO

BAD = [  # overrides of the tiny config -> every key its report must name
    (["model.d_model=100", "model.n_head=3"], ["model.d_model", "model.n_head"]),
    (["model.n_kv_head=3"], ["model.n_head", "model.n_kv_head"]),  # the tiny model has 2 heads
    (["model.d_model=96", "model.n_head=32", "model.n_kv_head=4"], ["model.d_model", "model.n_head", "RoPE"]),
    (["model=t5", "model.block_size=1"], ["model.block_size", "span corruption"]),
    (["model=t5", "model.tie_embeddings=false"], ["model.tie_embeddings"]),
    (["model=bert", "model.d_model=64", "model.n_head=3"], ["model.d_model", "model.n_head"]),
    (["pretrain.batch_tokens=1000"], ["pretrain.batch_tokens", "model.block_size"]),
    (["pretrain.max_tokens=64", "pretrain.batch_tokens=128"], ["pretrain.max_tokens", "pretrain.batch_tokens"]),
    (
        ["pretrain.masking.mask=0.9", "pretrain.masking.random=0.2"],
        ["pretrain.masking.mask", "pretrain.masking.random"],
    ),
    (["hardware.devices=3"], ["hardware.devices", "hardware.num_nodes", "finetune.topics.batch_size"]),
]


def params_of(overrides: list[str]) -> dict:
    return yaml.safe_load(compose(["experiment=tiny", *overrides], conf_dir=REPO / "conf"))


def problems_of(overrides: list[str]) -> list[str]:
    params = params_of(overrides)
    return setting_rules.problems(typed_params.build(params), params["model"])


@pytest.mark.parametrize("overrides, keys", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_combination_is_reported_naming_every_key(overrides, keys):
    report = "\n".join(problems_of(overrides))
    for key in keys:
        assert key in report, report


@pytest.mark.parametrize("model", ["default", "gpt2", "bert", "t5", "rnn", "lstm", "gru"])
def test_every_shipped_model_passes_with_the_default_config(model):
    params = yaml.safe_load(compose([f"model={model}"], conf_dir=REPO / "conf"))
    assert setting_rules.problems(typed_params.build(params), params["model"]) == []


@pytest.mark.parametrize("model", ["tiny", "bert", "t5", "lstm"])
def test_the_tiny_experiment_passes_with_each_family(model):
    assert problems_of([] if model == "tiny" else [f"model={model}"]) == []


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a valid tiny params.yaml and its own store's place, as the check stage sees it."""
    (tmp_path / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return tmp_path


def test_the_check_stage_passes_a_good_config_and_stamps_it(project):
    assert check.check(project) is None
    assert (project / check.STAMP).is_file()


def test_the_check_stage_reports_a_bad_shape_before_any_stage(project):
    (project / "params.yaml").write_text(
        compose(["experiment=tiny", "model.d_model=100", "model.n_head=3"], conf_dir=REPO / "conf")
    )
    report = check.check(project)
    assert "model.d_model=100" in report and "model.n_head=3" in report
    assert not (project / check.STAMP).exists()


def test_the_check_stage_stops_on_an_unreachable_tracking_server(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    report = check.check(project)
    assert "http://127.0.0.1:9" in report and "unreachable" in report


def test_the_check_stage_stops_on_a_store_that_is_no_database(project):
    (project / "mlflow.db").write_bytes(b"not a database at all" * 100)
    report = check.check(project)
    assert str(project / "mlflow.db") in report and "not a SQLite database" in report


def test_the_stage_module_is_cheap_until_the_rules_run():
    """The check stage runs on every `dvc repro` (the store is outside DVC's sight): importing it
    must not import torch or MLflow."""
    import subprocess
    import sys

    code = "import sys, llmpipe.stages.check; print(sorted({'torch', 'mlflow'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(REPO), check=True)
    assert done.stdout.strip() == "[]"
