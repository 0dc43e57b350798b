"""The BERT-style encoder (networks/encoder.py) and its masked-language-modelling examples
(families/masking.py): attention in both directions, loss on the masked positions only, masking
statistics and reproducibility, and the same numbers as transformers' BERT."""

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from llmpipe.families.hf_bert import bert_config, bert_state_dict, from_bert_state_dict
from llmpipe.families.masking import mask_tokens
from llmpipe.networks.encoder import Encoder, EncoderClassifier, EncoderConfig
from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.schema import Masking

MASKING = Masking(rate=0.15, mask=0.8, random=0.1)


def small(**overrides) -> EncoderConfig:
    return EncoderConfig(
        **{
            "arch": "bert",
            "tie_embeddings": True,
            "dropout": 0.0,
            "vocab_size": 97,
            "block_size": 16,
            "n_layer": 2,
            "n_head": 4,
            "d_model": 32,
            **overrides,
        }
    )


def test_the_encoder_sees_both_ways_and_the_decoder_only_back():
    torch.manual_seed(0)
    idx = torch.randint(0, 97, (2, 12))
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 97  # edit one later token
    encoder = Encoder(small()).eval()
    assert not torch.allclose(encoder(changed)[:, :10], encoder(idx)[:, :10])  # earlier positions see it
    decoder = GPT(
        GPTConfig(
            vocab_size=97, block_size=16, n_layer=2, n_head=4, n_kv_head=2, d_model=32, tie_embeddings=True, dropout=0.0
        )
    ).eval()
    assert torch.equal(decoder(changed)[:, :10], decoder(idx)[:, :10])  # they do not


def test_padding_changes_nothing_for_the_real_tokens():
    torch.manual_seed(0)
    net = Encoder(small()).eval()
    idx = torch.randint(0, 97, (1, 9))
    padded = torch.cat([idx, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    alone = net.hidden_states(idx)
    with_padding = net.hidden_states(padded, lengths=torch.tensor([9]))
    assert torch.allclose(with_padding[:, :9], alone, atol=1e-6)


def test_the_loss_is_the_cross_entropy_of_the_masked_positions_only():
    torch.manual_seed(0)
    net = Encoder(small()).eval()
    tokens = torch.randint(4, 97, (16,))
    inputs, targets = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=0, i=0)
    scored = targets != -100
    logits = net(inputs[None])[0]
    expected = F.cross_entropy(logits[scored], tokens[scored])
    assert torch.allclose(net(inputs[None], targets[None]), expected, atol=1e-6)
    # what the unscored positions would be has no say
    other = torch.where(scored, targets, torch.full_like(targets, -100))
    assert torch.equal(net(inputs[None], other[None]), net(inputs[None], targets[None]))


def test_masking_statistics_and_reproducibility():
    T, windows = 128, 400
    tokens = torch.arange(T) % 90 + 4  # ordinary ids only
    chosen = masked = kept = randomized = 0
    for i in range(windows):
        inputs, targets = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=3, i=i)
        scored = targets != -100
        assert int(scored.sum()) == round(0.15 * T)  # exactly the rate, every window
        assert torch.equal(targets[scored], tokens[scored])  # targets are the original tokens
        assert torch.equal(inputs[~scored], tokens[~scored])  # nothing else is touched
        chosen += int(scored.sum())
        masked += int((inputs[scored] == 1).sum())
        kept += int((inputs[scored] == tokens[scored]).sum())
        randomized += int(((inputs[scored] != 1) & (inputs[scored] != tokens[scored])).sum())
        assert bool((inputs[scored] >= 4).logical_or(inputs[scored] == 1).all())  # never another special token
    assert abs(masked / chosen - 0.8) < 0.02
    assert abs(kept / chosen - 0.1) < 0.02  # (a random draw equal to the original counts as kept)
    assert abs(randomized / chosen - 0.1) < 0.02
    again = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=3, i=7)
    first = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=3, i=7)
    other = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=3, i=8)
    assert all(torch.equal(a, b) for a, b in zip(again, first, strict=True))  # same example, same masks
    assert not torch.equal(again[1], other[1])  # another example, other masks (dynamic masking)
    val = mask_tokens(tokens, MASKING, mask_id=1, first_ordinary_id=4, vocab_size=97, seed=3, i=7, stream=1)
    assert not torch.equal(again[1], val[1])  # validation window 7 is not masked like training example 7


