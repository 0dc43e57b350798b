"""tokenize.split_by=position cuts inside a document: per file, the first 90 % of the bytes train,
the next 5 % validate, the last 5 % test, each cut at the line break nearest its byte, whatever the
file's size and however ingest cut it into pieces (issue #37, item 1)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from llmpipe.data.splits import SPLITS, Placement, by_position, split_of
from llmpipe.ingest.pieces import size, split_document

from ..conftest import split_documents

LINES = [f"Line {i} of the book, with a few words more on some lines{'.' * (i % 7)}\n" for i in range(4000)]


def book(n_bytes: int) -> str:
    """Distinct lines, whole, to about n_bytes."""
    text, total = [], 0
    for line in LINES:
        if total >= n_bytes:
            break
        text.append(line)
        total += size(line)
    return "".join(text)


def in_text_order(splits: dict[str, list[dict]]) -> list[dict]:
    """Every part, train then val then test, each split's in id order; asserts the ids say the same order."""
    parts = [doc for name in SPLITS for doc in sorted(splits[name], key=lambda d: d["id"])]
    ids = [doc["id"] for doc in parts]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    return parts


def assert_ends_near(splits: dict[str, list[dict]], total: int, tolerance: int, fractions=(0.9, 0.95)):
    """train ends within `tolerance` bytes of its share of `total`, and val of its."""
    train, val = (sum(size(d["text"]) for d in splits[name]) for name in ("train", "val"))
    assert abs(train - fractions[0] * total) <= tolerance, (train, total)
    assert abs(train + val - fractions[1] * total) <= tolerance, (train + val, total)


def test_a_five_kilobyte_text_in_one_document_splits_90_5_5_at_line_breaks():
    text = book(5000)
    splits = split_documents([{"id": "book", "text": text, "source": "/data/book.txt"}], 0.05, 0.05, "position")
    assert [[d["id"] for d in splits[name]] for name in SPLITS] == [["book/0"], ["book/1"], ["book/2"]]
    parts = in_text_order(splits)
    assert "".join(d["text"] for d in parts) == text  # nothing lost, nothing twice
    assert all(d["text"].endswith("\n") for d in parts)  # every cut after a line break
    assert_ends_near(splits, size(text), max(map(size, LINES)))


def test_a_split_smaller_than_a_piece_cuts_inside_the_pieces_in_text_order():
    """1.1 MB in pieces of 100 kB, as ingest cuts a book: 5 % is half a piece."""
    text = "".join(LINES) * 5
    assert size(text) > 1_100_000
    pieces = split_document({"id": "book", "text": text, "source": "/data/book.txt"}, 100_000)
    splits = split_documents(pieces, 0.05, 0.05, "position")
    assert all(splits[name] for name in SPLITS)
    parts = in_text_order(splits)
    assert "".join(d["text"] for d in parts) == text
    assert {d["part"] for d in splits["train"]} & {d["part"] for d in splits["val"]}  # a piece cut in two
    assert all(d["text"].endswith("\n") for d in parts)
    assert_ends_near(splits, size(text), max(map(size, LINES)))


def test_each_file_splits_on_its_own():
    docs = [{"id": f"{name}:{i:05d}", "text": LINES[i], "source": name} for name in ("a", "b") for i in range(100)]
    docs.append({"id": "c:00000", "text": book(3000), "source": "c"})
    splits = split_documents(docs, 0.1, 0.1, "position")
    for name in ("a", "b"):
        held = {split: [d for d in splits[split] if d["source"] == name] for split in SPLITS}
        assert [len(held[split]) for split in SPLITS] == [80, 10, 10]  # whole lines: no document is cut
        assert "".join(d["text"] for d in in_text_order(held)) == "".join(LINES[:100])
    assert [d["id"] for split in SPLITS for d in splits[split] if d["source"] == "c"] == [
        "c:00000/0",
        "c:00000/1",
        "c:00000/2",
    ]


