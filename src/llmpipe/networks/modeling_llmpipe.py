"""Sequence classifiers that pool the mean of the token states, for transformers: on a Llama
backbone (llmpipe's decoder, transformer.py), on a BERT one (llmpipe's encoder, encoder.py) and on
a T5 one (llmpipe's encoder-decoder, seq2seq.py, whose classifier reads the encoder only).

transformers' LlamaForSequenceClassification reads the state of the last real token, its
BertForSequenceClassification the state of the first, and its T5ForSequenceClassification the
decoder's state at the last end-of-text token; llmpipe's classifiers read the mean over the
real tokens by default (finetune.<task>.pooling; an encoder-decoder's only pooling). So that such
an export still loads in transformers' Auto classes, export.py copies this file into the model
directory as `modeling_llmpipe.py` and names it in config.json's `auto_map` ("custom code" in
transformers' terms), with a model type of its own: loading needs `trust_remote_code=True`, and
without it transformers refuses instead of silently pooling another token.

    AutoModelForSequenceClassification.from_pretrained("models/finetune/topics", trust_remote_code=True)

This file runs inside transformers, from the model directory: it imports transformers and torch only.
"""

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    BertPreTrainedModel,
    LlamaConfig,
    LlamaModel,
    LlamaPreTrainedModel,
    T5Config,
    T5Model,
    T5PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.t5.modeling_t5 import T5ClassificationHead


class LlmpipeMeanPoolConfig(LlamaConfig):
    model_type = "llmpipe_mean_pool"


class LlmpipeMeanPoolForSequenceClassification(LlamaPreTrainedModel):
    config_class = LlmpipeMeanPoolConfig

    def __init__(self, config: LlmpipeMeanPoolConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LlamaModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        """Logits (B, num_labels) from the mean of the last hidden states over the real tokens: those
        of `attention_mask` (left or right padding), else those that are not the pad token."""
        attention_mask = real_tokens(input_ids, attention_mask, self.config.pad_token_id)
        hidden = self.model(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state  # (B, T, C)
        real = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
        logits = self.score((hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def real_tokens(input_ids, attention_mask, pad_token_id):
    """(B, T) 1 at the real tokens: attention_mask's (left or right padding), else the non-pad ones."""
    if attention_mask is None:
        assert input_ids is not None, "pass attention_mask with inputs_embeds"
        attention_mask = input_ids != pad_token_id
    return attention_mask


class LlmpipeBertMeanPoolConfig(BertConfig):
    model_type = "llmpipe_bert_mean_pool"


class LlmpipeBertMeanPoolForSequenceClassification(BertPreTrainedModel):
    """BERT's classification head (pooler dense + tanh, then a linear layer to the labels) on the
    mean of the real tokens' final states instead of the first token's."""

    config_class = LlmpipeBertMeanPoolConfig

    def __init__(self, config: LlmpipeBertMeanPoolConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        attention_mask = real_tokens(input_ids, attention_mask, self.config.pad_token_id)
        hidden = self.bert(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state  # (B, T, C)
        real = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
        mean = (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)
        logits = self.classifier(self.dropout(torch.tanh(self.bert.pooler.dense(mean))))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LlmpipeT5MeanPoolConfig(T5Config):
    model_type = "llmpipe_t5_mean_pool"


class LlmpipeT5MeanPoolForSequenceClassification(T5PreTrainedModel):
    """The mean of the real tokens' final encoder states, a dense layer with tanh, dropout, then a
    linear layer to the labels. Laid out as T5ForSequenceClassification: the whole T5 model under
    `transformer` (its decoder unused here, kept so the directory holds the model that was trained)
    and the two layers under `classification_head` (whose dropout runs after the tanh only)."""

    config_class = LlmpipeT5MeanPoolConfig
    _keys_to_ignore_on_load_unexpected = [
        "transformer.decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
    ]

    def __init__(self, config: LlmpipeT5MeanPoolConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = T5Model(config)
        self.classification_head = T5ClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        attention_mask = real_tokens(input_ids, attention_mask, self.config.pad_token_id)
        encoder = self.transformer.encoder
        hidden = encoder(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state  # (B, S, C)
        real = attention_mask.to(hidden.dtype)[..., None]  # (B, S, 1)
        mean = (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)
        head = self.classification_head
        logits = head.out_proj(head.dropout(torch.tanh(head.dense(mean))))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)
