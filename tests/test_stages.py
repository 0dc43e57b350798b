"""Each stage's run() on the tiny config, in order, in a temporary project with its own MLflow store."""

import json
import math

import mlflow
import pytest

from llmpipe import registry, tracking
from llmpipe.stages import STAGES


def test_ingest_reads_both_languages_with_labels(tiny_project):
    root, metrics, _ = tiny_project
    assert metrics["ingest"]["docs_per_lang"]["en"] > 0 and metrics["ingest"]["docs_per_lang"]["zh"] > 0
    tang = [json.loads(line) for line in (root / "data" / "raw" / "tang300.jsonl").open()]
    assert tang[0]["lang"] == "zh" and tang[0]["label"] == "tang300" and "\x1b[" in tang[0]["text"]


def test_clean_removes_the_colour_codes(tiny_project):
    root, metrics, _ = tiny_project
    assert metrics["clean"]["fixed"]["ansi_escapes"] > 0
    assert metrics["clean"]["docs_out"] <= metrics["clean"]["docs_in"]
    text = (root / "data" / "clean" / "docs.jsonl").read_text()
    assert "\\u001b" not in text and "\x1b" not in text


def test_tokenize_splits_and_counts(tiny_project):
    root, metrics, params = tiny_project
    meta = json.loads((root / "data" / "tokens" / "meta.json").read_text())
    assert meta["vocab_size"] <= params["tokenize"]["vocab_size"]
    for split in ("train", "val", "test"):
        info = meta["splits"][split]
        assert info["docs"] > 0 and (root / "data" / "tokens" / f"{split}.bin").stat().st_size == 2 * info["tokens"]
    assert metrics["tokenize"]["splits"] == meta["splits"]


def test_pretrain_learns_and_exports(tiny_project):
    root, metrics, _ = tiny_project
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    assert metrics["pretrain"]["val_loss"] < math.log(vocab) - 1.0  # well below a uniform guess
    for name in (
        "model.safetensors",
        "config.json",
        "llmpipe.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "params.json",
    ):
        assert (root / "models" / "pretrain" / name).is_file()


def test_training_curves_for_dvc_plots(tiny_project):
    root, _, params = tiny_project
    train = (root / "plots" / "pretrain" / "train.csv").read_text().splitlines()
    val = (root / "plots" / "pretrain" / "val.csv").read_text().splitlines()
    assert train[0] == "step,loss,lr" and val[0] == "step,loss,bpb"
    steps = params["pretrain"]["max_tokens"] // params["pretrain"]["batch_tokens"]
    assert len(train) - 1 == steps // params["pretrain"]["log_every"]
    assert (root / "plots" / "finetune" / "val.csv").read_text().startswith("step,loss,acc,macro_f1")


def test_finetune_exports_a_classifier_with_its_labels(tiny_project):
    root, metrics, params = tiny_project
    config = json.loads((root / "models" / "finetune" / "llmpipe.json").read_text())
    assert config["kind"] == "classifier" and len(config["labels"]) == params["finetune"]["max_labels"]
    assert 0.0 <= metrics["finetune"]["val_macro_f1"] <= 1.0


def test_exports_load_in_transformers_auto_classes(tiny_project):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    root, _, _ = tiny_project
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "pretrain")
    lm = AutoModelForCausalLM.from_pretrained(root / "models" / "pretrain")
    ids = tokenizer("The computer", return_tensors="pt")["input_ids"]
    out = lm.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 5) or out[0, -1] == tokenizer.eos_token_id
    classifier = AutoModelForSequenceClassification.from_pretrained(root / "models" / "finetune")
    with torch.no_grad():
        logits = classifier(ids).logits
    labels = json.loads((root / "models" / "finetune" / "llmpipe.json").read_text())["labels"]
    assert logits.shape == (1, len(labels)) and classifier.config.id2label[0] == labels[0]


def test_evaluate_reports_models_next_to_baselines(tiny_project):
    root, metrics, _ = tiny_project
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


def test_register_sets_challenger_on_both_models_and_they_answer(tiny_project):
    root, metrics, params = tiny_project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    for kind in ("lm", "classifier"):
        name = params["register"][f"{kind}_name"]
        version = client.get_model_version(name, str(metrics["register"][kind]["version"]))
        assert "challenger" in client.get_registered_model(name).aliases  # later tests may move it on
        assert float(version.tags["eval/lm/val_bpb"]) == metrics["evaluate"]["lm"]["val_bpb"]
        assert "eval/classify/test_macro_f1" in version.tags
    import pandas as pd

    versions = {kind: metrics["register"][kind]["version"] for kind in ("lm", "classifier")}
    classifier = mlflow.pyfunc.load_model(f"models:/{params['register']['classifier_name']}/{versions['classifier']}")
    labels = json.loads((root / "models" / "finetune" / "llmpipe.json").read_text())["labels"]
    out = classifier.predict(pd.DataFrame({"text": ["My computer crashed again.", "Love conquers all."]}))
    assert list(out.columns) == ["label"] and set(out["label"]) <= set(labels)
    for name in (params["register"]["lm_name"], params["register"]["classifier_name"]):
        logged = registry.download_model_dir(f"models:/{name}@challenger").parents[1]
        assert (logged / "MLmodel").is_file() and not list(logged.rglob("*.pkl"))  # models from code: no pickle
    lm = mlflow.pyfunc.load_model(f"models:/{params['register']['lm_name']}/{versions['lm']}")
    out = lm.predict(pd.DataFrame({"prompt": ["The computer"]}), params={"max_new_tokens": 8, "temperature": 0.0})
    assert list(out.columns) == ["text"] and isinstance(out["text"][0], str)


def test_one_mlflow_run_per_stage_with_params_and_tags(tiny_project):
    root, _, _ = tiny_project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    stages = [r.data.tags[tracking.STAGE_TAG] for r in runs]
    assert set(stages) == set(STAGES)
    assert all(stages.count(s) == 1 for s in STAGES if s != "register")  # registry tests register again
    pretrain_run = next(r for r in runs if r.data.tags[tracking.STAGE_TAG] == "pretrain")
    assert "pretrain.lr" in pretrain_run.data.params and "trainer.precision" in pretrain_run.data.params
    history = mlflow.MlflowClient().get_metric_history(pretrain_run.info.run_id, "train/loss")
    assert len(history) > 1  # per-step metrics from Lightning's MLflow logger
    client, run_id = mlflow.MlflowClient(), pretrain_run.info.run_id
    steps = {m.step for m in history}
    for key in ("train/lr", "train/grad_norm", "perf/tokens_per_s", "perf/peak_mem_gb"):
        logged = client.get_metric_history(run_id, key)
        assert {m.step for m in logged} == steps, key  # every logging step, the same steps as the loss
        assert all(m.value > 0 for m in logged), key
    assert not client.get_metric_history(run_id, "perf/mfu")  # no peak FLOP/s for a CPU: not made up
