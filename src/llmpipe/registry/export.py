"""Self-describing model directories that Hugging Face transformers loads as they are.

A directory holds:
  model.safetensors      weights under the Hugging Face Llama names (`model.layers.0.self_attn.q_proj.weight`),
                         BERT names for the encoder (hf_bert.py), or T5 names for the encoder-decoder (hf_t5.py)
  config.json            a transformers LlamaConfig (LlamaForCausalLM or LlamaForSequenceClassification), for
                         the encoder a BertConfig (BertForMaskedLM or BertForSequenceClassification), for the
                         encoder-decoder a T5Config (T5ForConditionalGeneration, or a mean-pooling classifier)
  modeling_llmpipe.py    a mean-pooling classifier only: its transformers class (custom code)
  tokenizer.json         the BPE tokenizer, with tokenizer_config.json naming its special tokens
  llmpipe.json           what llmpipe needs to rebuild the model: kind, GPTConfig, labels, ..., and
                         the size and SHA-256 of model.safetensors and tokenizer.json, checked on load
  params.json            the params.yaml sections that made it

Each family (llmpipe.families) says how its network is written: the decoder under Llama's names
(hf_llama.py), the encoder under BERT's (hf_bert.py), the encoder-decoder under T5's (hf_t5.py,
loaded by AutoModelForSeq2SeqLM). transformers has no Llama, BERT or T5 classifier that mean-pools
(finetune.<task>.pooling: mean, the default, and an encoder-decoder's only pooling): such a
directory carries its own class, loaded with `trust_remote_code=True`. A family that no
transformers architecture computes (the recurrent models, recurrent.py) writes the weights under
its own names and no config.json, and llmpipe loads them.
A directory is written next to its destination and renamed into place, so a reader never sees a
half-written model.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from llmpipe.atomic import replace_dir
from llmpipe.data.tokenizer import EOT, PAD, load_tokenizer
from llmpipe.digests import file_record, file_sha256
from llmpipe.families import classifier, family_of, language_model, model_config

KINDS = ("causal_lm", "masked_lm", "seq2seq_lm", "classifier")
CHECKED_FILES = ("model.safetensors", "tokenizer.json")  # recorded in llmpipe.json, checked on every load
MEAN_POOL_CODE = Path(__file__).parents[1] / "networks" / "modeling_llmpipe.py"  # copied into mean-pooling exports


def export_kind(net: nn.Module, family) -> str:
    """A classifier (a network with a classification head), or the family's language model."""
    return "classifier" if hasattr(net, "score") else family.lm_kind


def save_model_dir(
    out_dir: str | Path,
    net: nn.Module,
    cfg,
    tokenizer_file: str | Path,
    params: dict,
    extra: dict | None = None,
) -> Path:
    """extra: more fields for llmpipe.json, e.g. a classifier's labels and max_tokens."""
    family = family_of(cfg)
    kind = export_kind(net, family)
    tokenizer = load_tokenizer(tokenizer_file)
    ours = {"format": "llmpipe", "kind": kind, "model": cfg.to_dict(), **(extra or {})}
    if kind == "classifier":
        ours["pooling"] = net.pooling  # finetune.<task>.pooling: how the head reads the hidden states
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOT,
        "pad_token": PAD,
        "model_max_length": cfg.block_size,
        "clean_up_tokenization_spaces": False,
    }
    pooling = ours.get("pooling")
    # the family's own names and transformers config (None: no transformers architecture computes it)
    tensors, config, tokenizer_extra = family.export(net, cfg, kind, tokenizer, ours.get("labels"), pooling)
    tokenizer_config.update(tokenizer_extra)
    with replace_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if config is not None:
            write_json(tmp / "config.json", config)
            if pooling == "mean":
                shutil.copyfile(MEAN_POOL_CODE, tmp / MEAN_POOL_CODE.name)
        write_json(tmp / "params.json", params)
        write_json(tmp / "tokenizer_config.json", tokenizer_config)
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
        # what load_model_dir checks before use: a damaged or swapped file is refused by name
        ours["files"] = {name: file_record(tmp / name) for name in CHECKED_FILES}
        write_json(tmp / "llmpipe.json", ours)
    return Path(out_dir)


def write_json(path: Path, data: dict):
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "llmpipe.json"
    if not path.is_file():
        raise ValueError(f"{model_dir} is not an llmpipe model directory: {path.name} is missing")
    config = json.loads(path.read_text())
    if config.get("format") != "llmpipe" or config.get("kind") not in KINDS:
        raise ValueError(f"{path} does not describe an llmpipe model")
    return config


def verify_model_dir(model_dir: str | Path, config: dict):
    """Check the weights and tokenizer against the sizes and SHA-256 that llmpipe.json records."""
    for name, record in config.get("files", {}).items():  # an export written before they were recorded has none
        path = Path(model_dir) / name
        if not path.is_file():
            raise ValueError(f"{path} is missing: {rebuild_hint(model_dir)}")
        if path.stat().st_size != record["bytes"] or file_sha256(path) != record["sha256"]:
            raise ValueError(
                f"{path} is not the file that was exported (its size or SHA-256 differs from what "
                f"{Path(model_dir) / 'llmpipe.json'} records): {rebuild_hint(model_dir)}"
            )


def rebuild_hint(model_dir: str | Path) -> str:
    """How to get a damaged export back: the DVC stage that writes it, or its cached copy."""
    parts = Path(model_dir).parts
    stage = f"finetune@{parts[-1]}" if "finetune" in parts[:-1] else "pretrain"
    return f"rebuild it with `dvc repro -f -s {stage}`, or restore it with `dvc checkout {model_dir}`"


def load_weights(model_dir: str | Path, config: dict) -> dict[str, torch.Tensor]:
    verify_model_dir(model_dir, config)
    path = Path(model_dir) / "model.safetensors"
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} cannot be read as safetensors ({err}): {rebuild_hint(model_dir)}") from err


def load_model_dir(model_dir: str | Path):
    """(network in eval mode, llmpipe.json as a dict, tokenizer) from a directory written by save_model_dir."""
    config = read_config(model_dir)
    cfg = model_config(config["model"])
    net = (
        classifier(cfg, len(config["labels"]), config.get("pooling", "last"))
        if config["kind"] == "classifier"
        else language_model(cfg)
    )
    family_of(cfg).load(net, load_weights(model_dir, config))
    return net.eval(), config, load_tokenizer(model_dir)
