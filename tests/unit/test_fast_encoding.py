"""tiktoken runs the merges that tokenizers trained and gives the very same ids (llmpipe.tokenize.fast_encoding),
on every kind of text a corpus holds; where it could not, tokenize keeps tokenizers."""

import re

import numpy as np
import pytest
from tokenizers import normalizers

from llmpipe.data.splits import Placement
from llmpipe.data.tokenizer import EOT, special_id, train_bpe
from llmpipe.jsonl import read_jsonl, write_jsonl
from llmpipe.tokenize.encode import EncodeShard
from llmpipe.tokenize.fast_encoding import fast_encoder, flat_ids

from ..conftest import FORTUNE_DIR

HARD = [
    "Plain English, with numbers 3.14159 and 1,000,000; it's we'll they've I'd.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",  # Chinese with full-width punctuation
    "表情 😀👍🏽 and a family 👨‍👩‍👧 joined by zero-width joiners",
    "control\x00chars\x01\x07\x1b[31m red\x7f and tabs\tand\r\nCRLF\u2028line separator",
    "   leading spaces, trailing spaces   \n\n\n  several blank lines\n",
    "a literal <|endoftext|> inside a text, and <|pad|> too",  # special tokens become their ids, in both
    "é (precomposed) e\u0301 (combining), ﬁ ligature, Å, ß, İ, ǅ",
    "\ufeffbyte-order mark, noncharacter \uffff, private use \ue000, and a lone high plane 𝔘𝔫𝔦",
    "",
]


@pytest.fixture(scope="module")
def texts(fortunes_installed):
    out = []
    for name in ("computers", "love", "tang300", "chinese"):
        text = (FORTUNE_DIR / name).read_text(encoding="utf-8", errors="replace")
        out += [e.strip() for e in re.split(r"^%$", text, flags=re.M) if e.strip()]
    return out


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_bpe(texts, 2048)


def test_tiktoken_gives_the_same_ids_on_every_kind_of_text(tokenizer, texts):
    encoding = fast_encoder(tokenizer, samples=texts[:20])
    assert encoding is not None
    for text in HARD + texts:
        assert encoding.encode(text, allowed_special="all") == tokenizer.encode(text).ids, repr(text[:80])


def test_the_token_shards_are_the_same_whichever_encodes_them(tokenizer, texts, tmp_path):
    """tokenize's encoding task (EncodeShard), with tiktoken and with tokenizers, on two clean shards:
    byte-identical token shards, each document's ids followed by the end-of-text id, in shard order."""
    docs = [
        {"id": f"d{i:05d}", "text": t, "source": "s", "lang": "en", "label": None} for i, t in enumerate(HARD + texts)
    ]
    clean = tmp_path / "clean"
    clean.mkdir()
    half = len(docs) // 2
    write_jsonl(clean / "00000.jsonl", docs[:half])
    write_jsonl(clean / "00001.jsonl", docs[half:])
    eot = special_id(tokenizer, EOT)
    written = {}
    for tiktoken in (True, False):
        out = tmp_path / f"tiktoken={tiktoken}"
        out.mkdir()
        tokenizer.save(str(out / "tokenizer.json"))
        step = EncodeShard(sorted(clean.glob("*.jsonl")), out, Placement("hash", 0.0, 0.0), tiktoken, eot, "uint16")
        step.batch_chars = 5000  # many batches
        for rank in range(2):
            step.run(None, rank, 2)
        written[tiktoken] = [(out / "train" / f"{r:05d}.bin").read_bytes() for r in range(2)]
        assert [d["id"] for d in read_jsonl(out / "train" / "00001.jsonl")] == [d["id"] for d in docs[half:]]
    assert written[True] == written[False]
    expected = [i for t in HARD + texts for i in [*tokenizer.encode(t).ids, eot]]
    assert np.frombuffer(b"".join(written[True]), dtype=np.uint16).tolist() == expected
    assert flat_ids([[5, 6], [], [7]], 0, np.uint32).tolist() == [5, 6, 0, 0, 7, 0]


def test_a_tokenizer_that_tiktoken_cannot_run_is_left_to_tokenizers(texts):
    normalized = train_bpe(texts[:200], 512)
    normalized.normalizer = normalizers.NFKC()  # tiktoken has no normalizer: it would give other ids
    assert fast_encoder(normalized) is None
