"""Each stage's run() on the tiny config, in order, in a temporary project with its own MLflow store."""

import json
import math
import os

import mlflow
import pytest
import yaml

from llmpipe import tracking
from llmpipe.config import compose
from llmpipe.runner import run_stage
from llmpipe.stages import STAGES, clean, evaluate, finetune, ingest, pretrain, register, tokenize

from .conftest import REPO

MODULES = {m.STAGE: m for m in (ingest, clean, tokenize, pretrain, finetune, evaluate, register)}


@pytest.fixture(scope="module")
def project(tmp_path_factory, fortunes_installed):
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    metrics = {}
    for name in STAGES:
        m = MODULES[name]
        metrics[name] = run_stage(name, m.run, m.SECTIONS, root, m.LOGGED)
    yield root, metrics, yaml.safe_load((root / "params.yaml").read_text())
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def test_ingest_reads_both_languages_with_labels(project):
    root, metrics, _ = project
    assert metrics["ingest"]["docs_per_lang"]["en"] > 0 and metrics["ingest"]["docs_per_lang"]["zh"] > 0
    tang = [json.loads(line) for line in (root / "data" / "raw" / "tang300.jsonl").open()]
    assert tang[0]["lang"] == "zh" and tang[0]["label"] == "tang300" and "\x1b[" in tang[0]["text"]


def test_clean_removes_the_colour_codes(project):
    root, metrics, _ = project
    assert metrics["clean"]["fixed_ansi_escapes"] > 0
    assert metrics["clean"]["docs_out"] <= metrics["clean"]["docs_in"]
    text = (root / "data" / "clean" / "docs.jsonl").read_text()
    assert "\\u001b" not in text and "\x1b" not in text


def test_tokenize_splits_and_counts(project):
    root, metrics, params = project
    meta = json.loads((root / "data" / "tokens" / "meta.json").read_text())
    assert meta["vocab_size"] <= params["tokenize"]["vocab_size"]
    for split in ("train", "val", "test"):
        info = meta["splits"][split]
        assert info["docs"] > 0 and (root / "data" / "tokens" / f"{split}.bin").stat().st_size == 2 * info["tokens"]
    assert metrics["tokenize"]["splits"] == meta["splits"]


def test_pretrain_learns_and_exports(project):
    root, metrics, _ = project
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    assert metrics["pretrain"]["val_loss"] < math.log(vocab) - 1.0  # well below a uniform guess
    for name in ("model.safetensors", "config.json", "tokenizer.json", "params.json"):
        assert (root / "models" / "pretrain" / name).is_file()


def test_finetune_exports_a_classifier_with_its_labels(project):
    root, metrics, params = project
    config = json.loads((root / "models" / "finetune" / "config.json").read_text())
    assert config["kind"] == "classifier" and len(config["labels"]) == params["finetune"]["max_labels"]
    assert 0.0 <= metrics["finetune"]["val_macro_f1"] <= 1.0


def test_evaluate_reports_models_next_to_baselines(project):
    root, metrics, _ = project
    lm, cls = metrics["evaluate"]["lm"], metrics["evaluate"]["classify"]
    assert lm["val_bpb"] < lm["unigram_val_bpb"]
    val_bytes = json.loads((root / "data" / "tokens" / "meta.json").read_text())["splits"]["val"]["bytes"]
    # the same total log-likelihood, per token (perplexity) and per byte (bits per byte)
    assert math.log(lm["val_ppl"]) * lm["val_tokens"] == pytest.approx(
        lm["val_bpb"] * math.log(2) * val_bytes, rel=1e-6
    )
    assert cls["test_examples"] > 0 and 0 <= cls["test_acc"] <= 1
    assert json.loads((root / "metrics" / "evaluate.json").read_text()) == metrics["evaluate"]
    assert "| 床前明月光，" in (root / "reports" / "samples.md").read_text()


def test_register_sets_challenger_and_the_model_answers(project):
    root, metrics, params = project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(params["register"]["model_name"], "challenger")
    assert int(version.version) == metrics["register"]["version"]
    assert "eval/lm/val_bpb" in version.tags
    model = mlflow.pyfunc.load_model(f"models:/{params['register']['model_name']}@challenger")
    labels = json.loads((root / "models" / "finetune" / "config.json").read_text())["labels"]
    import pandas as pd

    out = model.predict(pd.DataFrame({"text": ["My computer crashed again.", "Love conquers all."]}))
    assert list(out.columns) == ["label"] and set(out["label"]) <= set(labels)


def test_one_mlflow_run_per_stage_with_params_and_tags(project):
    root, _, _ = project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    assert sorted(r.data.tags[tracking.STAGE_TAG] for r in runs) == sorted(STAGES)
    pretrain_run = next(r for r in runs if r.data.tags[tracking.STAGE_TAG] == "pretrain")
    assert "pretrain.lr" in pretrain_run.data.params and "trainer.precision" in pretrain_run.data.params
    history = mlflow.MlflowClient().get_metric_history(pretrain_run.info.run_id, "train/loss")
    assert len(history) > 1  # per-step metrics from Lightning's MLflow logger
