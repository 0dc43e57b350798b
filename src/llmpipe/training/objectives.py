"""What pretraining teaches each family of network, and the examples that teach it.

  causal  the decoders (transformer.py, recurrent.py): predict every next token from the ones
          before it. Validated in bits per byte, comparable across tokenizers and architectures.
  masked  the encoder (encoder.py): restore the tokens hidden in a window seen from both sides
          (training/masking.py). Validated by the masked-token loss, which is NOT comparable with
          a causal model's loss or bits per byte: it scores 15 % of the tokens, each with context
          on both sides, so it is much lower for the same understanding of the text.
  span    the encoder-decoder (seq2seq.py): write the spans cut out of a window, each after the
          sentinel that stands for it in the input (training/span_corruption.py). Validated by the
          loss of the target tokens (sentinels, spans, end of text): comparable with neither.

All read the same token windows (training/loaders.py), seeded by position, so exact resume and
data parallelism hold for all alike.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from llmpipe.data.tokenizer import EOT, MASK, PAD, SENTINELS, SPECIAL_TOKENS, special_id
from llmpipe.networks.encoder import EncoderConfig
from llmpipe.networks.seq2seq import Seq2SeqConfig
from llmpipe.schema import Masking, Pretrain, SpanCorruption
from llmpipe.training.loaders import RandomWindows, SequentialWindows, whole_windows
from llmpipe.training.masking import MaskedWindows
from llmpipe.training.span_corruption import SpanCorruptedWindows

# each also names the scores of its objective (evaluate: val_masked_loss, val_span_loss, ...)
CAUSAL, MASKED, SPANS = "causal", "masked", "span"


@dataclass(frozen=True)
class Objective:
    """The settings of the objectives that pretrain sets (the pretrain section has both fields)."""

    masking: Masking | None
    span_corruption: SpanCorruption | None


def objective(net_cfg) -> str:
    if isinstance(net_cfg, EncoderConfig):
        return MASKED
    return SPANS if isinstance(net_cfg, Seq2SeqConfig) else CAUSAL


TRAIN, VAL = 0, 1  # the masks' streams: a training example and a validation window never share masks


def masked(windows: Dataset, net_cfg, masking: Masking, tokenizer, seed: int, stream: int = TRAIN) -> MaskedWindows:
    """Windows turned into masked-language-modelling examples (random replacements are ordinary tokens)."""
    mask_id, first_ordinary = special_id(tokenizer, MASK), len(SPECIAL_TOKENS)
    return MaskedWindows(windows, masking, mask_id, first_ordinary, net_cfg.vocab_size, seed, stream)


def corrupted(windows: Dataset, cfg: SpanCorruption, tokenizer, seed: int, stream: int = TRAIN) -> SpanCorruptedWindows:
    """Windows turned into span-corruption examples, with the tokenizer's sentinels and end of text."""
    *sentinel_ids, eot_id = span_framing_ids(tokenizer)
    return SpanCorruptedWindows(windows, cfg, sentinel_ids, eot_id, seed, stream)


def check_pad(net_cfg, tokenizer):
    """An encoder-decoder starts its decoder with, and masks its input at, the pad id of its config
    (Seq2SeqConfig.pad_id): it must be the tokenizer's <|pad|>, checked before any training."""
    if isinstance(net_cfg, Seq2SeqConfig) and special_id(tokenizer, PAD) != net_cfg.pad_id:
        raise ValueError(
            f"the tokenizer's {PAD} is id {special_id(tokenizer, PAD)}, not {net_cfg.pad_id} as the "
            "encoder-decoder expects (a tokenizer not trained by llmpipe's tokenize stage?)"
        )


def span_framing_ids(tokenizer) -> tuple[int, ...]:
    """The sentinels, then the end of text: the targets that frame the cut spans."""
    return (*(special_id(tokenizer, token) for token in SENTINELS), special_id(tokenizer, EOT))


def pretraining_examples(
    net_cfg, cfg: Pretrain, tokenizer, train_tokens: np.ndarray, val_tokens: np.ndarray, num_samples: int, seed: int
) -> tuple[Dataset, Dataset]:
    """(train, val) datasets of (inputs, targets) for the network's objective, as `cfg` (the
    pretrain section) sets it."""
    check_pad(net_cfg, tokenizer)
    T = net_cfg.block_size
    train = RandomWindows(train_tokens, T, num_samples, seed)
    if objective(net_cfg) == CAUSAL:
        return train, SequentialWindows(val_tokens, T)
    val = whole_windows(val_tokens, T)
    if not len(val):
        raise ValueError(f"the val split's {len(val_tokens)} tokens are fewer than one window of block_size {T}")
    return examples_of(train, net_cfg, cfg, tokenizer, seed), examples_of(val, net_cfg, cfg, tokenizer, seed, VAL)


def examples_of(
    windows: Dataset, net_cfg, cfg: Pretrain | Objective, tokenizer, seed: int, stream: int = TRAIN
) -> Dataset:
    """Whole windows as the examples of an encoder's or encoder-decoder's objective."""
    if objective(net_cfg) == MASKED:
        return masked(windows, net_cfg, cfg.masking, tokenizer, seed, stream)
    return corrupted(windows, cfg.span_corruption, tokenizer, seed, stream)


def pretrained_objective(model_dir: Path) -> Objective:
    """The objective settings an exported model was pretrained with (its params.json): what its
    adaptation and evaluation use (an export made before span corruption existed has none)."""
    section = json.loads((Path(model_dir) / "params.json").read_text())["pretrain"]
    masking, spans = section.get("masking"), section.get("span_corruption")
    return Objective(Masking(**masking) if masking else None, SpanCorruption(**spans) if spans else None)
