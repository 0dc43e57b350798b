"""The encoder-decoder family (model.arch=t5): the T5-style network of networks/seq2seq.py,
pretrained on corrupted spans (families/span_corruption.py), exported as transformers' T5
(families/hf_t5.py). It generates from an encoder's reading of the prompt: supervised fine-tuning
puts the prompt into the encoder and the response into the decoder, and its pretrained samples are
its fillings of corrupted windows, which is all its pretraining taught it. Its span loss compares
with no other family's, so it registers and is gated apart (<prefix>-seq2seq, promote.gates.seq2seq_lm)."""

import torch

from llmpipe.data.tokenizer import EOT, PAD, special_id
from llmpipe.families.base import WholeWindowFamily
from llmpipe.families.hf_t5 import from_t5_state_dict, t5_config, t5_state_dict
from llmpipe.families.objectives import TRAIN, corrupted, span_framing_ids
from llmpipe.networks.batches import pad_pairs
from llmpipe.networks.seq2seq import DecoderLayer, EncoderLayer, Seq2Seq, Seq2SeqClassifier, Seq2SeqConfig


class EncoderDecoder(WholeWindowFamily):
    archs = ("t5",)
    config_class = Seq2SeqConfig
    unused_keys = ("n_kv_head",)  # its attention has as many key/value heads as query heads
    objective = "span"
    lm_kind = gates = "seq2seq_lm"
    registered_as = "seq2seq"
    encodes_prompt = True
    lora = True
    shard_units = (EncoderLayer, DecoderLayer)

    def language_model(self, cfg: Seq2SeqConfig) -> Seq2Seq:
        return Seq2Seq(cfg)

    def classifier(self, cfg: Seq2SeqConfig, num_labels: int, pooling: str) -> Seq2SeqClassifier:
        return Seq2SeqClassifier(cfg, num_labels, pooling)

    def pretraining_examples(self, cfg, settings, tokenizer, train_tokens, val_tokens, num_samples, seed):
        # it starts its decoder with, and masks its input at, the pad id of its config: it must be the
        # tokenizer's <|pad|>, checked before any training
        if special_id(tokenizer, PAD) != cfg.pad_id:
            raise ValueError(
                f"the tokenizer's {PAD} is id {special_id(tokenizer, PAD)}, not {cfg.pad_id} as the "
                "encoder-decoder expects (a tokenizer not trained by llmpipe's tokenize stage?)"
            )
        return super().pretraining_examples(cfg, settings, tokenizer, train_tokens, val_tokens, num_samples, seed)

    def examples(self, windows, cfg: Seq2SeqConfig, settings, tokenizer, seed: int, stream: int = TRAIN):
        return corrupted(windows, settings.span_corruption, tokenizer, seed, stream)

    def sft_collate(self, pad_id: int):
        return pad_pairs(pad_id)  # inputs and targets differ in length; the encoder masks the pad token

    def target_logits(self, net, x, y):
        return net.target_logits(x, y)  # the decoder writes y under teacher forcing

    def scored_logits(self, net, x, y, scored):
        return net.target_logits(x, y)[scored].float()

    def unscored(self, tokenizer) -> tuple[int, ...]:
        # the sentinels and end of text that frame the spans: near-certain for the model, never seen
        # in train by the unigram baseline
        return span_framing_ids(tokenizer)

    def next_token_logits(self, net, prompt_ids):
        """The prompt encoded once (its last block_size tokens); the decoder writes from the start token."""
        memory, memory_bias = net.encode(torch.tensor([prompt_ids], dtype=torch.long)[:, -net.config.block_size :])
        start = [net.config.pad_id]
        return lambda written: net.decode(torch.tensor([start + written]), memory, memory_bias)[0, -1]

    def export(self, net, cfg: Seq2SeqConfig, kind: str, tokenizer, labels, pooling):
        pad_id, eot_id = special_id(tokenizer, PAD), special_id(tokenizer, EOT)
        return t5_state_dict(net), t5_config(cfg, kind, pad_id, eot_id, labels, pooling), {}

    def load(self, net, tensors):
        from_t5_state_dict(net, tensors)


FAMILY = EncoderDecoder()
