"""Language-model metrics: perplexity and bits per byte, next to unigram and bigram models fitted on
train, which give them meaning.

Losses are kept per predicted token, so they can be summed over any grouping of the documents (a
language, a source) without running the model again. The token files hold documents one after
another, each closed by <|endoftext|>; `document_of_targets` says which document each predicted
token belongs to."""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from llmpipe.data.token_files import load_split_docs, load_tokens, read_meta
from llmpipe.data.windows import SequentialWindows, whole_windows
from llmpipe.networks.batches import pad_pairs, pad_windows

LM_SPLITS = ("val", "test")  # val: what pretraining watched; test: no choice ever looked at it


@torch.no_grad()
def token_nats(net, tokens: np.ndarray, block_size: int, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Negative log-likelihood (nats) of every token of `tokens` but the first, in order: entry i is
    token i + 1 given the tokens before it in its window of block_size."""
    loader = DataLoader(SequentialWindows(tokens, block_size), batch_size=batch_size, collate_fn=pad_windows)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))  # where the model lives
    pieces = []
    for x, y in tqdm(loader, desc="perplexity", disable=not progress, leave=False):
        x, y = x.to(device), y.to(device)
        nats = F.cross_entropy(net(x).flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="none")
        pieces.append(nats[y.flatten() != -100].double().cpu().numpy())  # windows are consecutive, rows in order
    out = np.concatenate(pieces) if pieces else np.zeros(0)
    assert len(out) == max(0, len(tokens) - 1)
    return out


def lm_nats(net, tokens: np.ndarray, block_size: int, batch_size: int = 16, progress: bool = False):
    """Summed negative log-likelihood (nats) of every token of `tokens` but the first, and their count."""
    nats = token_nats(net, tokens, block_size, batch_size, progress)
    return float(nats.sum()), len(nats)


@torch.no_grad()
def sequence_nats(net, dataset, target_logits, batch_size: int = 16, pad_id: int = 0) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of the targets of (x, y) sequences, skipping targets
    of -100 (a prompt's tokens, padding), and their count: the response loss of fine-tuning data.
    target_logits(net, x, y) are the logits of y (the family's: an encoder-decoder's inputs are
    padded with pad_id and its targets teacher-forced)."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=pad_pairs(pad_id))
    total, count = 0.0, 0
    for x, y in loader:
        logits = target_logits(net, x, y)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((y != -100).sum())
    return total, count


def unigram_log_probs(train_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """log p(token) of a unigram model fitted on train, with add-one smoothing."""
    counts = np.bincount(train_tokens, minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


def unigram_token_nats(train_tokens: np.ndarray, eval_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """token_nats of the unigram model: every token alike, whatever came before."""
    return -unigram_log_probs(train_tokens, vocab_size)[np.asarray(eval_tokens[1:], dtype=np.int64)]


def unigram_nats(train_tokens: np.ndarray, eval_tokens: np.ndarray, vocab_size: int) -> tuple[float, int]:
    nats = unigram_token_nats(train_tokens, eval_tokens, vocab_size)
    return float(nats.sum()), len(nats)


def bigram_token_nats(train_tokens: np.ndarray, eval_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """token_nats of a bigram model fitted on train, smoothed by Witten-Bell interpolation with the
    unigram model:

        p(b | a) = (c(a, b) + T(a) * p_uni(b)) / (c(a) + T(a))

    where c counts pairs and T(a) is how many different tokens follow a in train. A context seen
    often with few followers trusts its counts; a rare or varied one leans on the unigram. A context
    never seen (c = T = 0) is the unigram alone. Nothing to tune."""
    prev_train = np.asarray(train_tokens[:-1], dtype=np.int64)
    pair_keys, pair_counts = np.unique(prev_train * vocab_size + np.asarray(train_tokens[1:]), return_counts=True)
    context_count = np.bincount(prev_train, minlength=vocab_size).astype(np.float64)
    followers = np.bincount(pair_keys // vocab_size, minlength=vocab_size).astype(np.float64)
    unigram = np.exp(unigram_log_probs(train_tokens, vocab_size))

    prev, nxt = np.asarray(eval_tokens[:-1], dtype=np.int64), np.asarray(eval_tokens[1:], dtype=np.int64)
    keys = prev * vocab_size + nxt
    pair = np.zeros(len(keys))
    if len(pair_keys):
        where = np.searchsorted(pair_keys, keys).clip(max=len(pair_keys) - 1)
        found = pair_keys[where] == keys
        pair[found] = pair_counts[where[found]]
    c, t = context_count[prev], followers[prev]
    prob = (pair + t * unigram[nxt] + (c == 0) * unigram[nxt]) / (c + t + (c == 0))
    return -np.log(prob)


def document_of_targets(tokens: np.ndarray, eot_id: int) -> np.ndarray:
    """For each predicted token (tokens[1:]), the index of its document: a document's tokens and
    the <|endoftext|> that closes it belong to it; the next token starts the next document."""
    ends = np.asarray(tokens[:-1]) == eot_id  # an <|endoftext|> before target i + 1 moves it on
    return np.cumsum(ends)


def context_lengths(tokens: np.ndarray, block_size: int, eot_id: int) -> np.ndarray:
    """For each predicted token (tokens[1:], in token_nats's order), how many tokens of its own
    document the model sees before it: its window (SequentialWindows) cuts off what came before the
    window, and an <|endoftext|> what came before the document. Zero: the document's first token."""
    i = np.arange(len(tokens) - 1)  # target i is tokens[i + 1]; the model has read tokens[..i]
    window_start = (i // block_size) * block_size
    last_eot = np.maximum.accumulate(np.where(np.asarray(tokens[:-1]) == eot_id, i, -1))
    return i + 1 - np.maximum(window_start, last_eot + 1)


def context_buckets(max_context: int) -> list[tuple[int, int]]:
    """Context lengths grouped by powers of two: 0, 1, 2-3, 4-7, ... up to max_context, the last
    bucket taking max_context too (only a window's last token can have read all of it)."""
    buckets, low = [(0, 0)], 1
    while low <= max_context:
        high = 2 * low - 1
        if high >= max_context - 1:
            high = max_context
        buckets.append((low, high))
        low = high + 1
    return buckets


def bits_by_context(nats: np.ndarray, contexts: np.ndarray, max_context: int) -> dict[str, float]:
    """Mean bits per token of the predicted tokens in each context-length bucket ("lo-hi" or "n"),
    leaving out empty buckets. How fast the loss falls with context says how much of its document a
    model uses: the question that moved language modelling from recurrence to attention."""
    assert len(nats) == len(contexts)
    out = {}
    for low, high in context_buckets(max_context):
        chosen = (contexts >= low) & (contexts <= high)
        if chosen.any():
            out[str(low) if low == high else f"{low}-{high}"] = float(nats[chosen].mean() / math.log(2))
    return out


def perplexity(nats: float, count: int) -> float:
    return math.exp(nats / count)


def bits_per_byte(nats: float, n_bytes: int) -> float:
    """Total information in bits over the UTF-8 bytes of the text: comparable across tokenizers."""
    return nats / math.log(2) / n_bytes


def split_scores(nats: dict[str, np.ndarray], n_bytes: int, split: str) -> dict:
    """`<split>_ppl` and `<split>_bpb` for the model ("" prefix) and each baseline (`<name>_`)."""
    scores = {}
    for name, values in nats.items():
        prefix = f"{name}_" if name else ""
        scores[f"{prefix}{split}_ppl"] = perplexity(float(values.sum()), len(values))
        scores[f"{prefix}{split}_bpb"] = bits_per_byte(float(values.sum()), n_bytes)
    scores[f"{split}_tokens"] = len(nats[""])
    scores[f"{split}_bytes"] = n_bytes
    return scores


def language_model_scores(net, block_size: int, tokens_dir: Path, batch_size: int) -> dict:
    """Perplexity and bits per byte of the model and the baselines on each held-out split, overall
    and for each language's documents (their tokens' losses summed over their bytes)."""
    meta = read_meta(tokens_dir)
    train = np.asarray(load_tokens(tokens_dir, "train"))  # read once: both baselines count over it
    metrics: dict = {}
    for split in LM_SPLITS:
        if not meta["splits"][split]["docs"]:  # left empty on purpose (tokenize.test_fraction 0): not scored
            metrics.setdefault("empty_splits", []).append(split)
            continue
        tokens, docs = load_tokens(tokens_dir, split), load_split_docs(tokens_dir, split)
        nats = {
            "": token_nats(net, tokens, block_size, batch_size, progress=True),
            "unigram": unigram_token_nats(train, tokens, meta["vocab_size"]),
            "bigram": bigram_token_nats(train, tokens, meta["vocab_size"]),
        }
        metrics.update(split_scores(nats, meta["splits"][split]["bytes"], split))
        doc_of = document_of_targets(tokens, meta["eot_id"])
        assert doc_of[-1] == len(docs) - 1, "the token file and the documents of a split disagree"
        langs = np.array([d["lang"] for d in docs])
        for lang in sorted(set(langs)):
            in_lang = langs[doc_of] == lang
            n_bytes = sum(len(d["text"].encode("utf-8")) for d in docs if d["lang"] == lang)
            lang_nats = {name: values[in_lang] for name, values in nats.items()}
            metrics.setdefault(lang, {}).update(split_scores(lang_nats, n_bytes, split))
    return metrics


def val_bits_by_context(net, tokens_dir: Path, block_size: int) -> dict[str, float]:
    """The whole val split's loss per token, grouped by context length (bits_by_context):
    what the architecture comparison plots to show how far back each model reads."""
    eot_id = read_meta(tokens_dir)["eot_id"]
    tokens = load_tokens(tokens_dir, "val")
    nats = token_nats(net, tokens, block_size)
    return bits_by_context(nats, context_lengths(tokens, block_size, eot_id), block_size)


@torch.no_grad()
def objective_scores(
    net,
    examples_of,
    tokens_dir: Path,
    block_size: int,
    batch_size: int,
    objective: str,
    scored_logits,
    unscored: tuple = (),
) -> dict:
    """An encoder's or encoder-decoder's scores on its own objective, on each held-out split: the
    mean cross-entropy (nats) of the text tokens it restores (`objective` "masked": the encoder's
    masked tokens; "span": the tokens of the encoder-decoder's cut spans; it names the metrics) and
    the share predicted exactly, next to a unigram model fitted on train at the same positions.
    Targets in `unscored` (the sentinels and end of text that frame the spans: near-certain for the
    model, never seen in train by the unigram model) are predicted but not scored. Examples are
    drawn as in pretraining's validation (whole windows, seeded by position: the same every run);
    `examples_of(windows)` makes them; `scored_logits(net, x, y, scored)` gives the (N, V) logits of
    the scored targets (the family's). Not comparable with a decoder's loss or bits per byte, nor
    with each other (families/objectives.py)."""
    meta = read_meta(tokens_dir)
    unigram = unigram_log_probs(np.asarray(load_tokens(tokens_dir, "train")), meta["vocab_size"])
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    metrics: dict = {"objective": objective}
    for split in LM_SPLITS:
        tokens = load_tokens(tokens_dir, split)
        windows = whole_windows(tokens, block_size)
        if not meta["splits"][split]["docs"] or not len(windows):  # empty on purpose, or under one window
            metrics.setdefault("empty_splits", []).append(split)
            continue
        loader = DataLoader(examples_of(windows), batch_size=batch_size)
        nats = correct = base = count = 0.0
        for x, y in tqdm(loader, desc=f"{objective} tokens ({split})", leave=False):
            x, y = x.to(device), y.to(device)
            scored = (y != -100) & ~torch.isin(y, torch.tensor(unscored, dtype=y.dtype, device=y.device))
            logits, targets = scored_logits(net, x, y, scored), y[scored]
            nats += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += int((logits.argmax(-1) == targets).sum())
            base -= float(unigram[targets.cpu().numpy()].sum())
            count += int(scored.sum())
        metrics[f"{split}_{objective}_loss"] = nats / count
        metrics[f"{split}_{objective}_accuracy"] = correct / count
        metrics[f"unigram_{split}_{objective}_loss"] = base / count
        metrics[f"{split}_{objective}_tokens"] = int(count)
    return metrics
