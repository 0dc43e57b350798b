"""One place that turns the `model` section into a network, chosen by `model.arch`: the decoder
Transformer of transformer.py, the BERT-style encoder of encoder.py, the T5-style encoder-decoder of
seq2seq.py, or a recurrent model of recurrent.py. Stages, export and evaluation build networks
only through here, so a new architecture plugs into all of them at once."""

from torch import nn

from llmpipe.networks import recurrent
from llmpipe.networks.archs import ARCHS, ENCODER_ARCHS, RECURRENT_ARCHS, SEQ2SEQ_ARCHS
from llmpipe.networks.encoder import Encoder, EncoderClassifier, EncoderConfig
from llmpipe.networks.recurrent import RecurrentClassifier, RecurrentConfig, RecurrentLM
from llmpipe.networks.seq2seq import Seq2Seq, Seq2SeqClassifier, Seq2SeqConfig
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig

assert set(RECURRENT_ARCHS) == set(recurrent.ARCHS), (RECURRENT_ARCHS, recurrent.ARCHS)
TRANSFORMER_ONLY = ("n_head", "n_kv_head")  # keys a recurrent model has no use for
DECODER_ONLY = ("n_kv_head",)  # the encoder's attention has as many key/value heads as query heads
NetworkConfig = GPTConfig | EncoderConfig | Seq2SeqConfig | RecurrentConfig


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
    if arch in ENCODER_ARCHS or arch in SEQ2SEQ_ARCHS:
        for key in DECODER_ONLY:
            values.pop(key, None)
        return EncoderConfig(**values) if arch in ENCODER_ARCHS else Seq2SeqConfig(**values)
    for key in TRANSFORMER_ONLY:
        values.pop(key, None)
    return RecurrentConfig(arch=arch, **values)


def language_model(cfg: NetworkConfig) -> nn.Module:
    """The network that pretraining trains: a decoder's next-token head, the encoder's MLM head, the
    encoder-decoder's span writer."""
    kinds = {GPTConfig: GPT, EncoderConfig: Encoder, Seq2SeqConfig: Seq2Seq, RecurrentConfig: RecurrentLM}
    return kinds[type(cfg)](cfg)


def classifier(cfg: NetworkConfig, num_labels: int, pooling: str = "mean") -> nn.Module:
    kinds = {
        GPTConfig: GPTClassifier,
        EncoderConfig: EncoderClassifier,
        Seq2SeqConfig: Seq2SeqClassifier,
        RecurrentConfig: RecurrentClassifier,
    }
    return kinds[type(cfg)](cfg, num_labels, pooling)


def is_encoder(cfg) -> bool:
    return isinstance(cfg, EncoderConfig)


def is_seq2seq(cfg) -> bool:
    return isinstance(cfg, Seq2SeqConfig)


def is_transformer(cfg) -> bool:
    return isinstance(cfg, GPTConfig)
