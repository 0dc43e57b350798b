"""What pretraining teaches each family of network, and the examples that teach it. Each family
(llmpipe.families) names its objective; the pieces they share are here.

  causal  the decoders (transformer.py, recurrent.py): predict every next token from the ones
          before it. Validated in bits per byte, comparable across tokenizers and architectures.
  masked  the encoder (encoder.py): restore the tokens hidden in a window seen from both sides
          (families/masking.py). Validated by the masked-token loss, which is NOT comparable with
          a causal model's loss or bits per byte: it scores 15 % of the tokens, each with context
          on both sides, so it is much lower for the same understanding of the text.
  span    the encoder-decoder (seq2seq.py): write the spans cut out of a window, each after the
          sentinel that stands for it in the input (families/span_corruption.py). Validated by the
          loss of the target tokens (sentinels, spans, end of text): comparable with neither.

All read the same token windows (data/windows.py), seeded by position, so exact resume and
data parallelism hold for all alike.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from llmpipe.data.task_support import Unsupported
from llmpipe.data.tokenizer import EOT, MASK, SENTINELS, SPECIAL_TOKENS, special_id
from llmpipe.data.windows import RandomWindows, whole_windows
from llmpipe.families.masking import MaskedWindows
from llmpipe.families.span_corruption import SpanCorruptedWindows
from llmpipe.schema import Masking, Pretrain, SpanCorruption


@dataclass(frozen=True)
class Objective:
    """The settings of the objectives that pretrain sets (the pretrain section has both fields)."""

    masking: Masking | None
    span_corruption: SpanCorruption | None


TRAIN, VAL = 0, 1  # the masks' streams: a training example and a validation window never share masks


def masked(windows: Dataset, net_cfg, masking: Masking, tokenizer, seed: int, stream: int = TRAIN) -> MaskedWindows:
    """Windows turned into masked-language-modelling examples (random replacements are ordinary tokens)."""
    mask_id, first_ordinary = special_id(tokenizer, MASK), len(SPECIAL_TOKENS)
    return MaskedWindows(windows, masking, mask_id, first_ordinary, net_cfg.vocab_size, seed, stream)


def corrupted(windows: Dataset, cfg: SpanCorruption, tokenizer, seed: int, stream: int = TRAIN) -> SpanCorruptedWindows:
    """Windows turned into span-corruption examples, with the tokenizer's sentinels and end of text."""
    *sentinel_ids, eot_id = span_framing_ids(tokenizer)
    return SpanCorruptedWindows(windows, cfg, sentinel_ids, eot_id, seed, stream)


def span_framing_ids(tokenizer) -> tuple[int, ...]:
    """The sentinels, then the end of text: the targets that frame the cut spans."""
    return (*(special_id(tokenizer, token) for token in SENTINELS), special_id(tokenizer, EOT))


def whole_window_examples(
    family,
    net_cfg,
    cfg: Pretrain,
    tokenizer,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    num_samples: int,
    seed: int,
) -> tuple[Dataset, Dataset]:
    """(train, val) examples of an objective that reads whole windows (masked tokens, corrupted
    spans: padding would be attended to), as `family.examples` makes them from the windows."""
    T = net_cfg.block_size
    train = RandomWindows(train_tokens, T, num_samples, seed)
    val = whole_windows(val_tokens, T)
    if not len(val):
        raise ValueError(f"the val split's {len(val_tokens)} tokens are fewer than one window of block_size {T}")
    examples = family.examples
    return examples(train, net_cfg, cfg, tokenizer, seed), examples(val, net_cfg, cfg, tokenizer, seed, VAL)


def text_windows(texts: list[list[int]], eot_id: int, block_size: int, task: str) -> Dataset:
    """A task's texts one after another, each after an end of text, cut into whole windows: how an
    objective that reads whole windows sees them in task-adaptive pretraining."""
    stream = np.array([t for ids in texts for t in (eot_id, *ids)], dtype=np.int64)
    if len(stream) <= block_size:
        raise Unsupported(
            f"finetune.{task}: its training texts hold {len(stream)} tokens, under one window of {block_size}"
        )
    return whole_windows(stream, block_size)


def pretrained_objective(model_dir: Path) -> Objective:
    """The objective settings an exported model was pretrained with (its params.json): what its
    adaptation and evaluation use (an export made before span corruption existed has none)."""
    section = json.loads((Path(model_dir) / "params.json").read_text())["pretrain"]
    masking, spans = section.get("masking"), section.get("span_corruption")
    return Objective(Masking(**masking) if masking else None, SpanCorruption(**spans) if spans else None)
