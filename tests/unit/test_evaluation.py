import math

import numpy as np
import pytest
import torch

from llmpipe.evaluation import (
    bits_per_byte,
    classification_metrics,
    lm_nats,
    majority_baseline,
    perplexity,
    unigram_nats,
)


class Uniform(torch.nn.Module):
    """A 'model' that gives every token of a V-word vocabulary the same probability."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.vocab_size)


def test_uniform_model_has_perplexity_v_and_log2v_bits_per_token():
    tokens = np.random.default_rng(0).integers(0, 64, 500).astype(np.uint16)
    nats, count = lm_nats(Uniform(64), tokens, block_size=32, batch_size=4)
    assert count == 499
    assert perplexity(nats, count) == pytest.approx(64)
    # 499 tokens over 998 bytes: 6 bits per token is 3 bits per byte
    assert bits_per_byte(nats, 998) == pytest.approx(3.0)


def test_unigram_baseline_by_hand():
    train = np.array([0, 0, 0, 1], dtype=np.uint16)  # add-one counts: 4, 2, 1 of 7
    nats, count = unigram_nats(train, np.array([1, 0, 2], dtype=np.uint16), vocab_size=3)
    assert count == 2
    assert nats == pytest.approx(-math.log(4 / 7) - math.log(1 / 7))


def test_classification_metrics_by_hand():
    # class 0: tp 1, fp 1, fn 0 -> F1 2/3; class 1: tp 1, fp 1, fn 1 -> F1 1/2; class 2: tp 0, fn 1 -> 0
    m = classification_metrics(pred=[0, 1, 1, 0], target=[0, 1, 2, 1], num_labels=3)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_majority_baseline():
    m = majority_baseline([2, 2, 1], target=[2, 0, 2, 1], num_labels=3)
    assert m["accuracy"] == pytest.approx(0.5)
