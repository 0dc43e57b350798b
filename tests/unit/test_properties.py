"""Property-based tests (hypothesis): cleaning and tokenization on arbitrary Unicode, including
Chinese, emoji, combining marks, control characters and terminal escapes."""

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmpipe.cleaning import CONTROL, clean_documents, clean_text
from llmpipe.tokenizer import EOT, PAD, train_bpe

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
        "ansi_escapes", "overstrike", "control_chars", "unicode_normalized", "whitespace",
    }  # fmt: skip
    assert not CONTROL.search(cleaned) and "\x1b" not in cleaned
    assert cleaned == cleaned.strip() and "\n\n\n" not in cleaned
    assert unicodedata.is_normalized(form, cleaned)
    assert clean_text(cleaned, form) == (cleaned, [])  # a second pass finds nothing to do


@SETTINGS
@given(st.lists(TEXT, max_size=6))
def test_cleaning_documents_keeps_or_counts_every_document(texts):
    docs = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    kept, counts = clean_documents(docs, "NFC", min_chars=1, max_chars=200, dedup=True)
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped_"))
    assert len(kept) + dropped == len(docs)  # nothing vanishes without a count
    assert all(1 <= len(d["text"]) <= 200 for d in kept)
