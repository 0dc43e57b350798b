"""The fine-tuning tasks on the tiny config: every task learns, from pretrained weights and from
scratch, with and without LoRA, and task-adaptive pretraining learns the task's text."""

import csv
import json
import shutil
from dataclasses import replace

import pytest
import torch
import yaml
from torch.utils.data import Dataset

from llmpipe.data.windows import DocumentSequences
from llmpipe.families import model_config
from llmpipe.networks.batches import pad_windows
from llmpipe.registry.export import load_model_dir
from llmpipe.runner import Sections, run_stage
from llmpipe.stages import finetune
from llmpipe.training import finetuning


def losses(path) -> list[float]:
    with open(path) as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def learned(curve: list[float]) -> bool:
    """The loss of the last logging steps is below that of the first ones."""
    k = max(1, len(curve) // 4)
    return sum(curve[-k:]) / k < sum(curve[:k]) / k


@pytest.mark.parametrize("task", ["topics", "sentiment", "sft"])
def test_each_task_learns_from_pretrained_weights(tiny_project, task):
    root, metrics, _ = tiny_project
    curve = losses(root / "plots" / "finetune" / task / "train.csv")
    assert len(curve) >= 4 and learned(curve), (task, curve)
    assert set(metrics[f"finetune/{task}"]) >= {"loss", "best_step", "seed", "train_examples", "val_examples"}


def run_copy(tiny_project, tmp_path, monkeypatch, task: str, **changes) -> dict:
    """The finetune stage of one task, with finetune.<task> changed, in a copy of the tiny project's
    tokens and pretrained model under its own MLflow store."""
    root, _, params = tiny_project
    for part in ("data/tokens", "models/pretrain"):
        shutil.copytree(root / part, tmp_path / part)
    params = task_params(params, task, **changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return run_stage(finetune.stage(task), tmp_path)


def test_a_task_learns_from_scratch_under_its_own_seed_and_pretraining_helps(tiny_project, tmp_path, monkeypatch):
    """The transfer study's baseline: the same task from random weights, under finetune.<task>.seed."""
    _, metrics, params = tiny_project
    scratch = run_copy(tiny_project, tmp_path, monkeypatch, "sft", init="scratch", seed=params["seed"] + 1)
    assert scratch["seed"] == params["seed"] + 1 and learned(
        losses(tmp_path / "plots" / "finetune" / "sft" / "train.csv")
    )
    assert metrics["finetune/sft"]["loss"] < scratch["loss"]  # a nat apart on the tiny model too


@pytest.mark.parametrize("task", ["topics", "sft"])
def test_with_lora_each_task_learns_and_exports_a_plain_model(tiny_project, tmp_path, monkeypatch, task):
    lora_cfg = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0}
    # adapters start at zero: a higher rate, as LoRA recipes use
    run_copy(tiny_project, tmp_path, monkeypatch, task, lora=lora_cfg, lr=3e-3, max_steps=120)
    assert learned(losses(tmp_path / "plots" / "finetune" / task / "train.csv"))
    net, config, _ = load_model_dir(tmp_path / "models" / "finetune" / task)
    assert not any("lora" in name for name, _ in net.named_parameters())
    params_json = json.loads((tmp_path / "models" / "finetune" / task / "params.json").read_text())
    assert params_json["finetune"][task]["lora"]["enabled"] is True


def task_params(params: dict, task: str, **changes) -> dict:
    """params with finetune.<task> changed, the rest shared."""
    return {**params, "finetune": {**params["finetune"], task: {**params["finetune"][task], **changes}}}


def same_weights(a, b) -> bool:
    ours, theirs = a.state_dict(), b.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_tiny_sentiment_task_adapts_before_its_pretrained_run(tiny_project):
    root, metrics, params = tiny_project
    adapt = metrics["finetune/sentiment"]["adapt"]
    assert adapt["steps"] == params["finetune"]["sentiment"]["adapt_steps"] > 0
    curve = losses(root / "plots" / "finetune" / "sentiment" / "adapt" / "train.csv")
    assert (
        learned(curve)
        and curve[0] == pytest.approx(adapt["first_loss"])
        and curve[-1] == pytest.approx(adapt["last_loss"])
    )
    assert "adapt" not in metrics["finetune/topics"]  # adapt_steps 0: the pretrained weights as they are


class Untouchable(Dataset):
    def __len__(self):
        raise AssertionError("task-adaptive pretraining read the validation split")

    def __getitem__(self, i):
        raise AssertionError("task-adaptive pretraining read the validation split")


@torch.no_grad()
def lm_loss(net, texts: DocumentSequences) -> float:
    x, y = pad_windows([texts[i] for i in range(len(texts))])
    return float(net.eval()(x, targets=y))


def test_adaptation_learns_held_out_task_text_from_training_texts_only_and_resumes_to_the_same_weights(
    tiny_project, tmp_path
):
    root, _, params = tiny_project
    for part in ("data/tokens", "models/pretrain"):
        shutil.copytree(root / part, tmp_path / part)
    params = task_params(params, "sentiment", adapt_steps=20)
    cfg = Sections(params, ["seed", "finetune.sentiment", "hardware"])
    task = finetuning.Task(
        "sentiment", cfg.finetune["sentiment"], cfg.raw["finetune.sentiment"], cfg.seed, cfg.hardware, tmp_path
    )
    backbone, config, tokenizer = load_model_dir(tmp_path / "models" / "pretrain")
    model_cfg = model_config(config["model"])
    max_tokens = task.cfg.max_tokens
    data = finetuning.classify_data("sentiment", task.cfg, tokenizer, tmp_path / "data" / "tokens", max_tokens)
    held_out = DocumentSequences(data.val.ids, data.eot_id)  # reviews the adaptation never sees
    train_only = replace(data, val=Untouchable())
    adapted, info = finetuning.adapt(task, train_only, model_cfg, backbone)
    before, after = lm_loss(backbone, held_out), lm_loss(adapted, held_out)
    assert after < before - 0.1, (before, after)
    assert info["steps"] == 20 and info["last_loss"] < info["first_loss"]
    # A second run finds the finished run's checkpoint and trains nothing more.
    again, _ = finetuning.adapt(task, train_only, model_cfg, backbone)
    assert same_weights(again, adapted)
