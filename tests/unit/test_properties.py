"""Property-based tests (hypothesis): cleaning and tokenization on arbitrary Unicode, including
Chinese, emoji, combining marks, control characters and terminal escapes."""

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmpipe.clean.normalize import CONTROL, clean_text, screen
from llmpipe.clean.pii import scrub
from llmpipe.clean.quality import RULE_NAMES, TextStats, first_failure
from llmpipe.data.tokenizer import EOT, PAD, train_bpe

# Text that leans towards what a corpus holds: CJK, emoji, ANSI escapes and control characters mixed
# into arbitrary code points.
NOISE = st.sampled_from(["\x1b[1;31m", "\x1b[0m", "\x08", "\r\n", "\x00", "\t", "\u200b", "\ufeff", "  \n\n\n"])
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
TEXT = st.lists(st.one_of(st.text(max_size=8), st.text(CJK, max_size=8), st.text(EMOJI, max_size=3), NOISE)).map(
    "".join
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def tokenizer():
    corpus = ["The quick brown fox jumps over the lazy dog.", "床前明月光，疑是地上霜。", "Love is 🎉 patient."] * 20
    return train_bpe(corpus, vocab_size=400, min_frequency=2)


@SETTINGS
@given(TEXT)
def test_decode_inverts_encode_on_normalized_text(tokenizer, text):
    text = unicodedata.normalize("NFC", text).replace(EOT, "").replace(PAD, "")  # specials are not text
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.token_to_id(EOT) not in ids and tokenizer.token_to_id(PAD) not in ids


@SETTINGS
@given(TEXT, st.sampled_from(["NFC", "NFKC", "NFD", "NFKD"]))
def test_cleaning_never_raises_and_is_idempotent(text, form):
    cleaned, changed = clean_text(text, form)
    assert isinstance(cleaned, str) and set(changed) <= {
        "mojibake", "ansi_escapes", "overstrike", "control_chars", "unicode_normalized", "whitespace",
    }  # fmt: skip
    assert not CONTROL.search(cleaned) and "\x1b" not in cleaned
    assert cleaned == cleaned.strip() and "\n\n\n" not in cleaned
    assert unicodedata.is_normalized(form, cleaned)
    assert clean_text(cleaned, form) == (cleaned, [])  # a second pass finds nothing to do


@SETTINGS
@given(TEXT, st.sampled_from(["en", "zh"]))
def test_screening_quality_rules_and_pii_scrubbing_never_raise(text, lang):
    assert screen(text, max_bytes=200, max_binary_ratio=0.1) in (None, "too_large", "empty", "binary")
    cleaned, _ = clean_text(text)
    thresholds = {
        "min_words": 3, "max_words": 1000, "min_mean_word_length": 1, "max_mean_word_length": 12,
        "max_symbol_ratio": 0.25, "max_hash_ellipsis_ratio": 0.5, "max_digit_ratio": 0.3,
        "min_alphabetic_word_ratio": 0.6, "min_stop_words": 1, "line_rules_min_lines": 1,
        "max_bullet_line_ratio": 0.9, "max_ellipsis_line_ratio": 0.3, "min_punctuated_paragraph_ratio": 0.12,
        "punctuation_min_paragraphs": 1, "max_duplicate_line_ratio": 0.3, "max_duplicate_line_char_ratio": 0.2,
        "ngram_rules_min_words": 1, "max_top_ngram_char_ratio": {2: 0.2}, "max_duplicate_ngram_char_ratio": {5: 0.15},
        "bad_phrases": ["lorem ipsum"],
    }  # fmt: skip
    assert first_failure(TextStats(cleaned, lang), thresholds) in (None, *RULE_NAMES)
    kinds = {"emails": True, "ip_addresses": True, "phone_numbers": True}
    scrubbed, _ = scrub(cleaned, kinds)
    assert scrub(scrubbed, kinds) == (scrubbed, {})  # placeholders are never PII themselves
