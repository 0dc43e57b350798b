"""Encoding at speed: the byte-level BPE that `tokenizers` trained, run by tiktoken.

Training stays with Hugging Face `tokenizers` (tokenizer.train_bpe); encoding a corpus is where the
time goes, and tiktoken encodes the same merges faster (1.2x tokenizers' encode_batch in one process
on this project's 2 cores: benchmarks/RESULTS.md; its threads add little, since building the Python
lists of ids holds the interpreter, so tokenize runs one process per worker: tokenize/encode.py).
Both are byte-level BPE over GPT-2's pre-tokenization, so one can stand in for the other when:

  - the pre-tokenizer is GPT-2's regular expression (ByteLevel with use_regex, no prefix space), and
    there is no normalizer: tiktoken's `pattern` below is the same expression;
  - every vocabulary entry, read back from GPT-2's printable byte alphabet, is a distinct byte string,
    whose rank in tiktoken is its id;
  - each merge's result has a higher id than the merges before it (the trainer adds tokens in merge
    order), so "merge the adjacent pair whose result ranks lowest" (tiktoken) picks the merge that
    "apply the earliest merge" (tokenizers) picks;
  - special tokens found in the text become their ids, as tokenizers' added tokens do.

`fast_encoder` checks the first three on the tokenizer itself and, as a last guard, that both give the
same ids on sample texts; if anything differs it returns None and the caller keeps `tokenizers`.
tests/unit/test_fast_encoding.py compares ids on English, Chinese, emoji and control characters;
benchmarks/tokenize_speed.py measures the speed.
"""

import json
import logging
import os

import numpy as np

log = logging.getLogger("llmpipe")

# GPT-2's pre-tokenization (what tokenizers' ByteLevel pre-tokenizer applies): contractions, letters
# with an optional leading space, numbers, other symbols, then runs of whitespace.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def printable_bytes() -> dict[str, int]:
    """GPT-2's byte alphabet, read backwards: the printable character that stands for each byte.
    Bytes that print as themselves (most of Latin-1) keep their code point; the others (control
    characters, space, a few more) are given 256, 257, ... in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in keep:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def ranks_and_specials(tokenizer) -> tuple[dict[bytes, int], dict[str, int]] | None:
    """tiktoken's ranks (token bytes -> id) and special tokens (text -> id) for this tokenizer, or None
    where its merges cannot be run by tiktoken (see the module docstring)."""
    spec = json.loads(tokenizer.to_str())
    model, pre = spec["model"], spec.get("pre_tokenizer") or {}
    if spec.get("normalizer") or model.get("type") != "BPE" or model.get("ignore_merges"):
        return None
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        return None
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    alphabet = printable_bytes()
    ranks: dict[bytes, int] = {}
    for token, token_id in model["vocab"].items():
        if token in specials:
            continue
        if any(char not in alphabet for char in token):
            return None
        ranks[bytes(alphabet[char] for char in token)] = token_id
    if len(ranks) != len(model["vocab"]) - len(specials.keys() & model["vocab"].keys()):
        return None  # two entries with the same bytes
    last = -1
    for merge in model["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merged_id = model["vocab"].get(left + right)
        if merged_id is None or merged_id <= last:
            return None
        last = merged_id
    return ranks, specials


def tiktoken_encoding(tokenizer):
    """A tiktoken Encoding with `tokenizer`'s merges, or None where they cannot run in tiktoken."""
    import tiktoken

    found = ranks_and_specials(tokenizer)
    if found is None:
        return None
    ranks, specials = found
    return tiktoken.Encoding(name="llmpipe-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def fast_encoder(tokenizer, samples: list[str] = ()):
    """A tiktoken Encoding that gives exactly `tokenizer`'s ids, or None where it cannot (the caller
    keeps tokenizers). `samples`: texts of which 256, evenly spaced, are encoded both ways as a final check."""
    encoding = tiktoken_encoding(tokenizer)
    if encoding is None:
        log.info("tokenizer is not plain byte-level BPE: encoding with tokenizers")
        return None
    for text in samples[:: max(1, len(samples) // 256)]:  # 256 spread over them: every source and language
        if encoding.encode(text, allowed_special="all") != tokenizer.encode(text).ids:
            log.warning("tiktoken and tokenizers disagree on a sample: encoding with tokenizers")
            return None
    return encoding


def encode_texts(tokenizer, encoding, texts: list[str], threads: int | None = None) -> list[list[int]]:
    """The ids of each text: by tiktoken where `encoding` is given (on `threads` threads, default
    every core), else by tokenizers."""
    if encoding is None:
        return [e.ids for e in tokenizer.encode_batch(texts)]
    threads = threads or max(os.cpu_count() or 1, 1)
    if threads == 1:
        return [encoding.encode(text, allowed_special="all") for text in texts]
    return encoding.encode_batch(texts, num_threads=threads, allowed_special="all")


def flat_ids(docs_ids: list[list[int]], eot_id: int, dtype) -> np.ndarray:
    """Documents' ids one after another, each followed by eot_id, as one array of `dtype`."""
    lengths = [len(ids) + 1 for ids in docs_ids]
    flat = np.empty(sum(lengths), dtype=dtype)
    at = 0
    for ids, length in zip(docs_ids, lengths, strict=True):
        flat[at : at + length - 1] = ids
        flat[at + length - 1] = eot_id
        at += length
    return flat
