"""The recurrent family (model.arch=rnn, lstm, gru): the language models of networks/recurrent.py,
trained on next-token prediction like the decoder. No transformers architecture computes them, so
they export under their own names with no config.json (the default of families/base.py), and
LoRA, which adapts linear projections, has nothing to adapt in nn.RNN / nn.LSTM / nn.GRU."""

from llmpipe.families.base import Family
from llmpipe.networks.recurrent import ARCHS, RecurrentClassifier, RecurrentConfig, RecurrentLM


class Recurrent(Family):
    archs = tuple(ARCHS)
    config_class = RecurrentConfig
    unused_keys = ("n_head", "n_kv_head")  # a recurrent model has no attention heads

    def language_model(self, cfg: RecurrentConfig) -> RecurrentLM:
        return RecurrentLM(cfg)

    def classifier(self, cfg: RecurrentConfig, num_labels: int, pooling: str) -> RecurrentClassifier:
        return RecurrentClassifier(cfg, num_labels, pooling)


FAMILY = Recurrent()
