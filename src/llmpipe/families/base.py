"""What the pipeline asks of a model family, in one small interface.

A family module (decoder.py, encoder.py, encoder_decoder.py, recurrent.py, or one of your own) defines
`FAMILY`, an instance of a Family subclass, and registers it under the `model.arch` names it builds
(pyproject.toml's entry points, group "llmpipe.families"). The stages, the export, the registry and
the evaluation ask the family, never which family it is: a new family is one module and one conf
file (conf/model/<arch>.yaml), with nothing else to edit.

The defaults here are those of a left-to-right language model trained on next-token prediction (a
"causal" objective, scored in bits per byte) and exported under its own parameter names with no
transformers config: what a new family gets for free. A family overrides what differs.
"""

from abc import ABC, abstractmethod
from dataclasses import fields

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from llmpipe.data.task_support import Unsupported
from llmpipe.data.windows import DocumentSequences, RandomWindows, SequentialWindows
from llmpipe.families.objectives import TRAIN, text_windows, whole_window_examples


class Family(ABC):
    archs: tuple[str, ...] = ()  # the model.arch names it builds
    config_class: type  # its network's config dataclass
    unused_keys: tuple[str, ...] = ()  # keys of the model section it has no use for (model.n_head for an RNN)

    objective = "causal"  # what pretraining teaches it; names its validation scores (val_<objective>_loss)
    bits_per_byte = True  # its loss is nats per next token: validated in bits per byte, like across tokenizers
    lm_kind = "causal_lm"  # the export kind of its language model (registry/export.py KINDS)
    gates = "lm"  # the promote.gates section its pretrained model is judged by
    registered_as = "lm"  # the pretrained model registers as <register.name_prefix>-<this>
    generates = True  # it writes text: samples, supervised fine-tuning, serving
    encodes_prompt = False  # SFT: the prompt goes into an encoder and a decoder writes the response
    lora = False  # its projections are the linear layers LoRA adapts (networks/lora.py TARGETS)
    shard_units: tuple[type, ...] = ()  # the modules FSDP2 shards one by one (the root holds the rest)

    # --- its config, network and classifier head

    def config(self, arch: str, values: dict):
        """Its network's config from the model section's values (arch left out), vocab_size included."""
        values = {k: v for k, v in values.items() if k not in self.unused_keys}
        known = {f.name for f in fields(self.config_class)}
        if "arch" in known:  # a config that names its architecture (saved with it in llmpipe.json)
            values["arch"] = arch
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"invalid model config: model.arch={arch} has no setting {', '.join(unknown)}")
        return self.config_class(**values)

    @abstractmethod
    def language_model(self, cfg) -> nn.Module:
        """The network pretraining trains."""

    def classifier(self, cfg, num_labels: int, pooling: str) -> nn.Module:
        """The language model's backbone (`.backbone`) under a classification head (`.score`)."""
        raise Unsupported(f"model.arch={self.archs[0]} has no classifier head")

    # --- its training objective, and the examples that teach it

    def pretraining_examples(
        self, cfg, settings, tokenizer, train_tokens: np.ndarray, val_tokens: np.ndarray, num_samples: int, seed: int
    ) -> tuple[Dataset, Dataset]:
        """(train, val) datasets of (inputs, targets) windows; `settings` is the pretrain section.
        Next-token prediction: random windows to train, the val split in consecutive windows."""
        T = cfg.block_size
        return RandomWindows(train_tokens, T, num_samples, seed), SequentialWindows(val_tokens, T)

    def examples(self, windows: Dataset, cfg, settings, tokenizer, seed: int, stream: int = TRAIN) -> Dataset:
        """Windows as the examples of its objective (`settings`: an Objective or the pretrain section).
        Next-token prediction learns from the windows as they are."""
        return windows

    def adaptation_texts(self, texts: list[list[int]], eot_id: int, cfg, task: str) -> Dataset:
        """A task's training texts (token ids) as its objective reads them in task-adaptive
        pretraining: each text alone, [eot, *text] predicting [*text, eot]."""
        return DocumentSequences(texts, eot_id)

    def sft_collate(self, pad_id: int):
        """How supervised fine-tuning batches its examples."""
        from llmpipe.networks.batches import pad_windows

        return pad_windows

    def target_logits(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, T, V) logits for targets y given inputs x (what a response loss is computed from)."""
        return net(x)

    def next_token_logits(self, net: nn.Module, prompt_ids: list[int]):
        """A function from the tokens written so far to the logits (V,) of the next one: a
        left-to-right model continues the prompt (its last block_size tokens)."""
        prompt, block = torch.tensor([prompt_ids], dtype=torch.long), net.config.block_size
        context = lambda written: torch.cat([prompt, torch.tensor([written], dtype=torch.long)], dim=1)  # noqa: E731
        return lambda written: net(context(written)[:, -block:])[0, -1]

    # --- its export (registry/export.py writes the directory)

    def export(self, net: nn.Module, cfg, kind: str, tokenizer, labels: list[str] | None, pooling: str | None):
        """(tensors, transformers config.json as a dict or None, extra tokenizer_config fields). By
        default the weights under their own names and no config.json: llmpipe loads them."""
        tied = (net.config if hasattr(net, "config") else net.backbone.config).tie_embeddings
        tensors = {k: v for k, v in net.state_dict().items() if not (tied and k.endswith("lm_head.weight"))}
        return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, None, {}

    def load(self, net: nn.Module, tensors: dict[str, torch.Tensor]):
        """Load exported tensors into a fresh network (the inverse of export)."""
        missing, unexpected = net.load_state_dict(tensors, strict=False)
        assert all(k.endswith("lm_head.weight") for k in missing) and not unexpected, (missing, unexpected)


class WholeWindowFamily(Family):
    """What the encoder and the encoder-decoder share: an objective that reads whole windows
    (padding would be attended to), whose loss is not in bits per byte: the evaluate stage scores
    its own objective's loss and accuracy on the held-out splits instead (families/objectives.py)."""

    bits_per_byte = False

    def pretraining_examples(self, cfg, settings, tokenizer, train_tokens, val_tokens, num_samples, seed):
        return whole_window_examples(self, cfg, settings, tokenizer, train_tokens, val_tokens, num_samples, seed)

    def adaptation_texts(self, texts, eot_id, cfg, task):
        return text_windows(texts, eot_id, cfg.block_size, task)

    @abstractmethod
    def scored_logits(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """(N, V) logits of the scored targets of its examples (`scored`: a mask over y)."""

    def unscored(self, tokenizer) -> tuple[int, ...]:
        """Target ids predicted but not scored in evaluation."""
        return ()