def test_num_params_formula_matches_the_tensors():
    for tie in (True, False):
        cfg = small(tie_embeddings=tie)
        assert Encoder(cfg).num_params(non_embedding=False) == cfg.num_params()


def hf_model(net, kind: str, pooling: str = "first", labels=None):
    config = bert_config(net.backbone.config if kind == "classifier" else net.config, kind, 0, 1, labels, pooling)
    config.pop("model_type", None), config.pop("auto_map", None), config.pop("architectures", None)
    model_class = BertForSequenceClassification if kind == "classifier" else BertForMaskedLM
    hf = model_class(BertConfig(**config)).eval()
    missing, unexpected = hf.load_state_dict(bert_state_dict(net), strict=False)
    assert not unexpected and set(missing) <= {"cls.predictions.decoder.weight"}  # tied: the embedding
    hf.tie_weights()
    return hf


@pytest.mark.parametrize("tie", [True, False])
def test_masked_lm_logits_match_transformers_bert(tie):
    torch.manual_seed(0)
    net = Encoder(small(tie_embeddings=tie)).eval()
    with torch.no_grad():
        for p in net.parameters():  # non-trivial biases and norms, so a misplaced one shows
            p.add_(torch.randn_like(p) * 0.02)
    hf = hf_model(net, "masked_lm")
    idx = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, net(idx), atol=1e-5, rtol=1e-4)
    back = Encoder(small(tie_embeddings=tie))
    from_bert_state_dict(back, bert_state_dict(net))
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), net.state_dict().values(), strict=True))


def test_first_token_classifier_matches_transformers_bert_with_padding():
    torch.manual_seed(0)
    net = EncoderClassifier(small(), num_labels=3, pooling="first").eval()
    # the backbone's MLM head takes no part: frozen (data parallelism needs a gradient for every trained weight)
    assert not net.backbone.head_dense.weight.requires_grad and not net.backbone.lm_head.bias.requires_grad
    assert net.backbone.embed_tokens.weight.requires_grad  # the tied projection is the embedding, which trains
    hf = hf_model(net, "classifier", labels=["a", "b", "c"])
    idx = torch.randint(4, 97, (2, 11))
    lengths = torch.tensor([11, 6])
    idx[1, 6:] = 0
    mask = (torch.arange(11)[None] < lengths[:, None]).long()
    with torch.no_grad():
        assert torch.allclose(hf(idx, attention_mask=mask).logits, net(idx, lengths), atol=1e-5, rtol=1e-4)


def test_mean_pooling_classifier_matches_its_transformers_class_with_padding():
    from llmpipe.networks.modeling_llmpipe import (
        LlmpipeBertMeanPoolConfig,
        LlmpipeBertMeanPoolForSequenceClassification,
    )

    torch.manual_seed(0)
    net = EncoderClassifier(small(), num_labels=3, pooling="mean").eval()
    config = bert_config(net.backbone.config, "classifier", 0, 1, ["a", "b", "c"], "mean")
    assert config["auto_map"]["AutoModelForSequenceClassification"].endswith(
        "LlmpipeBertMeanPoolForSequenceClassification"
    )
    config = {k: v for k, v in config.items() if k not in ("model_type", "auto_map", "architectures")}
    hf = LlmpipeBertMeanPoolForSequenceClassification(LlmpipeBertMeanPoolConfig(**config)).eval()
    missing, unexpected = hf.load_state_dict(bert_state_dict(net), strict=False)
    assert not missing and not unexpected
    idx = torch.randint(4, 97, (3, 12))
    lengths = torch.tensor([12, 7, 3])
    mask = (torch.arange(12)[None] < lengths[:, None]).long()
    idx[mask == 0] = 0  # the pad token
    with torch.no_grad():
        assert torch.allclose(hf(idx, attention_mask=mask).logits, net(idx, lengths), atol=1e-5, rtol=1e-4)
        assert torch.allclose(hf(idx).logits, net(idx, lengths), atol=1e-5, rtol=1e-4)  # mask from the pad id
