import math

import numpy as np
import pytest
import torch

from llmpipe.evaluation.classification import (
    classification_metrics,
    confusion_matrix,
    majority_baseline,
    per_class_metrics,
)
from llmpipe.evaluation.lm_metrics import (
    bigram_token_nats,
    bits_by_context,
    bits_per_byte,
    context_buckets,
    context_lengths,
    document_of_targets,
    lm_nats,
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
    assert m["acc"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_majority_baseline():
    m = majority_baseline([2, 2, 1], target=[2, 0, 2, 1], num_labels=3)
    assert m["acc"] == pytest.approx(0.5)


def test_bigram_baseline_by_hand():
    # train 0 1 0 1 0 2: after 0 come 1, 1, 2 (c(0) = 3, T(0) = 2 kinds); after 1 comes 0 (c = 2, T = 1)
    train = np.array([0, 1, 0, 1, 0, 2], dtype=np.uint16)
    uni = np.array([3 + 1, 2 + 1, 1 + 1]) / 9  # add-one unigram
    nats = bigram_token_nats(train, np.array([0, 1, 1, 2, 0], dtype=np.uint16), vocab_size=3)
    expected = [
        (2 + 2 * uni[1]) / (3 + 2),  # p(1 | 0): seen twice
        (0 + 1 * uni[1]) / (2 + 1),  # p(1 | 1): never seen after 1
        (0 + 1 * uni[2]) / (2 + 1),  # p(2 | 1)
        uni[0],  # p(0 | 2): 2 never starts a pair in train, so the unigram alone
    ]
    assert np.exp(-nats) == pytest.approx(expected)


def test_bigram_is_a_distribution_over_the_next_token():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 7, 200).astype(np.uint16)
    for prev in range(7):
        pairs = np.array([[prev, nxt] for nxt in range(7)], dtype=np.uint16)
        total = sum(np.exp(-bigram_token_nats(train, pair, 7))[0] for pair in pairs)
        assert total == pytest.approx(1.0)


def test_each_predicted_token_belongs_to_its_document():
    eot = 0
    tokens = np.array([5, 6, eot, 7, eot, 8, 9, eot])
    # targets are tokens[1:]: 6 and its <eot> belong to document 0, 7 and its <eot> to 1, 8 9 <eot> to 2
    assert document_of_targets(tokens, eot).tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_context_lengths_count_the_documents_tokens_inside_the_window():
    eot = 0
    tokens = np.array([5, 6, 7, eot, 8, 9, 4, 3, eot, 2])
    # block 4: windows read tokens[0:4] (targets 1..4) and tokens[4:8] (targets 5..8), then tokens[8:9]
    # target tokens[1]=6 sees 5 (1); 7 sees 5 6 (2); eot sees 5 6 7 (3); 8 follows an eot (0);
    # 9 starts window 2 mid-document, sees 8 (1); 4 sees 8 9 (2); 3 sees 8 9 4 (3); eot (4);
    # 2 starts window 3 right after an eot (0)
    assert context_lengths(tokens, 4, eot).tolist() == [1, 2, 3, 0, 1, 2, 3, 4, 0]


def test_bits_by_context_averages_each_power_of_two_bucket():
    assert context_buckets(6) == [(0, 0), (1, 1), (2, 3), (4, 6)]
    assert context_buckets(256)[-2:] == [(64, 127), (128, 256)]  # no bucket of the last position alone
    nats = np.array([2.0, 4.0, 1.0, 3.0, 0.5]) * math.log(2)  # in bits: 2, 4, 1, 3, 0.5
    contexts = np.array([0, 0, 2, 3, 5])
    assert bits_by_context(nats, contexts, 6) == pytest.approx({"0": 3.0, "2-3": 2.0, "4-6": 0.5})


def test_precision_recall_and_f1_by_hand():
    pred, target = [0, 1, 1, 0, 2, 2], [0, 1, 2, 1, 2, 2]
    # class 0: tp 1 fp 1 fn 0 -> P 1/2, R 1; class 1: tp 1 fp 1 fn 1 -> P 1/2, R 1/2; class 2: tp 2 fp 0 fn 1
    m = classification_metrics(pred, target, num_labels=3)
    assert m["acc"] == pytest.approx(4 / 6) and m["micro_f1"] == pytest.approx(4 / 6)
    assert m["macro_precision"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    f1 = [2 * 0.5 * 1 / 1.5, 0.5, 2 * 1 * (2 / 3) / (5 / 3)]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    rows = per_class_metrics(pred, target, ["a", "b", "c"])
    assert [r["label"] for r in rows] == ["a", "b", "c"] and [r["support"] for r in rows] == [1, 2, 3]
    assert [r["f1"] for r in rows] == pytest.approx(f1)
    assert confusion_matrix(pred, target, 3) == [[1, 0, 0], [1, 1, 0], [0, 1, 2]]  # [actual][predicted]


def byte_tokenizer(merged_byte: int | None = None):
    """A byte-level BPE tokenizer whose tokens form a complete prefix code over bytes: the 256 single
    bytes or, with merged_byte b, the 255 other bytes alone and b followed by any byte (b alone stays
    in the vocabulary, as BPE needs it, but never comes out of a text that does not end in b)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = byte_to_char()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = [(alphabet[merged_byte], alphabet[b]) for b in range(256)] if merged_byte is not None else []
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def byte_to_char() -> dict[int, str]:
    """The printable character byte-level BPE uses for each byte (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteUniform(torch.nn.Module):
    """A language model that gives every byte probability 1/256: a token of n bytes gets 256^-n (a
    byte-level token has one character per byte); `never` gets 0."""

    def __init__(self, tokenizer, never: int | None = None):
        super().__init__()
        self.log_probs = torch.zeros(tokenizer.get_vocab_size())
        for token, i in tokenizer.get_vocab().items():
            self.log_probs[i] = -len(token) * math.log(256)
        if never is not None:
            self.log_probs[never] = float("-inf")

    def forward(self, idx):
        return self.log_probs.expand(*idx.shape, -1)


def test_bits_per_byte_is_the_same_across_tokenizers_for_a_model_uniform_over_bytes():
    text = "Bits per byte do not depend on the tokenizer, 也不依赖分词器。 " * 20 + "end"
    n_bytes = len(text.encode("utf-8"))
    results = []
    for merged in (None, ord("e")):
        tokenizer = byte_tokenizer(merged)
        ids = tokenizer.encode(text).ids
        assert tokenizer.decode(ids) == text
        model = ByteUniform(tokenizer, never=merged)
        assert torch.logsumexp(model.log_probs, 0) == pytest.approx(0.0, abs=1e-5)  # a proper distribution
        tokens = np.array([ids[0], *ids])  # the first token is context only: repeat it so all are predicted
        nats, count = lm_nats(model, tokens, block_size=64, batch_size=4)
        results.append((count, bits_per_byte(nats, n_bytes)))
    (count_a, bpb_a), (count_b, bpb_b) = results
    assert count_a == n_bytes and count_b < n_bytes  # the second tokenizer needs fewer tokens
    assert bpb_a == pytest.approx(8.0) and bpb_b == pytest.approx(8.0)
