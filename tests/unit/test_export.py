"""Exports load in Hugging Face transformers' Auto classes and compute what our model computes."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from llmpipe.data.tokenizer import EOT, PAD, special_id, train_bpe
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig
from llmpipe.registry.export import load_model_dir, save_model_dir
from llmpipe.registry.inference import stream_tokens

TEXTS = ["The quick brown fox jumps over the lazy dog.", "床前明月光，疑是地上霜。举头望明月，低头思故乡。"] * 30


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_bpe(TEXTS, vocab_size=320).save(str(path))
    return path


def config(vocab_size: int, **overrides) -> GPTConfig:
    args = {"block_size": 32, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_model": 64, "tie_embeddings": True}
    return GPTConfig(vocab_size=vocab_size, **{**args, "dropout": 0.0, **overrides})


@pytest.mark.parametrize("tie", [True, False])
def test_causal_lm_logits_and_greedy_generation_match_transformers(tmp_path, tokenizer_file, tie):
    torch.manual_seed(0)
    tok = train_bpe(TEXTS, vocab_size=320)
    cfg = config(tok.get_vocab_size(), tie_embeddings=tie)
    net = GPT(cfg).eval()
    save_model_dir(tmp_path / "lm", net, cfg, tokenizer_file, params={})

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "lm").eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "lm")
    ids = torch.tensor([hf_tok("The quick brown fox 床前")["input_ids"]])
    assert ids.tolist()[0] == tok.encode("The quick brown fox 床前").ids
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, net(ids), atol=1e-5, rtol=1e-4)
        ours = list(stream_tokens(net, ids[0].tolist(), 12, temperature=0))
        theirs = hf.generate(
            ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=hf_tok.pad_token_id
        )
    assert ours == theirs[0, ids.shape[1] :].tolist()
    assert hf_tok.eos_token == EOT and hf_tok.pad_token == PAD


def test_classifier_logits_match_transformers_with_right_padding(tmp_path, tokenizer_file):
    torch.manual_seed(0)
    tok = train_bpe(TEXTS, vocab_size=320)
    cfg = config(tok.get_vocab_size())
    net = GPTClassifier(cfg, num_labels=3, pooling="last").eval()  # LlamaForSequenceClassification's pooling
    save_model_dir(tmp_path / "cls", net, cfg, tokenizer_file, params={}, extra={"labels": ["a", "b", "c"]})

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c"}
    pad = special_id(tok, PAD)
    rows = [tok.encode(t).ids[:10] for t in ("The quick brown fox", "床前明月光，疑是地上霜。")]
    lengths = torch.tensor([len(r) for r in rows])
    idx = torch.full((2, int(lengths.max())), pad)
    for i, r in enumerate(rows):
        idx[i, : len(r)] = torch.tensor(r)
    with torch.no_grad():
        assert torch.allclose(hf(idx).logits, net(idx, lengths), atol=1e-5, rtol=1e-4)


def test_a_mean_pooling_classifier_loads_in_transformers_with_its_own_code(tmp_path, tokenizer_file):
    torch.manual_seed(0)
    cfg = config(train_bpe(TEXTS, vocab_size=320).get_vocab_size())
    net = GPTClassifier(cfg, num_labels=2, pooling="mean").eval()
    save_model_dir(tmp_path / "cls", net, cfg, tokenizer_file, params={}, extra={"labels": ["a", "b"]})
    loaded, meta, _ = load_model_dir(tmp_path / "cls")
    assert meta["pooling"] == "mean" and loaded.pooling == "mean"

    # without trust_remote_code transformers refuses: it must not pool the last token instead
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls")
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls", trust_remote_code=True).eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "cls")
    assert hf.config.id2label == {0: "a", 1: "b"}
    pad = special_id(train_bpe(TEXTS, vocab_size=320), PAD)
    idx, lengths = torch.randint(2, 100, (2, 7)), torch.tensor([7, 4])
    idx[1, 4:] = pad  # right padding
    with torch.no_grad():
        ours = net(idx, lengths)
        assert torch.equal(loaded(idx, lengths), ours)
        assert torch.allclose(hf(idx).logits, ours, atol=1e-5, rtol=1e-4)  # pads found by their id
        mask = (torch.arange(7)[None, :] < lengths[:, None]).long()
        assert torch.allclose(hf(idx, attention_mask=mask).logits, ours, atol=1e-5, rtol=1e-4)
        batch = hf_tok(["The quick brown fox", "床前明月光"], padding=True, return_tensors="pt")
        one = hf_tok(["床前明月光"], return_tensors="pt")
        assert torch.allclose(hf(**batch).logits[1], hf(**one).logits[0], atol=1e-5, rtol=1e-4)


def test_load_model_dir_round_trips_the_weights(tmp_path, tokenizer_file):
    torch.manual_seed(0)
    cfg = config(train_bpe(TEXTS, vocab_size=320).get_vocab_size(), tie_embeddings=False)
    net = GPT(cfg).eval()
    save_model_dir(tmp_path / "lm", net, cfg, tokenizer_file, params={"seed": 1})
    loaded, meta, tok = load_model_dir(tmp_path / "lm")
    assert meta["kind"] == "causal_lm" and special_id(tok, EOT) == 0
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
