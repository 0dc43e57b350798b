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

Our Transformer is Llama's architecture (RMSNorm, RoPE in the rotate-half layout, SwiGLU,
grouped-query attention, no biases), so the mapping is a rename: `model.` in front of the backbone's
names. The encoder (encoder.py) is BERT's architecture: hf_bert.py renames it. The encoder-decoder
(seq2seq.py, kind seq2seq_lm) is the original T5's: hf_t5.py renames it, and it loads in
AutoModelForSeq2SeqLM. transformers has no Llama, BERT or T5 classifier that mean-pools
(finetune.<task>.pooling: mean, the default, and an encoder-decoder's only pooling): such a
directory carries its own class, loaded with `trust_remote_code=True`. Nor has transformers an
architecture that matches our recurrent models (recurrent.py): their directories hold the weights
under our own names and no config.json, and llmpipe loads them.
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
from llmpipe.data.tokenizer import EOT, MASK, PAD, load_tokenizer, special_id
from llmpipe.digests import file_record, file_sha256
from llmpipe.networks.build import (
    NetworkConfig,
    classifier,
    is_encoder,
    is_seq2seq,
    is_transformer,
    language_model,
    model_config,
)
from llmpipe.networks.transformer import GPTClassifier, GPTConfig
from llmpipe.registry.hf_bert import bert_config, bert_state_dict, from_bert_state_dict
from llmpipe.registry.hf_configs import config_dict
from llmpipe.registry.hf_t5 import from_t5_state_dict, t5_config, t5_state_dict

KINDS = ("causal_lm", "masked_lm", "seq2seq_lm", "classifier")
CHECKED_FILES = ("model.safetensors", "tokenizer.json")  # recorded in llmpipe.json, checked on every load
HF_PREFIX = "model."
MEAN_POOL_CODE = Path(__file__).parents[1] / "networks" / "modeling_llmpipe.py"  # copied into mean-pooling exports


def hf_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Our parameters under the Hugging Face Llama names (a tied lm_head is stored once, as the embedding)."""
    backbone = net.backbone if isinstance(net, GPTClassifier) else net
    tensors = {HF_PREFIX + k: v for k, v in backbone.state_dict().items() if not k.startswith("lm_head.")}
    if isinstance(net, GPTClassifier):
        tensors["score.weight"] = net.score.weight
    elif not backbone.config.tie_embeddings:
        tensors["lm_head.weight"] = backbone.lm_head.weight
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def from_hf_state_dict(net: nn.Module, tensors: dict[str, torch.Tensor]):
    """Load Hugging Face-named tensors into our network (the inverse of hf_state_dict)."""
    backbone = net.backbone if isinstance(net, GPTClassifier) else net
    ours = {k.removeprefix(HF_PREFIX): v for k, v in tensors.items() if k.startswith(HF_PREFIX)}
    if "lm_head.weight" in tensors:
        ours["lm_head.weight"] = tensors["lm_head.weight"]
    missing, unexpected = backbone.load_state_dict(ours, strict=False)
    # a tied head is the embedding; a classifier has no use for the language-model head
    tied = ["lm_head.weight"] if backbone.config.tie_embeddings or isinstance(net, GPTClassifier) else []
    assert set(missing) <= set(tied) and not unexpected, f"weights do not match the model: {missing} {unexpected}"
    if isinstance(net, GPTClassifier):
        net.score.weight.data.copy_(tensors["score.weight"])


def hf_config(
    cfg: GPTConfig, kind: str, eot_id: int, pad_id: int, labels: list[str] | None, pooling: str = "last"
) -> dict:
    """The transformers LlamaConfig that computes what our GPTConfig computes; for a mean-pooling
    classifier, pointed at the class in modeling_llmpipe.py."""
    from transformers import LlamaConfig

    hf = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.block_size,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,  # documents are not prefixed; <|endoftext|> ends them
        eos_token_id=eot_id,
        pad_token_id=pad_id,
        architectures=["LlamaForSequenceClassification" if kind == "classifier" else "LlamaForCausalLM"],
    )
    mean_pool = ("llmpipe_mean_pool", "LlmpipeMeanPool") if kind == "classifier" and pooling == "mean" else None
    return config_dict(hf, labels, mean_pool)


def own_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Our parameters under our own names, a tied head stored once (as the embedding)."""
    tied = net.config.tie_embeddings if hasattr(net, "config") else net.backbone.config.tie_embeddings
    tensors = {k: v for k, v in net.state_dict().items() if not (tied and k.endswith("lm_head.weight"))}
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def from_own_state_dict(net: nn.Module, tensors: dict[str, torch.Tensor]):
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    assert all(k.endswith("lm_head.weight") for k in missing) and not unexpected, (missing, unexpected)


def export_kind(net: nn.Module, cfg: NetworkConfig) -> str:
    if hasattr(net, "score"):
        return "classifier"
    if is_seq2seq(cfg):
        return "seq2seq_lm"
    return "masked_lm" if is_encoder(cfg) else "causal_lm"


def save_model_dir(
    out_dir: str | Path,
    net: nn.Module,
    cfg: NetworkConfig,
    tokenizer_file: str | Path,
    params: dict,
    extra: dict | None = None,
) -> Path:
    """extra: more fields for llmpipe.json, e.g. a classifier's labels and max_tokens."""
    kind = export_kind(net, cfg)
    tokenizer = load_tokenizer(tokenizer_file)
    eot_id, pad_id = special_id(tokenizer, EOT), special_id(tokenizer, PAD)
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
    if is_transformer(cfg):  # what transformers' Auto classes read
        tensors, config = (
            hf_state_dict(net),
            hf_config(cfg, kind, eot_id, pad_id, ours.get("labels"), pooling or "last"),
        )
    elif is_encoder(cfg):
        mask_id = special_id(tokenizer, MASK)
        tensors, config = bert_state_dict(net), bert_config(cfg, kind, pad_id, mask_id, ours.get("labels"), pooling)
        tokenizer_config["mask_token"] = MASK
    elif is_seq2seq(cfg):
        tensors, config = t5_state_dict(net), t5_config(cfg, kind, pad_id, eot_id, ours.get("labels"), pooling)
    else:  # no transformers architecture computes our recurrent models
        tensors, config = own_state_dict(net), None
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
    tensors = load_weights(model_dir, config)
    if is_transformer(cfg):
        from_hf_state_dict(net, tensors)
    elif is_encoder(cfg):
        from_bert_state_dict(net, tensors)
    elif is_seq2seq(cfg):
        from_t5_state_dict(net, tensors)
    else:
        from_own_state_dict(net, tensors)
    return net.eval(), config, load_tokenizer(model_dir)
