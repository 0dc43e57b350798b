"""model=bert through the stages, on the tiny project's tokens: masked-language pretraining whose
loss falls, an export that transformers loads as BertForMaskedLM with the same logits, fine-tuning
that classifies (and skips SFT with its reason), evaluation on the masked-token objective, and a
registered version that fills in masks."""

import csv
import json
import math
import shutil

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForMaskedLM

from llmpipe import typed_params
from llmpipe.cli import registered_models
from llmpipe.config import compose
from llmpipe.registry.export import load_model_dir
from llmpipe.registry.model_registry import promote
from llmpipe.runner import run_stage
from llmpipe.stages import evaluate, evaluate_harness, finetune, pretrain, register, report

from .conftest import REPO, assert_loads_as_transformers_classifier

pytestmark = pytest.mark.slow


def train_curve(path) -> list[float]:
    with path.open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


SMALL_BERT = ["model=bert", "model.n_layer=2", "model.d_model=64", "model.n_head=2", "model.block_size=64"]
PRETRAIN = ["pretrain.max_tokens=153600", "pretrain.val_every=100"]  # 300 steps: masked tokens are 15 % of the signal


@pytest.fixture(scope="module")
def bert_project(tiny_project, tmp_path_factory):
    """The tiny project's tokens, pretrained with model=bert (MLflow in the project's own store)."""
    root = tmp_path_factory.mktemp("bert")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    shutil.copytree(tiny_project[0] / "data" / "tokens", root / "data" / "tokens")
    (root / "params.yaml").write_text(compose(["experiment=tiny", *SMALL_BERT, *PRETRAIN], REPO / "conf"))
    metrics = run_stage(pretrain.stage(), root)
    yield root, metrics
    monkeypatch.undo()


def test_masked_pretraining_learns_and_reports_no_bits_per_byte(bert_project):
    root, metrics = bert_project
    assert metrics["objective"] == "masked"
    assert "val_bpb" not in metrics and "val_ppl" not in metrics  # not comparable with a decoder's
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    curve = train_curve(root / "plots" / "pretrain" / "train.csv")
    assert curve[-1] < curve[0] < math.log(vocab) + 1  # starts near chance and falls
    assert metrics["val_loss"] < math.log(vocab) - 1


def test_the_pretrained_encoder_loads_as_bert_for_masked_lm(bert_project):
    root, _ = bert_project
    net, config, tokenizer = load_model_dir(root / "models" / "pretrain")
    assert config["kind"] == "masked_lm"
    hf = AutoModelForMaskedLM.from_pretrained(root / "models" / "pretrain").eval()
    assert type(hf).__name__ == "BertForMaskedLM"
    ids = torch.tensor([tokenizer.encode("Hello <|mask|> world, 床前明月光").ids])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, net(ids), atol=1e-5, rtol=1e-4)


def test_finetuning_classifies_and_skips_generation_with_its_reason(bert_project):
    root, _ = bert_project
    topics = run_stage(finetune.stage("topics"), root)
    assert 0 <= topics["macro_f1"] <= 1 and topics["loss"] > 0
    curve = train_curve(root / "plots" / "finetune" / "topics" / "train.csv")
    assert curve[-1] < curve[0]  # the classifier learns
    assert_loads_as_transformers_classifier(root / "models" / "finetune" / "topics")
    sentiment = run_stage(finetune.stage("sentiment"), root)  # adapts first: masked tokens of the reviews
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    assert sentiment["adapt"]["steps"] > 0 and sentiment["adapt"]["last_loss"] < math.log(vocab) - 1  # below chance
    assert 0 <= sentiment["macro_f1"] <= 1
    sft = run_stage(finetune.stage("sft"), root)
    assert "encoder" in sft["skipped"] and "does not generate" in sft["skipped"]


def test_evaluation_scores_the_masked_tokens_against_a_unigram_model(bert_project):
    root, _ = bert_project
    metrics = run_stage(evaluate.stage(), root)["lm"]
    assert metrics["objective"] == "masked" and "val_bpb" not in metrics
    for split in ("val", "test"):
        assert metrics[f"{split}_masked_loss"] < metrics[f"unigram_{split}_masked_loss"]
        assert 0 < metrics[f"{split}_masked_accuracy"] < 1
    assert "does not generate" in (root / "reports" / "samples.md").read_text()
    harness = run_stage(evaluate_harness.stage(), root)  # it scores choices by next-token likelihood
    assert "encoder" in harness["not_run"] and "next-token" in harness["not_run"]


def test_the_registered_encoder_fills_in_masks(bert_project):
    root, _ = bert_project
    if not (root / "metrics" / "evaluate.json").exists():
        run_stage(evaluate.stage(), root)
    registered = run_stage(register.stage(), root)
    params = typed_params.build(yaml.safe_load((root / "params.yaml").read_text()))
    name, gates = registered_models(params)["lm"]  # what `llmpipe promote` gates it on
    assert name == registered["model_name"] == "llmpipe-mlm" and gates == {"lm/val_masked_loss": "min"}
    assert promote(name, gates, "challenger", "champion").promoted  # the first version: no champion yet
    model = mlflow.pyfunc.load_model(f"models:/{registered['model_name']}@challenger")
    texts = ["The computer is <|mask|> again.", "床前明月<|mask|>，疑是地上霜。"]
    filled = model.predict(pd.DataFrame({"text": texts}))["text"].tolist()
    assert len(filled) == 2 and all("<|mask|>" not in text for text in filled)
    assert filled[0].startswith("The computer is") and filled[0].endswith(" again.")


def test_the_report_card_shows_the_masked_token_scores(bert_project):
    root, _ = bert_project
    if not (root / "metrics" / "evaluate.json").exists():
        run_stage(evaluate.stage(), root)
    run_stage(report.stage(), root)
    text = (root / "reports" / "report" / "report.md").read_text()
    assert "masked tokens" in text and "not comparable" in text
    assert "pretrain_bpb.png" not in text  # an encoder has no bits per byte to plot
