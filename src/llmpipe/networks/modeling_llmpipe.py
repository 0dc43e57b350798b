"""A Llama sequence classifier that pools the mean of the token states, for transformers.

transformers' LlamaForSequenceClassification reads the state of the last real token; llmpipe's
classifiers read the mean over the real tokens by default (model.pool). So that such an export still
loads in transformers' Auto classes, export.py copies this file into the model directory as
`modeling_llmpipe.py` and names it in config.json's `auto_map` ("custom code" in transformers'
terms), with a model type of its own: loading needs `trust_remote_code=True`, and without it
transformers refuses instead of silently pooling the last token.

    AutoModelForSequenceClassification.from_pretrained("models/finetune/topics", trust_remote_code=True)

This file runs inside transformers, from the model directory: it imports transformers and torch only.
"""

from torch import nn
from transformers import LlamaConfig, LlamaModel, LlamaPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


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
        hidden = self.model(input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state  # (B, T, C)
        if attention_mask is None:
            assert input_ids is not None, "pass attention_mask with inputs_embeds"
            attention_mask = input_ids != self.config.pad_token_id
        real = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
        logits = self.score((hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.to(logits.device))
        return SequenceClassifierOutput(loss=loss, logits=logits)
