"""Byte-level BPE tokenizer, trained with Hugging Face `tokenizers`.

Byte-level means every string encodes, whatever its script: Chinese characters that the merges did
not cover fall back to their UTF-8 bytes, so nothing is ever mapped to an unknown token.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"  # ends every document in the token stream
PAD = "<|pad|>"  # right-padding for classification batches; never predicted
USER = "<|user|>"  # opens a prompt in the fine-tuning template (llmpipe.training.sft)
ASSISTANT = "<|assistant|>"  # opens the response
MASK = "<|mask|>"  # hides a token from the encoder in masked-language modelling (networks/encoder.py)
# Stand for the spans that an encoder-decoder's span corruption removes (T5's sentinels). Reserved
# with the others so that adding that family does not move every token id.
SENTINELS = [f"<|sentinel_{i}|>" for i in range(16)]
SPECIAL_TOKENS = [EOT, PAD, USER, ASSISTANT, MASK, *SENTINELS]


def first_bytes(texts: Iterable[str], max_bytes: int | None) -> Iterator[str]:
    """The texts in order until they hold max_bytes of UTF-8 (None: all): the tokenizer's training
    sample, the same on every run and bounded in memory whatever the corpus size."""
    seen = 0
    for text in texts:
        if max_bytes is not None and seen >= max_bytes:
            return
        seen += len(text.encode("utf-8"))
        yield text


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"tokenize.vocab_size={vocab_size} is below the 256 byte tokens plus {len(SPECIAL_TOKENS)} special tokens"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"no tokenizer at {path}")
    return Tokenizer.from_file(str(path))


def special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:  # a tokenizer trained before llmpipe reserved it
        raise ValueError(
            f"the tokenizer has no special token {token}: it was trained before llmpipe reserved it "
            "(re-run the tokenize stage: `dvc repro -f -s tokenize`, then what follows it)"
        )
    return token_id
