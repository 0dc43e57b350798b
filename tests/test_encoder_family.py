"""model=bert through the stages, on the tiny project's tokens: masked-language pretraining whose
loss falls, an export that transformers loads as BertForMaskedLM with the same logits, fine-tuning
that classifies (and skips SFT with its reason), and evaluation on the masked-token objective."""

import json
import math
import shutil

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

from llmpipe.config import compose
from llmpipe.registry.export import load_model_dir
from llmpipe.runner import run_stage
from llmpipe.stages import evaluate, finetune, pretrain

from .conftest import REPO

pytestmark = pytest.mark.slow
SMALL_BERT = ["model=bert", "model.n_layer=2", "model.d_model=64", "model.n_head=2", "model.block_size=64"]


@pytest.fixture(scope="module")
def bert_project(tiny_project, tmp_path_factory):
    """The tiny project's tokens, pretrained with model=bert (MLflow in the project's own store)."""
    root = tmp_path_factory.mktemp("bert")
    shutil.copytree(tiny_project[0] / "data" / "tokens", root / "data" / "tokens")
    (root / "params.yaml").write_text(compose(["experiment=tiny", *SMALL_BERT], REPO / "conf"))
    metrics = run_stage(pretrain.stage(), root)
    return root, metrics


def test_masked_pretraining_learns_and_reports_no_bits_per_byte(bert_project):
    root, metrics = bert_project
    assert metrics["objective"] == "masked"
    assert "val_bpb" not in metrics and "val_ppl" not in metrics  # not comparable with a decoder's
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    curve = [json.loads(line) for line in (root / "plots" / "pretrain" / "train.jsonl").read_text().splitlines()]
    assert curve[-1]["loss"] < curve[0]["loss"] < math.log(vocab) + 1  # starts near chance and falls
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
    curve = [
        json.loads(line) for line in (root / "plots" / "finetune" / "topics" / "train.jsonl").read_text().splitlines()
    ]
    assert curve[-1]["loss"] < curve[0]["loss"]  # the classifier learns
    hf = AutoModelForSequenceClassification.from_pretrained(
        root / "models" / "finetune" / "topics", trust_remote_code=True
    )
    net, config, tokenizer = load_model_dir(root / "models" / "finetune" / "topics")
    ids = torch.tensor([tokenizer.encode("A fortune about computers and programs.").ids])
    with torch.no_grad():
        assert torch.allclose(hf.eval()(ids).logits, net(ids, torch.tensor([ids.shape[1]])), atol=1e-5, rtol=1e-4)
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
