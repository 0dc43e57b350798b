"""Running a trained model: sampling text from a language model (temperature, top-k and nucleus
(top-p), a repetition penalty, a ban on repeated n-grams and stop strings, streamed token by token)
and labelling texts with a classifier. The stages, the CLI and the registered pyfuncs all call these.
A `Stop` (registry/limits.py) given to them is checked between tokens (and between texts), so the
work of a request ends when its client goes or its time runs out."""

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from llmpipe.registry.limits import Stop

GENERATING_KINDS = ("causal_lm", "seq2seq_lm")  # export kinds that write text (registry/export.py)


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


def discourage_repeats(logits: torch.Tensor, written: list[int], penalty: float, ngram: int) -> torch.Tensor:
    """The logits of the next token with what the answer has already said made less likely.
    `penalty` (CTRL's repetition penalty, as Hugging Face's generate applies it): the logit of every
    token written so far is divided by it when positive, multiplied when negative, so 1 is off and
    1.2 a common choice. `ngram` (n > 0): a token that would write an n-gram the answer already holds
    is ruled out. Both look at the answer only, not the prompt: an answer may repeat the question's
    words; what reads badly is an answer that repeats itself."""
    if penalty != 1.0 and written:
        seen = torch.tensor(sorted(set(written)))
        scores = logits[seen]
        logits = logits.index_put((seen,), torch.where(scores > 0, scores / penalty, scores * penalty))
    if ngram > 0 and len(written) >= ngram:
        head = tuple(written[len(written) - ngram + 1 :])  # the n-1 tokens an n-gram would start with
        starts = range(len(written) - ngram + 1)
        banned = [written[i + ngram - 1] for i in starts if tuple(written[i : i + ngram - 1]) == head]
        if banned:
            logits = logits.index_fill(0, torch.tensor(banned), float("-inf"))
    return logits


@torch.no_grad()
def stream_tokens(
    net,
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    eos_id: int | None = None,
    seed: int = 0,
    stop: Stop | None = None,
) -> Iterator[int]:
    """Yield sampled token ids one at a time; temperature 0 is greedy decoding. Repeats are
    discouraged first (discourage_repeats), then temperature, top-k and top-p apply."""
    assert prompt_ids, "a prompt of no tokens has no next token (the callers refuse an empty prompt)"
    generator = torch.Generator().manual_seed(seed)
    next_logits, written = next_token_logits(net, prompt_ids), []
    for _ in range(max_new_tokens):
        if stop is not None:
            stop.check()
        logits = discourage_repeats(next_logits(written).float(), written, repetition_penalty, no_repeat_ngram_size)
        if torch.isinf(logits).all():
            return  # every token would repeat an n-gram (a tiny vocabulary): the answer ends here
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
    """A function from the tokens written so far to the logits (V,) of the next one, as the model's
    family reads a prompt (a decoder continues it; an encoder-decoder encodes it once)."""
    from llmpipe.families import family_of

    return family_of(net.config).next_token_logits(net, prompt_ids)


def stream_text(net, tokenizer, prompt: str, stop_strings: list[str] = (), **sampling) -> Iterator[str]:
    """Yield the generated text in pieces as it grows. A piece is emitted once its bytes decode whole,
    so a Chinese character split across byte-level tokens never shows up half-written. The text ends
    before the first of `stop_strings` it writes (which is not shown); text that may be the start of
    one is held back until it is clear that it is not."""
    from llmpipe.data.tokenizer import EOT, special_id
    from llmpipe.registry.limits import BadRequest

    prompt_ids = tokenizer.encode(prompt).ids
    if not prompt_ids:  # the network cannot start from nothing
        raise BadRequest([("prompt", f"{prompt!r:.40} holds no tokens")])
    stop_strings = [s for s in stop_strings if s]
    ids, text, shown = [], "", 0
    for token in stream_tokens(net, prompt_ids, eos_id=special_id(tokenizer, EOT), **sampling):
        ids.append(token)
        if (decoded := tokenizer.decode(ids)).endswith("\ufffd"):
            continue  # an incomplete UTF-8 sequence: wait for its remaining bytes
        text = decoded
        ends = [i for s in stop_strings if (i := text.find(s, max(0, shown - len(s) + 1))) >= 0]
        if ends:
            if min(ends) > shown:
                yield text[shown : min(ends)]
            return
        safe = len(text) - held_back(text, stop_strings)
        if safe > shown:
            yield text[shown:safe]
            shown = safe
    if len(text) > shown:
        yield text[shown:]  # what was held back for a stop string that never came


def held_back(text: str, stop_strings: list[str]) -> int:
    """How many characters at the end of text could be the start of a stop string."""
    lengths = (k for s in stop_strings for k in range(min(len(s) - 1, len(text)), 0, -1) if s.startswith(text[-k:]))
    return max(lengths, default=0)


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
