"""Long texts become documents at natural boundaries, and splits can follow the corpus's own field
or a text's order (issue #22, traps 2 and 3)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmpipe.ingest.pieces import cut, size, split_document

from ..conftest import split_documents

PARAGRAPH = "It was a bright cold day in April. The clocks were striking thirteen.\n"
CHINESE = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"


def test_a_long_text_is_cut_at_paragraphs_first_and_adds_up_exactly():
    text = "\n".join(PARAGRAPH * 3 for _ in range(40))  # 40 paragraphs of 3 lines, blank lines between
    pieces = cut(text, 1000)
    assert "".join(pieces) == text
    assert all(size(p) <= 1000 for p in pieces)
    assert all(p.endswith("\n\n") for p in pieces[:-1])  # every cut at a paragraph break


def test_a_paragraph_too_long_is_cut_at_lines_then_sentences_then_characters():
    lines = PARAGRAPH * 30  # one paragraph, 30 lines
    assert all(p.endswith("\n") for p in cut(lines, 300)[:-1])
    sentences = PARAGRAPH.strip() * 20  # one line, sentences only
    pieces = cut(sentences, 150)
    assert "".join(pieces) == sentences and all(p.rstrip().endswith(".") for p in pieces[:-1])
    chinese = CHINESE * 100
    pieces = cut(chinese, 100)
    assert "".join(pieces) == chinese and all(size(p) <= 100 for p in pieces)
    assert all(p.endswith(("。", "，")) or p[-1] in CHINESE for p in pieces)
    assert "".join(cut("x" * 1000, 64)) == "x" * 1000  # no boundary at all: between characters


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("ab .\n。床"), max_size=400), st.integers(4, 64))
def test_pieces_always_add_up_and_fit(text, max_bytes):
    pieces = cut(text, max_bytes)
    assert "".join(pieces) == text
    assert all(size(p) <= max_bytes for p in pieces)


def test_pieces_keep_their_source_and_sort_in_text_order():
    doc = {"id": "book", "text": PARAGRAPH * 500, "source": "/data/book.txt", "lang": "en", "label": "book"}
    pieces = split_document(doc, 2000)
    assert len(pieces) > 10 and [p["part"] for p in pieces] == list(range(len(pieces)))
    assert sorted(p["id"] for p in pieces) == [p["id"] for p in pieces]
    assert {p["source"] for p in pieces} == {"/data/book.txt"}
    assert split_document(doc, None) == [doc] == split_document(doc, 10**6)


def test_a_position_split_keeps_each_texts_order():
    doc = {"id": "book", "text": PARAGRAPH * 1000, "source": "/data/book.txt", "lang": "en", "label": None}
    pieces = split_document(doc, 1000)
    splits = split_documents(pieces, 0.1, 0.1, "position")
    order = [p["part"] for name in ("train", "val", "test") for p in splits[name]]
    assert order == sorted(order)  # train is the start of the book, val the next tenth, test the end
    train_bytes = sum(size(p["text"]) for p in splits["train"])
    assert 0.78 < train_bytes / size(doc["text"]) < 0.82


def test_a_field_split_follows_the_corpus_and_names_a_document_without_one():
    docs = [{"id": str(i), "text": "x", "source": "f", "split": s} for i, s in enumerate(["train", "val", "test"])]
    assert {k: [d["id"] for d in v] for k, v in split_documents(docs, 0.05, 0.05, "field").items()} == {
        "train": ["0"],
        "val": ["1"],
        "test": ["2"],
    }
    with pytest.raises(ValueError, match="document '3' .* has split='dev'"):
        split_documents([*docs, {"id": "3", "text": "x", "source": "f", "split": "dev"}], 0.05, 0.05, "field")