def test_a_very_long_line_is_cut_at_a_space_and_a_text_without_spaces_between_characters():
    words = " ".join(f"word{i}" for i in range(2000))  # one line of 18 kB
    splits = split_documents([{"id": "a", "text": words, "source": "a"}], 0.05, 0.05, "position")
    parts = in_text_order(splits)
    assert "".join(d["text"] for d in parts) == words and all(d["text"].endswith(" ") for d in parts[:-1])
    assert_ends_near(splits, size(words), 12)
    chinese = "床前明月光疑是地上霜举头望明月低头思故乡" * 100  # 3 bytes a character, no space, no line break
    splits = split_documents([{"id": "z", "text": chinese, "source": "z"}], 0.05, 0.05, "position")
    parts = in_text_order(splits)
    assert "".join(d["text"] for d in parts) == chinese and len(parts) == 3
    assert_ends_near(splits, size(chinese), 3)


def test_a_cut_that_lands_on_a_documents_edge_leaves_it_whole():
    docs = [{"id": f"a:{i:05d}", "text": "x" * 99 + "\n", "source": "a"} for i in range(10)]  # 1,000 bytes
    docs[8]["text"] = "yy\n" + "y" * 96 + "\n"  # train ends at its byte 1: its start is the nearest cut
    docs[9]["text"] = "w" * 48 + "\n" + "w" * 50 + "\n"  # val ends at its byte 50: cut after the line break
    assert by_position(docs, 0.149, 0.05)["a:00008"] == (("train", 0), ("val", 1))
    splits = split_documents(docs, 0.149, 0.05, "position")
    assert [d["id"] for d in splits["train"]] == [f"a:{i:05d}" for i in range(8)]
    assert [d["id"] for d in splits["val"]] == ["a:00008", "a:00009/1"]
    assert [d["id"] for d in splits["test"]] == ["a:00009/2"] and splits["test"][0]["text"] == "w" * 50 + "\n"


def test_a_zero_fraction_leaves_its_split_empty():
    splits = split_documents([{"id": "a", "text": book(5000), "source": "a"}], 0.1, 0.0, "position")
    assert [len(splits[name]) for name in SPLITS] == [1, 1, 0]
    assert_ends_near(splits, size(book(5000)), max(map(size, LINES)), fractions=(0.9, 1.0))


def test_a_raw_document_is_cut_where_its_cleaned_record_is_cut_at_the_same_words():
    """clean.enabled=false: train takes the raw text before the cut, val and test the cleaned record's
    words after it, so that no word is both trained on and held out, and none is lost."""
    cleaned = book(5000)
    raw = cleaned.replace("\n", "  \r\n").replace("Line 6", "\n\n\nLine 6")  # what cleaning undoes
    doc = {"id": "a", "text": raw, "source": "a", "held_out": {"id": "a", "text": cleaned, "source": "a"}}
    splits = split_documents([doc], 0.05, 0.05, "position")
    assert [[d["id"] for d in splits[name]] for name in SPLITS] == [["a/0"], ["a/1"], ["a/2"]]
    assert "held_out" not in splits["train"][0] and raw.startswith(splits["train"][0]["text"])
    assert splits["val"][0]["text"].startswith("Line ") and cleaned.endswith(splits["test"][0]["text"])
    words = [w for name in SPLITS for d in splits[name] for w in d["text"].split()]
    assert words == cleaned.split()
    gone = split_documents([{**doc, "held_out": None}], 0.05, 0.05, "position")  # cleaning removed it
    assert [len(gone[name]) for name in SPLITS] == [1, 0, 0] and gone["train"][0]["text"] == splits["train"][0]["text"]
    parts = Placement.of([doc], 0.05, 0.05, "position").parts({**doc, "held_out": None})
    assert [(split, part is None) for split, part in parts] == [("train", False), ("val", True), ("test", True)]


def test_hash_and_field_splits_keep_documents_whole():
    doc = {"id": "a", "text": book(5000), "source": "a", "split": "val"}
    assert Placement.of([doc], 0.05, 0.05, "hash").parts(doc) == [(split_of("a", 0.05, 0.05), doc)]
    assert Placement.of([doc], 0.05, 0.05, "field").parts(doc) == [("val", doc)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(st.sampled_from("ab \n。床"), min_size=1, max_size=300), min_size=1, max_size=6),
    st.floats(0, 0.45),
    st.floats(0, 0.45),
)
def test_parts_always_add_up_in_text_order(texts, val, test):
    docs = [{"id": f"f:{i:05d}", "text": t, "source": "f"} for i, t in enumerate(texts)]
    parts = in_text_order(split_documents(docs, val, test, "position"))
    assert "".join(d["text"] for d in parts) == "".join(texts)
    assert all(d["text"] for d in parts)
