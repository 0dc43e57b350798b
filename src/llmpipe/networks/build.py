"""One place that turns the `model` section into a network: the Transformer of model.py or a
recurrent model of recurrent.py, chosen by `model.arch`. Stages, export and evaluation build
networks only through here, so a new architecture plugs into all of them at once."""

from torch import nn

from llmpipe.networks.recurrent import ARCHS as RECURRENT_ARCHS
from llmpipe.networks.recurrent import RecurrentClassifier, RecurrentConfig, RecurrentLM
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig

ARCHS = ("transformer", *RECURRENT_ARCHS)
TRANSFORMER_ONLY = ("n_head", "n_kv_head")  # keys a recurrent model has no use for


def model_config(section: dict, vocab_size: int | None = None) -> GPTConfig | RecurrentConfig:
    """The network config from a `model` section (params.yaml) or a saved config dict (llmpipe.json,
    which holds vocab_size; a saved Transformer config has no `arch`)."""
    values = dict(section)
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    arch = values.pop("arch", "transformer")
    if arch not in ARCHS:
        raise ValueError(f"model.arch={arch!r} is not one of {list(ARCHS)}")
    if arch == "transformer":
        return GPTConfig(**values)
    for key in TRANSFORMER_ONLY:
        values.pop(key, None)
    return RecurrentConfig(arch=arch, **values)


def language_model(cfg: GPTConfig | RecurrentConfig) -> nn.Module:
    return GPT(cfg) if isinstance(cfg, GPTConfig) else RecurrentLM(cfg)


def classifier(cfg: GPTConfig | RecurrentConfig, num_labels: int, pooling: str = "mean") -> nn.Module:
    kind = GPTClassifier if isinstance(cfg, GPTConfig) else RecurrentClassifier
    return kind(cfg, num_labels, pooling)


def is_transformer(cfg) -> bool:
    return isinstance(cfg, GPTConfig)
