"""Self-describing model directories: safetensors weights, config.json, tokenizer.json, params.json.

A directory is written next to its destination and renamed into place, so a reader never sees a
half-written model.
"""

import json
import shutil
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from llmpipe.atomic import replace_dir
from llmpipe.model import GPT, GPTClassifier, GPTConfig
from llmpipe.tokenizer import load_tokenizer

KINDS = ("causal_lm", "classifier")


def save_model_dir(
    out_dir: str | Path,
    net: nn.Module,
    cfg: GPTConfig,
    tokenizer_file: str | Path,
    params: dict,
    extra: dict | None = None,
) -> Path:
    """extra: more fields for config.json, e.g. a classifier's labels and max_tokens."""
    out_dir = Path(out_dir)
    kind = "classifier" if isinstance(net, GPTClassifier) else "causal_lm"
    config = {"format": "llmpipe", "kind": kind, "model": cfg.to_dict(), **(extra or {})}
    with replace_dir(out_dir) as tmp:
        save_model(net, str(tmp / "model.safetensors"))  # handles the tied embedding / head weight
        (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        (tmp / "params.json").write_text(json.dumps(params, indent=2, ensure_ascii=False) + "\n")
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
    return out_dir


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{model_dir} is not a model directory: {path.name} is missing")
    config = json.loads(path.read_text())
    if config.get("format") != "llmpipe" or config.get("kind") not in KINDS:
        raise ValueError(f"{path} does not describe an llmpipe model")
    return config


def load_model_dir(model_dir: str | Path):
    """(network in eval mode, config dict, tokenizer) from a directory written by save_model_dir."""
    config = read_config(model_dir)
    cfg = GPTConfig(**config["model"])
    net = GPTClassifier(cfg, len(config["labels"])) if config["kind"] == "classifier" else GPT(cfg)
    load_model(net, str(Path(model_dir) / "model.safetensors"))
    return net.eval(), config, load_tokenizer(model_dir)
