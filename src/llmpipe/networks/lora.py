"""LoRA (low-rank adapters, Hu et al. 2021) through Hugging Face `peft`: the pretrained matrices stay
frozen and each learns a low-rank update B @ A; at export the update is merged into the weights, so
the exported model is a plain network that loads without peft."""

from torch import nn

# The Transformer's projections (model.py): attention q, k, v, o and the SwiGLU gate, up, down.
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def apply_lora(net: nn.Module, cfg, transformer: bool, task: str) -> nn.Module:
    """net wrapped with LoRA adapters (a classifier's `score` head is trained in full)."""
    if not transformer:
        raise ValueError(
            f"finetune.{task}.lora.enabled: LoRA adapts linear projections; peft has no adapter for "
            "nn.RNN / nn.LSTM / nn.GRU (use model.arch=transformer, or lora.enabled=false)"
        )
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=TARGETS,
        modules_to_save=["score"] if hasattr(net, "score") else None,
    )
    return get_peft_model(net, config)


def merged(net: nn.Module) -> nn.Module:
    """The plain network with the adapters folded into its weights (net itself if it has none)."""
    return net.merge_and_unload() if hasattr(net, "merge_and_unload") else net
