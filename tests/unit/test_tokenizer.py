from llmpipe.data.tokenizer import SPECIAL_TOKENS, special_id, train_bpe

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A computer lets you make more mistakes faster than any invention.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
] * 20


def test_trained_tokenizer_round_trips_english_chinese_and_unseen_text():
    tok = train_bpe(TEXTS, vocab_size=300, min_frequency=2)
    assert tok.get_vocab_size() <= 300
    for text in TEXTS[:4] + ["unseen: 龍 🐉 ünïcödé\ttab\nnewline"]:
        assert tok.decode(tok.encode(text).ids) == text


def test_merges_compress_the_training_text():
    tok = train_bpe(TEXTS, vocab_size=400, min_frequency=2)
    text = TEXTS[2]
    assert len(tok.encode(text).ids) < len(text.encode("utf-8")) / 2


def test_special_tokens_are_single_ids():
    tok = train_bpe(TEXTS, vocab_size=300)
    assert [special_id(tok, t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))  # first, in order
    for token in SPECIAL_TOKENS:  # each one id, also inside text: the SFT template relies on it
        assert tok.encode(f"a{token}b").ids[1:-1] == [special_id(tok, token)]
