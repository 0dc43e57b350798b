"""The encoder (networks/encoder.py) as Hugging Face transformers' BERT: weight names and config.

Our encoder computes what transformers' BertForMaskedLM and BertForSequenceClassification compute
(post-norm blocks, learned positions, GELU, BERT's MLM head and pooler), so an export is a rename
of the weights plus a BertConfig. Two things transformers' BERT has that ours does not:
token-type ("segment") embeddings, written as one row of zeros, which adds nothing; and the [CLS]
convention, which ours meets by pooling position 0 (pooling `first`). A classifier that pools the
mean of its tokens has no BERT class in transformers: its directory carries its own
(modeling_llmpipe.py, custom code, loaded with trust_remote_code=True).
"""

import re

import torch
from torch import nn

from llmpipe.families.hf_configs import config_dict
from llmpipe.networks.encoder import EncoderClassifier, EncoderConfig

# our name (a regular expression over one parameter's name) -> transformers' BERT name
RENAMES = [
    (r"embed_tokens\.weight", r"bert.embeddings.word_embeddings.weight"),
    (r"embed_positions\.weight", r"bert.embeddings.position_embeddings.weight"),
    (r"embed_norm\.(\w+)", r"bert.embeddings.LayerNorm.\1"),
    (r"layers\.(\d+)\.self_attn\.q_proj\.(\w+)", r"bert.encoder.layer.\1.attention.self.query.\2"),
    (r"layers\.(\d+)\.self_attn\.k_proj\.(\w+)", r"bert.encoder.layer.\1.attention.self.key.\2"),
    (r"layers\.(\d+)\.self_attn\.v_proj\.(\w+)", r"bert.encoder.layer.\1.attention.self.value.\2"),
    (r"layers\.(\d+)\.self_attn\.o_proj\.(\w+)", r"bert.encoder.layer.\1.attention.output.dense.\2"),
    (r"layers\.(\d+)\.attn_norm\.(\w+)", r"bert.encoder.layer.\1.attention.output.LayerNorm.\2"),
    (r"layers\.(\d+)\.ffn_in\.(\w+)", r"bert.encoder.layer.\1.intermediate.dense.\2"),
    (r"layers\.(\d+)\.ffn_out\.(\w+)", r"bert.encoder.layer.\1.output.dense.\2"),
    (r"layers\.(\d+)\.ffn_norm\.(\w+)", r"bert.encoder.layer.\1.output.LayerNorm.\2"),
    (r"head_dense\.(\w+)", r"cls.predictions.transform.dense.\1"),
    (r"head_norm\.(\w+)", r"cls.predictions.transform.LayerNorm.\1"),
    (r"lm_head\.bias", r"cls.predictions.bias"),
    (r"lm_head\.weight", r"cls.predictions.decoder.weight"),
    (r"pool_dense\.(\w+)", r"bert.pooler.dense.\1"),
    (r"score\.(\w+)", r"classifier.\1"),
]
TOKEN_TYPES = "bert.embeddings.token_type_embeddings.weight"
DECODER_BIAS = "cls.predictions.decoder.bias"  # a copy of cls.predictions.bias


def bert_name(name: str) -> str:
    for ours, theirs in RENAMES:
        if re.fullmatch(ours, name):
            return re.sub(ours, theirs, name)
    raise AssertionError(f"no BERT name for {name}")


def own_tensors(net: nn.Module) -> dict[str, torch.Tensor]:
    """The weights an export holds under our names: the backbone's (a classifier leaves out its MLM
    head) and the classifier's pooler and score; a tied output projection once, as the embedding."""
    classifier = isinstance(net, EncoderClassifier)
    backbone = net.backbone if classifier else net
    tensors = {}
    for name, value in backbone.state_dict().items():
        if name == "lm_head.weight" and backbone.config.tie_embeddings:
            continue
        if classifier and name.startswith(("head_", "lm_head.")):
            continue
        tensors[name] = value
    if classifier:
        tensors.update({k: v for k, v in net.state_dict().items() if not k.startswith("backbone.")})
    return tensors


def bert_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    tensors = {bert_name(k): v for k, v in own_tensors(net).items()}
    tensors[TOKEN_TYPES] = torch.zeros_like(tensors["bert.embeddings.word_embeddings.weight"][:1])
    if "cls.predictions.bias" in tensors:  # transformers ties the decoder's bias to it only with tied embeddings
        tensors[DECODER_BIAS] = tensors["cls.predictions.bias"].clone()
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def from_bert_state_dict(net: nn.Module, tensors: dict[str, torch.Tensor]):
    """Load BERT-named tensors into our encoder or encoder classifier (the inverse of bert_state_dict)."""
    classifier = isinstance(net, EncoderClassifier)
    backbone = net.backbone if classifier else net
    ours = {
        bert_name(k): k
        for k in [*backbone.state_dict(), *(k for k in net.state_dict() if not k.startswith("backbone."))]
    }
    token_types = tensors.get(TOKEN_TYPES)
    assert token_types is None or not token_types.any(), "segment embeddings that are not zero: not llmpipe's"
    unexpected = set(tensors) - set(ours) - {TOKEN_TYPES, DECODER_BIAS}
    named = {ours[k]: v for k, v in tensors.items() if k in ours}
    head = {k: v for k, v in named.items() if k.startswith(("pool_dense.", "score."))}
    missing, _ = backbone.load_state_dict({k: v for k, v in named.items() if k not in head}, strict=False)
    # a tied output projection is the embedding; a classifier's export has no MLM head
    optional = {"lm_head.weight"} if backbone.config.tie_embeddings or classifier else set()
    if classifier:
        optional |= {k for k in backbone.state_dict() if k.startswith(("head_", "lm_head."))}
        missing += [k for k in ("pool_dense.weight", "pool_dense.bias", "score.weight", "score.bias") if k not in head]
        net.load_state_dict({**net.state_dict(), **head})
    assert set(missing) <= optional and not unexpected, f"weights do not match the model: {missing} {unexpected}"


def bert_config(
    cfg: EncoderConfig, kind: str, pad_id: int, mask_id: int, labels: list[str] | None, pooling: str = "first"
) -> dict:
    """The transformers BertConfig that computes what our EncoderConfig computes; for a classifier
    that pools the mean, pointed at the class in modeling_llmpipe.py."""
    from transformers import BertConfig

    hf = BertConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        intermediate_size=cfg.ffn_hidden,
        hidden_act="gelu",
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        max_position_embeddings=cfg.block_size,
        type_vocab_size=1,
        layer_norm_eps=cfg.norm_eps,
        initializer_range=cfg.init_std,
        tie_word_embeddings=cfg.tie_embeddings,
        pad_token_id=pad_id,
        mask_token_id=mask_id,
        architectures=["BertForSequenceClassification" if kind == "classifier" else "BertForMaskedLM"],
    )
    mean_pool = (
        ("llmpipe_bert_mean_pool", "LlmpipeBertMeanPool") if kind == "classifier" and pooling == "mean" else None
    )
    return config_dict(hf, labels, mean_pool)
