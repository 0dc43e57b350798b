import pytest
import torch

from llmpipe.data.tokenizer import EOT, SPECIAL_TOKENS, special_id, train_bpe
from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.registry.inference import discourage_repeats, filter_logits, generate_text, stream_text, stream_tokens


def test_top_k_and_top_p_keep_the_expected_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(filter_logits(logits, top_k=2, top_p=None)).tolist() == [True, True, False, False]
    # 0.5 + 0.3 = 0.8 < 0.9, so the third token is needed to reach 0.9; the fourth is not
    assert torch.isfinite(filter_logits(logits, top_k=None, top_p=0.9)).tolist() == [True, True, True, False]
    assert torch.isfinite(filter_logits(logits, top_k=None, top_p=0.5)).tolist() == [True, False, False, False]


def small_lm(vocab_size: int) -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(
            vocab_size=vocab_size,
            block_size=8,
            n_layer=1,
            n_head=2,
            n_kv_head=2,
            d_model=16,
            tie_embeddings=True,
            dropout=0.0,
        )
    ).eval()


def test_greedy_is_deterministic_and_slides_past_block_size():
    net = small_lm(50)
    a = list(stream_tokens(net, [1, 2, 3], 20, temperature=0))
    assert len(a) == 20 and a == list(stream_tokens(net, [1, 2, 3], 20, temperature=0))


def test_sampling_is_seeded_and_stops_at_eos():
    net = small_lm(50)
    a = list(stream_tokens(net, [1], 30, temperature=1.0, top_k=10, seed=5))
    assert a == list(stream_tokens(net, [1], 30, temperature=1.0, top_k=10, seed=5))
    eos = a[3]
    assert list(stream_tokens(net, [1], 30, temperature=1.0, top_k=10, seed=5, eos_id=eos)) == a[: a.index(eos)]


def test_the_repetition_penalty_lowers_the_tokens_already_written_and_no_others():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    out = discourage_repeats(logits, [0, 1, 0], penalty=2.0, ngram=0)
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0]  # positive divided, negative multiplied: both less likely
    assert torch.equal(discourage_repeats(logits, [0, 1], penalty=1.0, ngram=0), logits)
    assert logits.tolist() == [2.0, -1.0, 0.5, 3.0]  # the caller's tensor is left as it was


def test_no_repeat_ngram_rules_out_the_token_that_would_repeat_an_ngram():
    logits = torch.zeros(6)
    # written 1 2 3 1 2: a 3rd token 3 would repeat "1 2 3"; a 2-gram ban also rules out 3 after 2
    assert torch.isinf(discourage_repeats(logits, [1, 2, 3, 1, 2], 1.0, ngram=3)).nonzero().flatten().tolist() == [3]
    assert torch.isinf(discourage_repeats(logits, [1, 2, 3, 1, 2], 1.0, ngram=2)).nonzero().flatten().tolist() == [3]
    assert torch.isinf(discourage_repeats(logits, [1, 2, 3], 1.0, ngram=1)).nonzero().flatten().tolist() == [1, 2, 3]
    assert not torch.isinf(discourage_repeats(logits, [1, 2, 3, 4], 1.0, ngram=3)).any()


def ngrams(ids: list[int], n: int) -> list[tuple]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def test_greedy_decoding_that_loops_stops_looping_under_the_controls():
    net = small_lm(50)
    plain = list(stream_tokens(net, [1, 2, 3], 60, temperature=0))
    assert len(set(ngrams(plain, 3))) < len(ngrams(plain, 3))  # an untrained model's greedy text loops
    for n in (2, 3, 4):
        controlled = list(stream_tokens(net, [1, 2, 3], 60, temperature=0, no_repeat_ngram_size=n))
        assert len(set(ngrams(controlled, n))) == len(ngrams(controlled, n)), n
    penalized = list(stream_tokens(net, [1, 2, 3], 60, temperature=0, repetition_penalty=50.0))
    assert len(set(penalized)) > len(set(plain))  # it reaches for tokens it has not written
    # sampling takes the controls too, and stays seeded
    sampled = [list(stream_tokens(net, [1], 40, temperature=1.0, seed=3, no_repeat_ngram_size=2)) for _ in range(2)]
    assert sampled[0] == sampled[1] and len(set(ngrams(sampled[0], 2))) == len(ngrams(sampled[0], 2))


@pytest.fixture(scope="module")
def reciter():
    """A model trained to recite one line, with a tokenizer that has almost no merges, so most
    Chinese characters take three byte tokens: (net, tokenizer, line, prompt)."""
    line = "床前明月光，疑是地上霜。"
    tok = train_bpe([line], vocab_size=256 + len(SPECIAL_TOKENS) + 2)
    ids = tok.encode(line).ids + [special_id(tok, EOT)]
    assert len(ids) > len(line) + 10
    torch.manual_seed(0)
    net = GPT(
        GPTConfig(
            vocab_size=tok.get_vocab_size(),
            block_size=64,
            n_layer=2,
            n_head=2,
            n_kv_head=2,
            d_model=64,
            tie_embeddings=True,
            dropout=0.0,
        )
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(net(x)[0], y[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    return net, tok, line, tok.decode(ids[:3])  # the prompt: the first character


def test_streamed_text_never_shows_half_a_character(reciter):
    # the stream must show whole characters, though most take three tokens
    net, tok, line, prompt = reciter
    pieces = list(stream_text(net, tok, prompt, max_new_tokens=60, temperature=0))
    assert "".join(pieces) == line[1:]
    assert all(piece and "\ufffd" not in piece for piece in pieces)
    assert generate_text(net, tok, prompt, max_new_tokens=60, temperature=0) == line[1:]


def test_the_answer_ends_before_the_first_stop_string_it_writes(reciter):
    net, tok, line, prompt = reciter
    greedy = {"max_new_tokens": 60, "temperature": 0}
    assert generate_text(net, tok, prompt, stop_strings=["明月", "地上"], **greedy) == "前"
    assert list(stream_text(net, tok, prompt, stop_strings=["前"], **greedy)) == []  # nothing before it
    assert generate_text(net, tok, prompt, stop_strings=["地上", "，"], **greedy) == "前明月光"
    # a stop string whose start the model writes but not the rest: everything is shown in the end
    assert generate_text(net, tok, prompt, stop_strings=["明日", "雪"], **greedy) == line[1:]
    pieces = list(stream_text(net, tok, prompt, stop_strings=["霜。!"], **greedy))
    assert "".join(pieces) == line[1:] and all(pieces)
    assert generate_text(net, tok, prompt, stop_strings=[""], **greedy) == line[1:]  # an empty one never stops
