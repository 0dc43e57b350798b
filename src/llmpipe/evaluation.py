"""Metrics: perplexity and bits per byte for language models, accuracy and F1 for classifiers,
with the baselines that give them meaning (unigram model, majority class)."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score
from tqdm import tqdm

from llmpipe.datasets import SequentialWindows, pad_windows


@torch.no_grad()
def lm_nats(
    net, tokens: np.ndarray, block_size: int, batch_size: int = 16, progress: bool = False
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of every token of `tokens` but the first, and their count."""
    loader = DataLoader(SequentialWindows(tokens, block_size), batch_size=batch_size, collate_fn=pad_windows)
    total, count = 0.0, 0
    for x, y in tqdm(loader, desc="perplexity", disable=not progress, leave=False):
        logits = net(x)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((y != -100).sum())
    return total, count


@torch.no_grad()
def sequence_nats(net, dataset, batch_size: int = 16) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of the targets of (x, y) sequences, skipping targets
    of -100 (a prompt's tokens, padding), and their count: the response loss of fine-tuning data."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=pad_windows)
    total, count = 0.0, 0
    for x, y in loader:
        logits = net(x)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100, reduction="sum").item()
        count += int((y != -100).sum())
    return total, count


def unigram_nats(train_tokens: np.ndarray, eval_tokens: np.ndarray, vocab_size: int) -> tuple[float, int]:
    """The same quantity as lm_nats for a unigram model fitted on train (add-one smoothing)."""
    counts = np.bincount(train_tokens, minlength=vocab_size).astype(np.float64) + 1.0
    log_prob = np.log(counts / counts.sum())
    targets = np.asarray(eval_tokens[1:], dtype=np.int64)
    return float(-log_prob[targets].sum()), len(targets)


def perplexity(nats: float, count: int) -> float:
    return math.exp(nats / count)


def bits_per_byte(nats: float, n_bytes: int) -> float:
    """Total information in bits over the UTF-8 bytes of the text: comparable across tokenizers."""
    return nats / math.log(2) / n_bytes


@torch.no_grad()
def classify_texts(net, tokenizer, texts: list[str], max_tokens: int, batch_size: int = 32) -> list[int]:
    """Predicted label index of each text, truncated to max_tokens tokens."""
    from llmpipe.datasets import collate_labeled
    from llmpipe.tokenizer import PAD, special_id

    collate = collate_labeled(special_id(tokenizer, PAD))
    encoded = [enc.ids[:max_tokens] or [special_id(tokenizer, PAD)] for enc in tokenizer.encode_batch(texts)]
    predictions = []
    for start in range(0, len(encoded), batch_size):
        idx, lengths, _ = collate([(ids, 0) for ids in encoded[start : start + batch_size]])
        predictions += net(idx, lengths).argmax(dim=-1).tolist()
    return predictions


def classification_metrics(pred: list[int], target: list[int], num_labels: int) -> dict:
    p, t = torch.tensor(pred), torch.tensor(target)
    return {
        "accuracy": multiclass_accuracy(p, t, num_labels, average="micro").item(),
        "macro_f1": multiclass_f1_score(p, t, num_labels, average="macro").item(),
    }


def majority_baseline(train_labels: list[int], target: list[int], num_labels: int) -> dict:
    """Metrics of always answering the most frequent training label."""
    majority = int(np.bincount(train_labels, minlength=num_labels).argmax())
    return classification_metrics([majority] * len(target), target, num_labels)
