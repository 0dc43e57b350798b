"""The encoder-decoder (networks/seq2seq.py) and its span corruption (families/span_corruption.py):
an encoder that reads both ways and a decoder that stays causal, padding that changes nothing,
a loss on the targets alone, and corrupted windows that give the text back."""

import numpy as np
import pytest
import torch

from llmpipe.families import classifier, language_model, model_config
from llmpipe.families.span_corruption import corrupt_spans, restore_spans, span_counts
from llmpipe.networks.seq2seq import Seq2Seq, Seq2SeqConfig, relative_buckets
from llmpipe.schema import SpanCorruption

PAD, EOT = 1, 0
SENTINELS = list(range(5, 21))


SHAPE = {
    "arch": "t5",
    "vocab_size": 300,
    "n_layer": 2,
    "n_head": 2,
    "d_model": 32,
    "tie_embeddings": True,
    "dropout": 0.0,
}


def tiny(**overrides) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(**{**SHAPE, "block_size": 64, **overrides})).eval()


def ordinary(*shape) -> torch.Tensor:
    return torch.randint(21, 300, shape)


def test_the_encoder_reads_both_ways_and_the_decoder_only_back():
    net = tiny()
    source, targets = ordinary(2, 12), ordinary(2, 8)
    with torch.no_grad():
        memory, _ = net.encode(source)
        changed = source.clone()
        changed[:, -1] = 42
        later, _ = net.encode(changed)
        assert not torch.allclose(memory[:, 0], later[:, 0])  # a later input token reaches the first state
        logits = net.target_logits(source, targets)
        edited = targets.clone()
        edited[:, 4] = 42  # decoder input position 5 reads it: logits 0..4 must not move
        after = net.target_logits(source, edited)
    assert torch.equal(logits[:, :5], after[:, :5])
    assert not torch.allclose(logits[:, 5:], after[:, 5:])


def test_input_padding_changes_nothing():
    net = tiny()
    source, targets = ordinary(1, 9), ordinary(1, 6)
    padded = torch.cat([source, torch.full((1, 5), PAD)], dim=1)
    with torch.no_grad():
        alone = net.target_logits(source, targets)
        beside = net.target_logits(padded, targets)
    assert torch.allclose(alone, beside, atol=1e-6)


def test_the_loss_counts_the_scored_targets_only():
    net = tiny()
    source, targets = ordinary(2, 10), ordinary(2, 7)
    with torch.no_grad():
        logits = net.target_logits(source, targets)
        ignored = targets.clone()
        ignored[:, 5:] = -100  # the decoder still reads the earlier targets the same way
        expected = torch.nn.functional.cross_entropy(logits[:, :5].flatten(0, 1), targets[:, :5].flatten())
        assert torch.allclose(net(source, ignored), expected, atol=1e-6)


def test_relative_buckets_are_exact_near_and_shared_far():
    both = relative_buckets(1, 300, bidirectional=True, num_buckets=32, max_distance=128)[0]
    assert both[:8].tolist() == [0, *range(17, 24)]  # keys after the query: the upper half, exact near
    assert both[200] == both[299] == 31  # beyond max_distance: the last bucket of that half
    before = relative_buckets(300, 1, bidirectional=True, num_buckets=32, max_distance=128)[:, 0]
    assert before[:8].tolist() == list(range(8)) and before[299] == 15
    back = relative_buckets(300, 1, bidirectional=False, num_buckets=32, max_distance=128)[:, 0]
    assert back[:16].tolist() == list(range(16)) and back[299] == 31


def test_the_config_counts_its_parameters_and_refuses_untied_embeddings():
    cfg = Seq2SeqConfig(**{**SHAPE, "block_size": 256})
    assert cfg.num_params() == sum(p.numel() for p in Seq2Seq(cfg).parameters())
    with pytest.raises(ValueError, match="tie_embeddings"):
        Seq2SeqConfig(**{**SHAPE, "block_size": 256, "tie_embeddings": False})
    section = {"arch": "t5", "block_size": 32, "n_layer": 1, "n_head": 2, "n_kv_head": 2, "d_model": 32}
    built = model_config({**section, "tie_embeddings": True, "dropout": 0.0}, vocab_size=300)
    assert isinstance(language_model(built), Seq2Seq)
    assert classifier(built, 3).backbone.decoder_layers[0].ffn.ffn_in.weight.requires_grad is False
    with pytest.raises(ValueError, match="pooling"):
        classifier(built, 3, "last")


@pytest.mark.parametrize("T", [2, 3, 17, 64, 256, 1000])
@pytest.mark.parametrize("rate,mean_span", [(0.15, 3.0), (0.5, 1.0), (0.3, 8.0)])
def test_span_corruption_gives_the_window_back(T, rate, mean_span):
    cfg = SpanCorruption(rate=rate, mean_span=mean_span)
    noise, spans = span_counts(T, cfg, len(SENTINELS))
    for seed in range(20):
        tokens = np.random.default_rng(seed).integers(21, 300, T)
        inputs, targets = corrupt_spans(tokens, cfg, SENTINELS, EOT, np.random.default_rng([seed, 1]))
        assert len(inputs) == T - noise + spans and len(targets) == noise + spans + 1  # fixed by T alone
        assert targets[-1] == EOT and targets[0] == SENTINELS[0]
        assert sorted(t for t in inputs if t in SENTINELS) == SENTINELS[:spans]
        assert restore_spans(inputs.tolist(), targets.tolist(), SENTINELS, EOT) == tokens.tolist()


def test_span_counts_follow_the_rate_and_the_sentinels():
    assert span_counts(256, SpanCorruption(rate=0.15, mean_span=3.0), 16) == (38, 13)
    assert span_counts(1000, SpanCorruption(rate=0.15, mean_span=3.0), 16) == (150, 16)  # longer spans instead
    with pytest.raises(ValueError, match="2 tokens"):
        span_counts(1, SpanCorruption(rate=0.15, mean_span=3.0), 16)
