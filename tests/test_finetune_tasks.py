"""The fine-tuning tasks on the tiny config: every task learns, with and without LoRA, and reports
the same task trained from random initialization beside it."""

import csv
import json
import shutil

import pytest
import yaml

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
