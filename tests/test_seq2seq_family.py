"""model=t5 through the stages, on the tiny project's tokens: span-corruption pretraining whose loss
falls, an export that transformers loads as T5ForConditionalGeneration with the same logits and
the same greedy output, fine-tuning that classifies on the encoder and writes responses text to
text (SFT), evaluation on the span objective and of generations, and a registered version that
generates."""

import csv
import json
import math
import shutil

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForSeq2SeqLM

from llmpipe import typed_params
from llmpipe.cli import registered_models
from llmpipe.config import compose
from llmpipe.data.tokenizer import EOT, special_id
from llmpipe.registry.export import load_model_dir
from llmpipe.registry.inference import stream_tokens
from llmpipe.registry.model_registry import promote
from llmpipe.runner import run_stage
from llmpipe.stages import evaluate, evaluate_harness, evaluate_task, finetune, pretrain, register, report

from .conftest import REPO, assert_loads_as_transformers_classifier

pytestmark = pytest.mark.slow

SMALL_T5 = ["model=t5", "model.n_layer=2", "model.d_model=64", "model.n_head=2", "model.block_size=64"]
PRETRAIN = ["pretrain.max_tokens=512000", "pretrain.val_every=500"]  # 1,000 steps: spans are a slow start
SFT = [
    "finetune.sft.max_steps=60",
    "evaluate_task.generation.max_pairs=4",
    "evaluate_task.generation.max_new_tokens=16",
]


def train_curve(path) -> list[float]:
    with path.open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def t5_project(tiny_project, tmp_path_factory):
    """The tiny project's tokens, pretrained with model=t5 (MLflow in the project's own store)."""
    root = tmp_path_factory.mktemp("t5")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    shutil.copytree(tiny_project[0] / "data" / "tokens", root / "data" / "tokens")
    (root / "params.yaml").write_text(compose(["experiment=tiny", *SMALL_T5, *PRETRAIN, *SFT], REPO / "conf"))
    metrics = run_stage(pretrain.stage(), root)
    yield root, metrics
    monkeypatch.undo()


def test_span_corruption_pretraining_learns_and_reports_no_bits_per_byte(t5_project):
    root, metrics = t5_project
    assert metrics["objective"] == "span"
    assert "val_bpb" not in metrics and "val_ppl" not in metrics  # not comparable with a decoder's
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    curve = train_curve(root / "plots" / "pretrain" / "train.csv")
    assert curve[-1] < curve[0]
    assert metrics["val_loss"] < math.log(vocab) - 1


def test_the_pretrained_model_loads_as_t5_with_the_same_logits_and_greedy_output(t5_project):
    root, _ = t5_project
    net, config, tokenizer = load_model_dir(root / "models" / "pretrain")
    assert config["kind"] == "seq2seq_lm"
    hf = AutoModelForSeq2SeqLM.from_pretrained(root / "models" / "pretrain").eval()
    assert type(hf).__name__ == "T5ForConditionalGeneration"
    source = torch.tensor([tokenizer.encode("Hello <|sentinel_0|> world, 床前明月光").ids])
    targets = torch.tensor([tokenizer.encode("<|sentinel_0|> and").ids])
    with torch.no_grad():
        theirs = hf(input_ids=source, decoder_input_ids=net.shift_right(targets)).logits
        assert torch.allclose(theirs, net.target_logits(source, targets), atol=1e-5, rtol=1e-4)
        eot = special_id(tokenizer, EOT)
        ours = list(stream_tokens(net, source[0].tolist(), 12, temperature=0.0, eos_id=eot))
        generated = hf.generate(source, do_sample=False, max_new_tokens=12)[0, 1:].tolist()  # after the start
    assert ours == [t for t in generated if t not in (eot, config["model"]["pad_id"])][: len(ours)]
    assert len(ours) == 12 or generated[len(ours)] == eot


def test_finetuning_classifies_on_the_encoder_and_writes_responses(t5_project):
    root, _ = t5_project
    topics = run_stage(finetune.stage("topics"), root)
    assert 0 <= topics["macro_f1"] <= 1 and topics["loss"] > 0
    curve = train_curve(root / "plots" / "finetune" / "topics" / "train.csv")
    assert curve[-1] < curve[0]  # the classifier learns
    assert_loads_as_transformers_classifier(root / "models" / "finetune" / "topics")
    sentiment = run_stage(finetune.stage("sentiment"), root)  # adapts first: corrupted spans of the reviews
    # Continued from the pretrained weights (a fresh network would start near log(vocab)). Twenty steps
    # of spans move the loss less than one batch's spans differ from the next (measured: 3.785 -> 3.796
    # on one CPU, 3.778 -> 3.778 on another), so the loss is not asked to fall within them.
    vocab = json.loads((root / "data" / "tokens" / "meta.json").read_text())["vocab_size"]
    adapt = sentiment["adapt"]
    assert adapt["steps"] > 0 and max(adapt["first_loss"], adapt["last_loss"]) < math.log(vocab) - 1
    sft = run_stage(finetune.stage("sft"), root)
    assert "skipped" not in sft and sft["loss"] > 0
    curve = train_curve(root / "plots" / "finetune" / "sft" / "train.csv")
    assert curve[-1] < curve[0]  # text to text: the response loss falls
    scores = run_stage(evaluate_task.stage("sft"), root)["sft"]  # response loss, and generations scored
    assert scores["test_pairs"] > 0 and scores["test_ppl"] == pytest.approx(math.exp(scores["test_loss"]))
    assert all("chrf" in json.dumps(scores[decoding]) for decoding in ("greedy", "sampled"))


def test_evaluation_scores_the_spans_against_a_unigram_model(t5_project):
    root, _ = t5_project
    metrics = run_stage(evaluate.stage(), root)["lm"]
    assert metrics["objective"] == "span" and "val_bpb" not in metrics
    for split in ("val", "test"):
        assert metrics[f"{split}_span_loss"] < metrics[f"unigram_{split}_span_loss"]
        assert 0 < metrics[f"{split}_span_accuracy"] < 1
    assert "sentinel_0" in (root / "reports" / "samples.md").read_text()  # the corrupted inputs, filled
    harness = run_stage(evaluate_harness.stage(), root)
    assert "encoder-decoder" in harness["not_run"]


def test_the_registered_encoder_decoder_generates(t5_project):
    root, _ = t5_project
    if not (root / "metrics" / "evaluate.json").exists():
        run_stage(evaluate.stage(), root)
    registered = run_stage(register.stage(), root)
    params = typed_params.build(yaml.safe_load((root / "params.yaml").read_text()))
    name, gates = registered_models(params)["lm"]
    assert name == registered["model_name"] == "llmpipe-seq2seq" and gates == {"lm/val_span_loss": "min"}
    assert promote(name, gates, "challenger", "champion").promoted
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    out = model.predict(pd.DataFrame({"prompt": ["The computer <|sentinel_0|> again."]}), params={"temperature": 0.0})
    assert isinstance(out["text"][0], str)
    run_stage(report.stage(), root)
    text = (root / "reports" / "report" / "report.md").read_text()
    assert "cut-span tokens" in text and "pretrain_bpb.png" not in text
