import torch

from llmpipe.data.tokenizer import EOT, SPECIAL_TOKENS, special_id, train_bpe
from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.registry.inference import filter_logits, generate_text, stream_text, stream_tokens


def test_top_k_and_top_p_keep_the_expected_tokens():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(filter_logits(logits, top_k=2, top_p=None)).tolist() == [True, True, False, False]
    # 0.5 + 0.3 = 0.8 < 0.9, so the third token is needed to reach 0.9; the fourth is not
    assert torch.isfinite(filter_logits(logits, top_k=None, top_p=0.9)).tolist() == [True, True, True, False]
    assert torch.isfinite(filter_logits(logits, top_k=None, top_p=0.5)).tolist() == [True, False, False, False]


def small_lm(vocab_size: int) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=2, n_kv_head=2, d_model=16)).eval()


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


def test_streamed_text_never_shows_half_a_character():
    # A model trained to recite one line, with a tokenizer that has almost no merges, so most
    # Chinese characters take three byte tokens: the stream must still show whole characters.
    line = "床前明月光，疑是地上霜。"
    tok = train_bpe([line], vocab_size=256 + len(SPECIAL_TOKENS) + 2)
    ids = tok.encode(line).ids + [special_id(tok, EOT)]
    assert len(ids) > len(line) + 10
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=tok.get_vocab_size(), block_size=64, n_layer=2, n_head=2, n_kv_head=2, d_model=64))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(net(x)[0], y[0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    prompt = tok.decode(ids[:3])  # the first character
    pieces = list(stream_text(net, tok, prompt, max_new_tokens=60, temperature=0))
    assert "".join(pieces) == line[1:]
    assert all(piece and "\ufffd" not in piece for piece in pieces)
    assert generate_text(net, tok, prompt, max_new_tokens=60, temperature=0) == line[1:]
