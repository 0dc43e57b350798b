"""The encoder-decoder's exports (families/hf_t5.py) load in transformers' Auto classes as T5 and
compute what our Seq2Seq and Seq2SeqClassifier compute: logits on padded batches, greedy generation,
and llmpipe's own round trip."""

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from llmpipe.data.tokenizer import EOT, PAD, special_id, train_bpe
from llmpipe.families.hf_t5 import from_t5_state_dict, t5_state_dict
from llmpipe.networks.seq2seq import IGNORE, Seq2Seq, Seq2SeqClassifier, Seq2SeqConfig
from llmpipe.registry.export import load_model_dir, save_model_dir
from llmpipe.registry.inference import stream_tokens

TEXTS = ["The quick brown fox jumps over the lazy dog.", "床前明月光，疑是地上霜。举头望明月，低头思故乡。"] * 30
LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok = train_bpe(TEXTS, vocab_size=320)
    tok.save(str(path))
    return tok, path


def small(vocab_size: int) -> Seq2SeqConfig:
    # few buckets and a short max_distance, so that short inputs reach the logarithmic and the last buckets
    return Seq2SeqConfig(
        arch="t5",
        vocab_size=vocab_size,
        block_size=32,
        n_layer=2,
        n_head=4,
        d_model=32,
        num_buckets=8,
        max_distance=12,
        tie_embeddings=True,
        dropout=0.0,
    )


def jittered(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norms and biases, so a misplaced weight shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def right_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    idx = torch.full((len(rows), int(lengths.max())), pad)
    for i, r in enumerate(rows):
        idx[i, : len(r)] = torch.tensor(r)
    return idx, lengths


def test_seq2seq_lm_logits_and_loss_match_transformers_t5(tmp_path, tokenizer):
    tok, tokenizer_file = tokenizer
    pad = special_id(tok, PAD)
    torch.manual_seed(0)
    cfg = small(tok.get_vocab_size())
    net = jittered(Seq2Seq(cfg))
    save_model_dir(tmp_path / "lm", net, cfg, tokenizer_file, params={})

    hf, info = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "lm", output_loading_info=True)
    hf.eval()
    assert type(hf).__name__ == "T5ForConditionalGeneration"
    assert not any(info.values()), info  # nothing missing, unexpected or mismatched
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "lm")
    assert hf_tok.pad_token == PAD and hf_tok.eos_token == EOT and hf_tok.pad_token_id == pad == cfg.pad_id
    sources = ["The quick brown fox jumps over the lazy dog. The quick brown fox", "床前明月光"]
    assert hf_tok(sources[1])["input_ids"] == tok.encode(sources[1]).ids
    source, _ = right_padded([tok.encode(s).ids for s in sources], pad)
    assert source.shape[1] > cfg.max_distance  # positions past max_distance share the last bucket
    targets = torch.randint(21, tok.get_vocab_size(), (2, 9))
    targets[1, 5:] = IGNORE  # a shorter target
    with torch.no_grad():
        ours = net.target_logits(source, targets)
        theirs = hf(input_ids=source, attention_mask=(source != pad).long(), labels=targets)
        assert torch.allclose(theirs.logits, ours, atol=1e-5, rtol=0)
        assert torch.allclose(theirs.loss, net(source, targets), atol=1e-5, rtol=0)


def test_greedy_generation_matches_transformers_generate(tmp_path, tokenizer):
    tok, tokenizer_file = tokenizer
    pad, eot = special_id(tok, PAD), special_id(tok, EOT)
    rows = [tok.encode(s).ids for s in ("The quick brown fox", "举头望明月，低头思故乡。", "dog")]
    source, _ = right_padded(rows, pad)
    torch.manual_seed(0)
    cfg = small(tok.get_vocab_size())
    net = jittered(Seq2Seq(cfg))
    # a random network repeats one token: taught to write each input backwards, then <|endoftext|>, it
    # writes texts of different lengths that end, which tests the decoder's positions and the stop
    reversed_rows, _ = right_padded([[*reversed(r), eot] for r in rows], IGNORE)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(40):
        optimizer.zero_grad()
        net(source, reversed_rows).backward()
        optimizer.step()
    net.eval()
    save_model_dir(tmp_path / "lm", net, cfg, tokenizer_file, params={})
    hf = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "lm").eval()

    n = 20
    with torch.no_grad():
        out = hf.generate(source, attention_mask=(source != pad).long(), do_sample=False, max_new_tokens=n)
    assert bool((out[:, 0] == pad).all())  # T5's start token is the pad token
    written = []
    for row, theirs in zip(rows, out[:, 1:].tolist(), strict=True):
        assert eot in theirs  # it stopped before max_new_tokens (and padded the rest, in a batch)
        theirs = theirs[: theirs.index(eot)]
        assert list(stream_tokens(net, row, n, temperature=0.0, eos_id=eot)) == theirs
        written += theirs
    assert len(set(written)) > len(rows)  # not one token over and over


