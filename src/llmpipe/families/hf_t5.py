"""The encoder-decoder (networks/seq2seq.py) as Hugging Face transformers' T5: weight names and config.

Our Seq2Seq is the original T5's architecture (T5 v1.0: RMSNorm pre-norm blocks, a ReLU feed-forward,
no biases, one relative-position table per stack (transformers keeps it in the stack's first
layer, ours at the top of the model), unscaled attention, one
embedding for both stacks and the output, whose input is scaled by d_model ** -0.5), so an export
is a rename of the weights plus a T5Config, and loads as T5ForConditionalGeneration. The embedding
is written once, as `shared.weight`: transformers ties the stacks' embeddings and the output
projection (`lm_head`) to it, and scales the decoder's output as ours does (a T5Config always ties).
The decoder's start token is the pad token, as in T5.

A classifier (Seq2SeqClassifier) pools the mean of the encoder's final states; transformers'
T5ForSequenceClassification instead runs both stacks and reads the decoder's state at the last
end-of-text token. Its directory carries its own class (modeling_llmpipe.py, custom code, loaded
with trust_remote_code=True), laid out as T5ForSequenceClassification is: the whole T5 model under
`transformer.` (the decoder too, unused, so the export is the model that was trained) and the head
under `classification_head.` (our pool_dense is its `dense`, our score its `out_proj`).
"""

import re

import torch
from torch import nn

from llmpipe.families.hf_configs import config_dict
from llmpipe.networks.seq2seq import Seq2SeqClassifier, Seq2SeqConfig

# our name in a Seq2Seq (a regular expression over one parameter's name) -> transformers' T5 name
RENAMES = [
    (r"embed_tokens\.weight", r"shared.weight"),
    (r"encoder_layers\.(\d+)\.attn_norm\.weight", r"encoder.block.\1.layer.0.layer_norm.weight"),
    (r"encoder_layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (
        r"encoder_positions\.weight",
        r"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    ),
    (r"encoder_layers\.(\d+)\.ffn_norm\.weight", r"encoder.block.\1.layer.1.layer_norm.weight"),
    (r"encoder_layers\.(\d+)\.ffn\.ffn_in\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wi.weight"),
    (r"encoder_layers\.(\d+)\.ffn\.ffn_out\.weight", r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
    (r"encoder_norm\.weight", r"encoder.final_layer_norm.weight"),
    (r"decoder_layers\.(\d+)\.attn_norm\.weight", r"decoder.block.\1.layer.0.layer_norm.weight"),
    (r"decoder_layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"decoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (
        r"decoder_positions\.weight",
        r"decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    ),
    (r"decoder_layers\.(\d+)\.cross_norm\.weight", r"decoder.block.\1.layer.1.layer_norm.weight"),
    (
        r"decoder_layers\.(\d+)\.cross_attn\.([qkvo])_proj\.weight",
        r"decoder.block.\1.layer.1.EncDecAttention.\2.weight",
    ),
    (r"decoder_layers\.(\d+)\.ffn_norm\.weight", r"decoder.block.\1.layer.2.layer_norm.weight"),
    (r"decoder_layers\.(\d+)\.ffn\.ffn_in\.weight", r"decoder.block.\1.layer.2.DenseReluDense.wi.weight"),
    (r"decoder_layers\.(\d+)\.ffn\.ffn_out\.weight", r"decoder.block.\1.layer.2.DenseReluDense.wo.weight"),
    (r"decoder_norm\.weight", r"decoder.final_layer_norm.weight"),
]
# a Seq2SeqClassifier's own layers -> the custom class's (modeling_llmpipe.LlmpipeT5MeanPoolForSequenceClassification)
HEAD_RENAMES = [
    (r"pool_dense\.(weight|bias)", r"classification_head.dense.\1"),
    (r"score\.(weight|bias)", r"classification_head.out_proj.\1"),
]
CLASSIFIER_PREFIX = "transformer."  # where a classifier's export holds the T5 model
# what transformers ties to shared.weight: a checkpoint may hold copies, never other values
TIED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")


def t5_name(name: str, classifier: bool = False) -> str:
    """Our parameter name (in a Seq2Seq, or a Seq2SeqClassifier if `classifier`) -> transformers' T5 name."""
    if classifier and name.startswith("backbone."):
        return CLASSIFIER_PREFIX + t5_name(name.removeprefix("backbone."))
    for ours, theirs in HEAD_RENAMES if classifier else RENAMES:
        if re.fullmatch(ours, name):
            return re.sub(ours, theirs, name)
    raise AssertionError(f"no T5 name for {name}")


def t5_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Our Seq2Seq's or Seq2SeqClassifier's weights under transformers' T5 names, the tied embedding
    once (as shared.weight)."""
    classifier = isinstance(net, Seq2SeqClassifier)
    return {t5_name(k, classifier): v.detach().contiguous().cpu() for k, v in net.state_dict().items()}


def from_t5_state_dict(net: nn.Module, tensors: dict[str, torch.Tensor]):
    """Load T5-named tensors into our Seq2Seq or Seq2SeqClassifier (the inverse of t5_state_dict)."""
    classifier = isinstance(net, Seq2SeqClassifier)
    prefix = CLASSIFIER_PREFIX if classifier else ""
    ours = {t5_name(k, classifier): k for k in net.state_dict()}
    tied = {prefix + k for k in TIED}
    missing, unexpected = set(ours) - set(tensors), set(tensors) - set(ours) - tied
    assert not missing and not unexpected, (
        f"weights do not match the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
    )
    shared = tensors[prefix + "shared.weight"]
    for name in sorted(tied & set(tensors)):
        assert torch.equal(tensors[name], shared), f"{name} differs from {prefix}shared.weight: ours are tied"
    net.load_state_dict({k: tensors[theirs] for theirs, k in ours.items()})


def t5_config(
    cfg: Seq2SeqConfig, kind: str, pad_id: int, eot_id: int, labels: list[str] | None, pooling: str | None = "mean"
) -> dict:
    """The transformers T5Config that computes what our Seq2SeqConfig computes (T5ForConditionalGeneration);
    for a classifier, pointed at the mean-pooling class in modeling_llmpipe.py."""
    from transformers import T5Config

    if pad_id != cfg.pad_id:
        raise ValueError(f"the tokenizer's pad id {pad_id} is not the model's ({cfg.pad_id}): its start token")
    if kind == "classifier" and pooling != "mean":
        raise ValueError(f"pooling={pooling!r}: an encoder-decoder's export pools the mean")
    hf = T5Config(
        vocab_size=cfg.vocab_size,
        d_model=cfg.d_model,
        d_kv=cfg.d_model // cfg.n_head,
        d_ff=cfg.ffn_hidden,
        num_layers=cfg.n_layer,
        num_decoder_layers=cfg.n_layer,
        num_heads=cfg.n_head,
        relative_attention_num_buckets=cfg.num_buckets,
        relative_attention_max_distance=cfg.max_distance,
        dropout_rate=cfg.dropout,
        classifier_dropout=cfg.dropout,  # the classifier's dropout between its two layers
        layer_norm_epsilon=cfg.norm_eps,
        feed_forward_proj="relu",  # T5 v1.0's; v1.1's gated-gelu is not ours
        tie_word_embeddings=True,  # and so the decoder's output is scaled by d_model ** -0.5
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
        eos_token_id=eot_id,
        architectures=["T5ForConditionalGeneration"],
    )
    mean_pool = ("llmpipe_t5_mean_pool", "LlmpipeT5MeanPool") if kind == "classifier" else None
    return config_dict(hf, labels, mean_pool)
