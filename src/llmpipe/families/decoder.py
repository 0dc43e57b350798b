"""The decoder family (model.arch=transformer): the GPT/Llama-style Transformer of
networks/transformer.py, trained on next-token prediction, exported as transformers' Llama
(families/hf_llama.py). Everything else is the left-to-right default of families/base.py."""

from llmpipe.data.tokenizer import EOT, PAD, special_id
from llmpipe.families.base import Family
from llmpipe.families.hf_llama import from_hf_state_dict, hf_config, hf_state_dict
from llmpipe.networks.transformer import GPT, Block, GPTClassifier, GPTConfig


class Decoder(Family):
    archs = ("transformer",)
    config_class = GPTConfig
    lora = True
    shard_units = (Block,)

    def language_model(self, cfg: GPTConfig) -> GPT:
        return GPT(cfg)

    def classifier(self, cfg: GPTConfig, num_labels: int, pooling: str) -> GPTClassifier:
        return GPTClassifier(cfg, num_labels, pooling)

    def export(self, net, cfg: GPTConfig, kind: str, tokenizer, labels, pooling):
        eot_id, pad_id = special_id(tokenizer, EOT), special_id(tokenizer, PAD)
        return hf_state_dict(net), hf_config(cfg, kind, eot_id, pad_id, labels, pooling or "last"), {}

    def load(self, net, tensors):
        from_hf_state_dict(net, tensors)


FAMILY = Decoder()
