"""The decoder (networks/transformer.py) as Hugging Face transformers' Llama: weight names and config.

Our Transformer is Llama's architecture (RMSNorm, RoPE in the rotate-half layout, SwiGLU,
grouped-query attention, no biases), so an export is a rename: `model.` in front of the backbone's
names, and a LlamaConfig; it loads in LlamaForCausalLM or LlamaForSequenceClassification. A
classifier that pools the mean of its tokens has no Llama class in transformers: its directory
carries its own (modeling_llmpipe.py, custom code, loaded with trust_remote_code=True).
"""

import torch
from torch import nn

from llmpipe.families.hf_configs import config_dict
from llmpipe.networks.transformer import GPTClassifier, GPTConfig

HF_PREFIX = "model."


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
