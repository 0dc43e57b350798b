"""What pretraining teaches each family of network, and the examples that teach it.

  causal  the decoders (transformer.py, recurrent.py): predict every next token from the ones
          before it. Validated in bits per byte, comparable across tokenizers and architectures.
  masked  the encoder (encoder.py): restore the tokens hidden in a window seen from both sides
          (training/masking.py). Validated by the masked-token loss, which is NOT comparable with
          a causal model's loss or bits per byte: it scores 15 % of the tokens, each with context
          on both sides, so it is much lower for the same understanding of the text.

Both read the same token windows (training/loaders.py), seeded by position, so exact resume and
data parallelism hold for both alike.
"""

import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from llmpipe.data.tokenizer import MASK, SPECIAL_TOKENS, special_id
from llmpipe.networks.encoder import EncoderConfig
from llmpipe.schema import Masking
from llmpipe.training.loaders import RandomWindows, SequentialWindows, whole_windows
from llmpipe.training.masking import MaskedWindows

CAUSAL, MASKED = "causal", "masked"


def objective(net_cfg) -> str:
    return MASKED if isinstance(net_cfg, EncoderConfig) else CAUSAL


TRAIN, VAL = 0, 1  # the masks' streams: a training example and a validation window never share masks


def masked(windows: Dataset, net_cfg, masking: Masking, tokenizer, seed: int, stream: int = TRAIN) -> MaskedWindows:
    """Windows turned into masked-language-modelling examples (random replacements are ordinary tokens)."""
    mask_id, first_ordinary = special_id(tokenizer, MASK), len(SPECIAL_TOKENS)
    return MaskedWindows(windows, masking, mask_id, first_ordinary, net_cfg.vocab_size, seed, stream)


def pretraining_examples(
    net_cfg, masking: Masking, tokenizer, train_tokens: np.ndarray, val_tokens: np.ndarray, num_samples: int, seed: int
) -> tuple[Dataset, Dataset]:
    """(train, val) datasets of (inputs, targets) for the network's objective."""
    T = net_cfg.block_size
    train = RandomWindows(train_tokens, T, num_samples, seed)
    if objective(net_cfg) == CAUSAL:
        return train, SequentialWindows(val_tokens, T)
    val = whole_windows(val_tokens, T)
    if not len(val):
        raise ValueError(f"the val split's {len(val_tokens)} tokens are fewer than one window of block_size {T}")
    return masked(train, net_cfg, masking, tokenizer, seed), masked(val, net_cfg, masking, tokenizer, seed, VAL)


def pretrained_masking(model_dir: Path) -> Masking:
    """The masking an exported encoder was pretrained with (its params.json): what its adaptation
    and evaluation use."""
    return Masking(**json.loads((Path(model_dir) / "params.json").read_text())["pretrain"]["masking"])
