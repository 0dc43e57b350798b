"""One place that turns the `model` section into a network, chosen by `model.arch`: the decoder
Transformer of transformer.py, the BERT-style encoder of encoder.py, or a recurrent model of
recurrent.py. Stages, export and evaluation build networks only through here, so a new
architecture plugs into all of them at once."""

from torch import nn

from llmpipe.networks.encoder import Encoder, EncoderClassifier, EncoderConfig
from llmpipe.networks.recurrent import ARCHS as RECURRENT_ARCHS
from llmpipe.networks.recurrent import RecurrentClassifier, RecurrentConfig, RecurrentLM
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig

ARCHS = ("transformer", "bert", *RECURRENT_ARCHS)
ENCODER_ARCHS = ("bert",)  # trained on masked tokens, not the next one (training/objectives.py)
TRANSFORMER_ONLY = ("n_head", "n_kv_head")  # keys a recurrent model has no use for
DECODER_ONLY = ("n_kv_head",)  # the encoder's attention has as many key/value heads as query heads
NetworkConfig = GPTConfig | EncoderConfig | RecurrentConfig


def model_config(section: dict, vocab_size: int | None = None) -> NetworkConfig:
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
    if arch in ENCODER_ARCHS:
        for key in DECODER_ONLY:
            values.pop(key, None)
        return EncoderConfig(**values)
    for key in TRANSFORMER_ONLY:
        values.pop(key, None)
    return RecurrentConfig(arch=arch, **values)


def language_model(cfg: NetworkConfig) -> nn.Module:
    """The network that pretraining trains: a decoder's next-token head, the encoder's MLM head."""
    if isinstance(cfg, EncoderConfig):
        return Encoder(cfg)
    return GPT(cfg) if isinstance(cfg, GPTConfig) else RecurrentLM(cfg)


def classifier(cfg: NetworkConfig, num_labels: int, pooling: str = "mean") -> nn.Module:
    kinds = {GPTConfig: GPTClassifier, EncoderConfig: EncoderClassifier, RecurrentConfig: RecurrentClassifier}
    return kinds[type(cfg)](cfg, num_labels, pooling)


def is_encoder(cfg) -> bool:
    return isinstance(cfg, EncoderConfig)


def is_transformer(cfg) -> bool:
    return isinstance(cfg, GPTConfig)
