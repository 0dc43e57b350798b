"""The fine-tuning tasks on the tiny config: every task learns, with and without LoRA, and reports
the same task trained from random initialization beside it."""

import csv
import json
import shutil
from dataclasses import replace

import pytest
import torch
import yaml
from torch.utils.data import Dataset

from llmpipe import networks
from llmpipe.datasets import DocumentSequences, pad_windows
from llmpipe.export import load_model_dir
from llmpipe.runner import run_stage
from llmpipe.stages import finetune


def losses(path) -> list[float]:
    with open(path) as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def learned(curve: list[float]) -> bool:
    """The loss of the last logging steps is below that of the first ones."""
    k = max(1, len(curve) // 4)
    return sum(curve[-k:]) / k < sum(curve[:k]) / k


@pytest.mark.parametrize("task", ["topics", "sentiment", "sft"])
def test_each_task_learns_from_pretrained_weights_and_from_scratch(tiny_project, task):
    root, metrics, _ = tiny_project
    for init in ("", "from_scratch"):
        curve = losses(root / "plots" / "finetune" / task / init / "train.csv")
        assert len(curve) >= 4 and learned(curve), (task, init, curve)
    assert set(metrics[f"finetune/{task}"]) >= {"pretrained", "from_scratch", "train_examples", "val_examples"}


def test_repeats_under_further_seeds_report_each_seed_and_their_mean(tiny_project):
    root, metrics, params = tiny_project
    topics, seed = metrics["finetune/topics"], params["seed"]
    seeds = [str(seed + i) for i in range(params["finetune"]["topics"]["seeds"])]
    assert len(seeds) == 2 and list(topics["by_seed"]) == seeds and topics["seed_mean"]["seeds"] == 2
    for init in ("pretrained", "from_scratch"):
        assert topics[init] == topics["by_seed"][seeds[0]][init]  # the headline run is the exported one's
        runs = [topics["by_seed"][s][init] for s in seeds]
        assert runs[0] != runs[1]  # another seed: another run
        for name in ("macro_f1", "acc", "loss"):
            assert topics["seed_mean"][init][name] == pytest.approx(sum(r[name] for r in runs) / 2)
            assert topics["seed_mean"][init][f"{name}_sd"] == pytest.approx(abs(runs[0][name] - runs[1][name]) / 2**0.5)
    for folder in (f"seed{seeds[1]}", f"from_scratch/seed{seeds[1]}"):  # the repeats' own curves
        assert learned(losses(root / "plots" / "finetune" / "topics" / folder / "train.csv")), folder
    assert "by_seed" not in metrics["finetune/sentiment"]  # one seed: no repeats
    assert finetune.run_name("pretrained", seed, seed) == "" and finetune.run_name("from_scratch", seed + 1, seed) == (
        f"from_scratch/seed{seed + 1}"
    )


@pytest.mark.parametrize("task", ["topics", "sft"])
def test_with_lora_each_task_learns_and_exports_a_plain_model(tiny_project, tmp_path, monkeypatch, task):
    root, _, params = tiny_project
    for part in ("data/tokens", "models/pretrain"):
        shutil.copytree(root / part, tmp_path / part)
    params = {**params, "finetune": {**params["finetune"]}}
    params["finetune"][task] = {
        **params["finetune"][task],
        "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
    }
    params["finetune"][task]["from_scratch_baseline"] = False
    params["finetune"][task]["seeds"] = 1
    params["finetune"][task]["lr"] = 3e-3  # adapters start at zero: a higher rate, as LoRA recipes use
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = lambda params, root: finetune.run_task(params, root, task)  # noqa: E731
    metrics = run_stage(finetune.stage_name(task), run, finetune.sections(task), tmp_path, finetune.LOGGED)
    assert learned(losses(tmp_path / "plots" / "finetune" / task / "train.csv"))
    assert "from_scratch" not in metrics
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
    cfg = params["finetune"]["sentiment"]
    backbone, config, tokenizer = load_model_dir(tmp_path / "models" / "pretrain")
    model_cfg = networks.model_config(config["model"])
    data = finetune.classify_data("sentiment", cfg, tokenizer, tmp_path / "data" / "tokens", cfg["max_tokens"])
    held_out = DocumentSequences(data.val.ids, data.eot_id)  # reviews the adaptation never sees
    train_only = replace(data, val=Untouchable())
    adapted, info = finetune.adapt(params, tmp_path, "sentiment", train_only, model_cfg, backbone)
    before, after = lm_loss(backbone, held_out), lm_loss(adapted, held_out)
    assert after < before - 0.1, (before, after)
    assert info["steps"] == 20 and info["last_loss"] < info["first_loss"]
    # A second run finds the finished run's checkpoint and trains nothing more.
    again, _ = finetune.adapt(params, tmp_path, "sentiment", train_only, model_cfg, backbone)
    assert same_weights(again, adapted)
