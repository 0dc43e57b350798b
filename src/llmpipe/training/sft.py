"""Instruction-style supervised fine-tuning data: prompt -> response pairs, the prompt template, and
token sequences whose loss covers the response only.

Default pairs come from the corpus itself, with real references:
  - Tang poems and Song ci: title, author and first line -> the rest of the poem;
  - English fortunes: the first sentence -> the rest.
A user's own pairs come from a `.jsonl` file of {"prompt": ..., "response": ...} lines (optionally
"lang"), split 90/5/5 into train / val / test by a hash of the prompt.

The template (`finetune.sft.template`) wraps them, e.g. "<|user|>{prompt}<|assistant|>" + response +
"<|endoftext|>". Its markers are special tokens of the tokenizer (tokenizer.SPECIAL_TOKENS, reserved
when the tokenizer is trained), so each is one token, the same at training and at generation.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from llmpipe.data.chat_template import Template
from llmpipe.data.splits import split_of
from llmpipe.data.task_support import POEM_LABELS
from llmpipe.data.token_files import load_split_docs

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")  # a user's pair with Chinese characters is `zh` unless it says
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
IGNORE = -100  # the loss skips these targets (prompt and padding)


@dataclass
class Pair:
    prompt: str
    response: str
    source: str  # the document id, or file:line of a user's pair
    lang: str = "en"  # scores of generations are also given per language


def poem_pair(doc: dict) -> Pair | None:
    """《title》 / 作者：author / first line  ->  the remaining lines."""
    lines = [line.strip() for line in doc["text"].split("\n") if line.strip()]
    if len(lines) < 4 or not lines[0].startswith("《") or not lines[1].startswith("作者"):
        return None
    return Pair("\n".join(lines[:3]), "\n".join(lines[3:]), doc["id"], doc["lang"])


def fortune_pair(doc: dict, min_response_chars: int = 20, max_response_chars: int = 2000) -> Pair | None:
    """The first sentence  ->  the rest of the fortune, cut at the last sentence end within
    max_response_chars (a document of a user's book is a 100 kB piece: a reply of the whole would be
    longer than any model here reads, and scoring it against another would cost minutes)."""
    parts = SENTENCE_END.split(doc["text"].strip(), maxsplit=1)
    if len(parts) < 2 or len(parts[1]) < min_response_chars:
        return None
    response = parts[1]
    if len(response) > max_response_chars:
        ends = [m.start() for m in SENTENCE_END.finditer(response, 0, max_response_chars)]
        cut = ends[-1] if ends and ends[-1] >= min_response_chars else max_response_chars
        response = response[:cut]
    return Pair(parts[0], response, doc["id"], doc["lang"])


def corpus_pairs(docs: list[dict], sources: list[str]) -> list[Pair]:
    """Pairs from the corpus documents of one split: `poems` (Tang poems, Song ci) and `fortunes`
    (English documents)."""
    pairs = []
    for doc in docs:
        pair = None
        if doc.get("label") in POEM_LABELS:
            pair = poem_pair(doc) if "poems" in sources else None
        elif doc["lang"] == "en" and "fortunes" in sources:
            pair = fortune_pair(doc)
        if pair is not None:
            pairs.append(pair)
    return pairs


def read_pairs(path: str | Path) -> list[Pair]:
    """A user's pairs: one JSON object per line with string fields `prompt` and `response`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"finetune.sft.data_file={str(path)!r} is not a file")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({err})") from err
            if not (
                isinstance(record, dict)
                and isinstance(record.get("prompt"), str)
                and isinstance(record.get("response"), str)
            ):
                raise ValueError(f"{path}:{lineno}: needs string fields `prompt` and `response`")
            lang = record.get("lang") or ("zh" if CJK.search(record["response"]) else "en")
            pairs.append(Pair(record["prompt"], record["response"], f"{path}:{lineno}", lang))
    return pairs


def task_pairs(cfg, split: str, tokens_dir: str | Path) -> list[Pair]:
    """The pairs of one split (train / val / test) of an SFT task: from the corpus documents of that
    split, or from the user's data_file, split 90/5/5 by a hash of the prompt (stable across runs)."""
    if cfg.data_file:
        return [p for p in read_pairs(cfg.data_file) if split_of(p.prompt, 0.05, 0.05) == split]
    return corpus_pairs(load_split_docs(tokens_dir, split), cfg.sources)


def budgeted(pairs: list[Pair], template: Template, tokenizer, max_tokens: int) -> tuple[list, int]:
    """Each pair as (prompt ids, response ids) within one budget of max_tokens + 1 tokens (what a
    decoder reads as max_tokens inputs and targets), the response cut from its end; a pair whose
    prompt leaves no room for a response token is dropped, and counted."""
    template.check(tokenizer)
    prompts = tokenizer.encode_batch([template.render_prompt(p.prompt) for p in pairs], add_special_tokens=False)
    responses = tokenizer.encode_batch([p.response + template.end for p in pairs], add_special_tokens=False)
    kept, dropped = [], 0
    for prompt, response in zip(prompts, responses, strict=True):
        room = max_tokens + 1 - len(prompt.ids)
        if room <= 0:
            dropped += 1
            continue
        kept.append((prompt.ids, response.ids[:room]))
    return kept, dropped


class SupervisedSequences(Dataset):
    """(x, y) pairs like a language-model window, where y is IGNORE over the prompt: the loss is
    the response's (and its end marker's) only, within the budget of `budgeted`."""

    def __init__(self, pairs: list[Pair], template: Template, tokenizer, max_tokens: int):
        kept, self.dropped = budgeted(pairs, template, tokenizer, max_tokens)
        self.examples = []
        for prompt, response in kept:
            ids = prompt + response
            x = torch.tensor(ids[:-1])
            y = torch.tensor(ids[1:])
            y[: len(prompt) - 1] = IGNORE  # position t predicts token t+1: the first response token is kept
            self.examples.append((x, y))

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


class SupervisedPairs(Dataset):
    """(input, target) pairs for an encoder-decoder (networks/seq2seq.py), text to text: the
    rendered prompt is the encoder's input and the response with its end marker the decoder's
    target, every token of it scored. Within the decoder's budget (`budgeted`), so the two families
    are trained and scored on the same pairs and the same response tokens, and their response
    losses compare."""

    def __init__(self, pairs: list[Pair], template: Template, tokenizer, max_tokens: int):
        kept, self.dropped = budgeted(pairs, template, tokenizer, max_tokens)
        self.examples = [(torch.tensor(prompt), torch.tensor(response)) for prompt, response in kept]

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def supervised_examples(pairs: list[Pair], template: Template, tokenizer, max_tokens: int, seq2seq: bool) -> Dataset:
    """The examples of an SFT task for the network's family: one sequence for a decoder, an
    (input, target) pair for an encoder-decoder."""
    kind = SupervisedPairs if seq2seq else SupervisedSequences
    return kind(pairs, template, tokenizer, max_tokens)