def test_mean_pooling_classifier_loads_in_transformers_with_its_own_code(tmp_path, tokenizer):
    tok, tokenizer_file = tokenizer
    pad = special_id(tok, PAD)
    torch.manual_seed(0)
    cfg = small(tok.get_vocab_size())
    net = jittered(Seq2SeqClassifier(cfg, num_labels=len(LABELS)))
    save_model_dir(tmp_path / "cls", net, cfg, tokenizer_file, params={}, extra={"labels": LABELS})
    assert (tmp_path / "cls" / "modeling_llmpipe.py").is_file()

    # without trust_remote_code transformers refuses: it must not read the decoder's end-of-text state instead
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls")
    hf, info = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "cls", trust_remote_code=True, output_loading_info=True
    )
    hf.eval()
    assert not any(info.values()), info
    assert type(hf).__name__ == "LlmpipeT5MeanPoolForSequenceClassification"
    assert hf.config.id2label == dict(enumerate(LABELS))
    idx, lengths = right_padded([tok.encode(s).ids for s in ("The quick brown fox jumps", "床前明月光", "dog")], pad)
    mask = (torch.arange(idx.shape[1])[None, :] < lengths[:, None]).long()
    with torch.no_grad():
        ours = net(idx, lengths)
        assert torch.allclose(hf(idx, attention_mask=mask).logits, ours, atol=1e-5, rtol=0)
        assert torch.allclose(hf(idx).logits, ours, atol=1e-5, rtol=0)  # the real tokens found by the pad id
        alone = net(idx[1:2, : lengths[1]], lengths[1:2])
        assert torch.allclose(ours[1], alone[0], atol=1e-5, rtol=0)  # padding changes nothing


@pytest.mark.parametrize("kind", ["seq2seq_lm", "classifier"])
def test_load_model_dir_round_trips_the_outputs(tmp_path, tokenizer, kind):
    tok, tokenizer_file = tokenizer
    pad = special_id(tok, PAD)
    torch.manual_seed(0)
    cfg = small(tok.get_vocab_size())
    classifier = kind == "classifier"
    net = jittered(Seq2SeqClassifier(cfg, len(LABELS)) if classifier else Seq2Seq(cfg))
    extra = {"labels": LABELS} if classifier else None
    save_model_dir(tmp_path / "m", net, cfg, tokenizer_file, params={"seed": 1}, extra=extra)
    loaded, meta, loaded_tok = load_model_dir(tmp_path / "m")
    assert meta["kind"] == kind and type(loaded) is type(net)
    assert special_id(loaded_tok, PAD) == pad
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    idx, lengths = right_padded([tok.encode(s).ids for s in ("The quick brown fox", "床前明月光")], pad)
    with torch.no_grad():
        if classifier:
            assert meta["pooling"] == "mean" and torch.equal(loaded(idx, lengths), net(idx, lengths))
        else:
            targets = torch.randint(21, tok.get_vocab_size(), (2, 6))
            assert torch.equal(loaded.target_logits(idx, targets), net.target_logits(idx, targets))


def test_loading_refuses_weights_that_do_not_fit(tokenizer):
    tok, _ = tokenizer
    cfg = small(tok.get_vocab_size())
    tensors = t5_state_dict(Seq2Seq(cfg))
    assert not any(k.startswith("transformer.") for k in tensors)
    assert set(t5_state_dict(Seq2SeqClassifier(cfg, 2))) >= {"transformer." + k for k in tensors}
    copy = {**tensors, "lm_head.weight": tensors["shared.weight"].clone()}  # a tied copy is welcome
    from_t5_state_dict(Seq2Seq(cfg), copy)
    copy["lm_head.weight"] += 1  # an untied head is not our model
    with pytest.raises(AssertionError, match="lm_head.weight differs"):
        from_t5_state_dict(Seq2Seq(cfg), copy)
    missing = {k: v for k, v in tensors.items() if k != "encoder.final_layer_norm.weight"}
    with pytest.raises(AssertionError, match="missing.*encoder.final_layer_norm.weight"):
        from_t5_state_dict(Seq2Seq(cfg), missing)
    with pytest.raises(AssertionError, match="unexpected.*classification_head"):
        from_t5_state_dict(Seq2Seq(cfg), {**tensors, "classification_head.dense.weight": torch.zeros(1)})
