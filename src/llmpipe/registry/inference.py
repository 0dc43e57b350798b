"""Running a trained model: sampling text from a language model (temperature, top-k and nucleus
(top-p), streamed token by token) and labelling texts with a classifier. The stages, the CLI and
the registered pyfuncs all call these. A `Stop` given to them is checked between tokens (and
between texts), so the work of a request ends when its client goes or its time runs out."""

import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

GENERATING_KINDS = ("causal_lm", "seq2seq_lm")  # export kinds that write text (registry/export.py)


class Cancelled(Exception):
    """The work of a request was stopped from outside: its client went away, or the server is stopping."""


class TimeLimit(ValueError):
    """The work of a request took longer than serve.request_seconds."""

    def __init__(self, seconds: float):
        super().__init__(f"request_seconds: the request took longer than serve.request_seconds ({seconds:g} s)")


class Stop:
    """When the work of one request must end: someone cancelled it (from another thread) or its
    time ran out. Plain attributes, no lock: cancel() may be called from a signal handler or the
    event loop while a worker thread runs check()."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def check(self):
        """Raise if the work must end: called between steps, so no request outlives its client or its
        time by more than one step (a token, a batch of texts)."""
        if self.cancelled:
            raise Cancelled("the request was cancelled")
        if self.out_of_time():
            raise TimeLimit(self.seconds)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Keep the top_k most likely tokens, then the smallest set whose probability reaches top_p."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # the mass before this token is already enough
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def stream_tokens(
    net,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int = 0,
    stop: Stop | None = None,
) -> Iterator[int]:
    """Yield sampled token ids one at a time; temperature 0 is greedy decoding."""
    assert prompt_ids, "a prompt of no tokens has no next token (the callers refuse an empty prompt)"
    generator = torch.Generator().manual_seed(seed)
    next_logits, written = next_token_logits(net, prompt_ids), []
    for _ in range(max_new_tokens):
        if stop is not None:
            stop.check()
        logits = next_logits(written).float()
        if temperature == 0:
            next_id = int(logits.argmax())
        else:
            probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            next_id = int(torch.multinomial(probs, 1, generator=generator))
        if next_id == eos_id:
            return
        yield next_id
        written.append(next_id)


def next_token_logits(net, prompt_ids: list[int]) -> Callable[[list[int]], torch.Tensor]:
    """A function from the tokens written so far to the logits (V,) of the next one. A decoder
    continues the prompt (its last block_size tokens); an encoder-decoder (seq2seq.py) encodes the
    prompt once and its decoder writes from the start token."""
    from llmpipe.networks.seq2seq import Seq2Seq

    prompt = torch.tensor([prompt_ids], dtype=torch.long)
    if isinstance(net, Seq2Seq):
        memory, memory_bias = net.encode(prompt[:, -net.config.block_size :])
        start = [net.config.pad_id]
        return lambda written: net.decode(torch.tensor([start + written]), memory, memory_bias)[0, -1]
    block = net.config.block_size
    return lambda written: net(torch.cat([prompt, torch.tensor([written], dtype=torch.long)], dim=1)[:, -block:])[0, -1]


def stream_text(net, tokenizer, prompt: str, **sampling) -> Iterator[str]:
    """Yield the generated text in pieces as it grows. A piece is emitted once its bytes decode whole,
    so a Chinese character split across byte-level tokens never shows up half-written."""
    from llmpipe.data.tokenizer import EOT, special_id
    from llmpipe.registry.limits import BadRequest

    prompt_ids = tokenizer.encode(prompt).ids
    if not prompt_ids:  # the network cannot start from nothing
        raise BadRequest([("prompt", f"{prompt!r:.40} holds no tokens")])
    ids, shown = [], ""
    for token in stream_tokens(net, prompt_ids, eos_id=special_id(tokenizer, EOT), **sampling):
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # an incomplete UTF-8 sequence: wait for its remaining bytes
        yield text[len(shown) :]
        shown = text


def generate_text(net, tokenizer, prompt: str, **sampling) -> str:
    return "".join(stream_text(net, tokenizer, prompt, **sampling))


def classify_texts(
    net, tokenizer, texts: list[str], max_tokens: int, batch_size: int = 32, stop: Stop | None = None
) -> list[int]:
    """Predicted label index of each text, truncated to max_tokens tokens."""
    from llmpipe.data.tokenizer import PAD, special_id
    from llmpipe.networks.batches import collate_labeled

    collate = collate_labeled(special_id(tokenizer, PAD))
    encoded = [enc.ids[:max_tokens] or [special_id(tokenizer, PAD)] for enc in tokenizer.encode_batch(texts)]
    predictions = []
    for start in range(0, len(encoded), batch_size):
        if stop is not None:
            stop.check()
        idx, lengths, _ = collate([(ids, 0) for ids in encoded[start : start + batch_size]])
        predictions += net(idx, lengths).argmax(dim=-1).tolist()
    return predictions


@torch.no_grad()
def fill_masks(net, tokenizer, texts: list[str], max_tokens: int, stop: Stop | None = None) -> list[str]:
    """Each text with every <|mask|> replaced by the encoder's most likely token at that place (the
    text truncated to max_tokens tokens): what a masked language model answers."""
    from llmpipe.data.tokenizer import MASK, special_id

    mask_id = special_id(tokenizer, MASK)
    filled = []
    for enc in tokenizer.encode_batch(texts):
        if stop is not None:
            stop.check()
        ids = enc.ids[:max_tokens]
        if not ids:
            filled.append("")
            continue
        best = net(torch.tensor([ids]))[0].argmax(dim=-1).tolist()
        filled.append(tokenizer.decode([b if t == mask_id else t for t, b in zip(ids, best, strict=True)]))
    return filled
