"""LoRA (low-rank adapters, Hu et al. 2021) through Hugging Face `peft`: the pretrained matrices stay
frozen and each learns a low-rank update B @ A; at export the update is merged into the weights, so
the exported model is a plain network that loads without peft."""

from torch import nn

# The Transformers' projections: attention q, k, v, o in all; the decoder's SwiGLU gate, up, down
# (transformer.py) and the feed-forward in and out of the encoder (encoder.py) and encoder-decoder (seq2seq.py).
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "ffn_in", "ffn_out"]
FRESH = ("score", "pool_dense")  # a classifier's new head (and the encoder's pooler): trained in full


def apply_lora(net: nn.Module, cfg, adaptable: bool, task: str) -> nn.Module:
    """net wrapped with LoRA adapters (a classifier's new head is trained in full); `adaptable`: its
    model family has the projections of TARGETS (families.Family.lora). Frozen projections get
    none: the encoder-decoder's classifier never runs its decoder, and an adapter without a
    gradient would stall data-parallel training."""
    if not adaptable:
        raise ValueError(
            f"finetune.{task}.lora.enabled: LoRA adapts linear projections, and this model family has none "
            "that peft adapts, e.g. nn.RNN / nn.LSTM / nn.GRU (use model.arch=transformer, bert or t5, or "
            "lora.enabled=false)"
        )
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=TARGETS,
        exclude_modules=frozen_projections(net) or None,
        modules_to_save=[name for name in FRESH if hasattr(net, name)] or None,
    )
    return get_peft_model(net, config)


def frozen_projections(net: nn.Module) -> list[str]:
    """The full names of the target projections whose weights do not train."""
    return [
        name
        for name, module in net.named_modules()
        if name.rsplit(".", 1)[-1] in TARGETS and isinstance(module, nn.Linear) and not module.weight.requires_grad
    ]


def merged(net: nn.Module) -> nn.Module:
    """The plain network with the adapters folded into its weights (net itself if it has none)."""
    return net.merge_and_unload() if hasattr(net, "merge_and_unload") else net
