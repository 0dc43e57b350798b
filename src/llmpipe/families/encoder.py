"""The encoder family (model.arch=bert): the BERT-style encoder of networks/encoder.py, pretrained on
masked tokens (families/masking.py), exported as transformers' BERT (families/hf_bert.py). It reads
text but does not generate it: no samples, no supervised fine-tuning; its masked-token scores
compare with no decoder's, so it registers and is gated apart (<prefix>-mlm, promote.gates.masked_lm)."""

from llmpipe.data.tokenizer import MASK, PAD, special_id
from llmpipe.families.base import WholeWindowFamily
from llmpipe.families.hf_bert import bert_config, bert_state_dict, from_bert_state_dict
from llmpipe.families.objectives import TRAIN, masked
from llmpipe.networks.encoder import Encoder, EncoderClassifier, EncoderConfig, Layer


class EncoderFamily(WholeWindowFamily):
    archs = ("bert",)
    config_class = EncoderConfig
    unused_keys = ("n_kv_head",)  # its attention has as many key/value heads as query heads
    objective = "masked"
    lm_kind = gates = "masked_lm"
    registered_as = "mlm"
    generates = False
    lora = True
    shard_units = (Layer,)

    def language_model(self, cfg: EncoderConfig) -> Encoder:
        return Encoder(cfg)

    def classifier(self, cfg: EncoderConfig, num_labels: int, pooling: str) -> EncoderClassifier:
        return EncoderClassifier(cfg, num_labels, pooling)

    def examples(self, windows, cfg: EncoderConfig, settings, tokenizer, seed: int, stream: int = TRAIN):
        return masked(windows, cfg, settings.masking, tokenizer, seed, stream)

    def scored_logits(self, net, x, y, scored):
        return net.token_logits(net.hidden_states(x)[scored]).float()  # the MLM head on scored positions only

    def export(self, net, cfg: EncoderConfig, kind: str, tokenizer, labels, pooling):
        pad_id, mask_id = special_id(tokenizer, PAD), special_id(tokenizer, MASK)
        return bert_state_dict(net), bert_config(cfg, kind, pad_id, mask_id, labels, pooling), {"mask_token": MASK}

    def load(self, net, tensors):
        from_bert_state_dict(net, tensors)


FAMILY = EncoderFamily()
