"""One book in one .txt file, split by position (issue #37, item 1): ingest, clean and tokenize on
books of 5 kB, 1.1 MB and 20 MB made of Debian's English fortunes run together, with the default
90/5/5. Each split is non-empty, the splits follow the text's order, and each ends within one line of
its share of the bytes: ingest's 100 kB pieces are cut where a split starts."""

import random

import pytest

from llmpipe.config import compose
from llmpipe.data.token_files import load_split_docs
from llmpipe.jsonl import iter_folder
from llmpipe.runner import run_stage
from llmpipe.stages import clean, ingest, tokenize

from .conftest import REPO
from .own_corpus import english_files, entries

SPLITS = ("train", "val", "test")


def fortunes_book(n_bytes: int) -> str:
    """Debian's English fortunes, paragraph after paragraph, to about n_bytes; past the first pass,
    each pass in its own seeded order, so that clean's near-dedup finds no two 100 kB pieces alike."""
    paragraphs = [text for name in english_files() for text in entries(name, min_chars=0)]
    book, size, shuffle = [], 0, random.Random(0)
    while size < n_bytes:
        for text in paragraphs:
            book.append(text + "\n\n")
            size += len(book[-1].encode("utf-8"))
            if size >= n_bytes:
                break
        shuffle.shuffle(paragraphs)
    return "".join(book)


@pytest.mark.parametrize("n_bytes", [5_000, 1_100_000, pytest.param(20_000_000, marks=pytest.mark.slow)])
def test_one_book_splits_90_5_5_by_bytes_in_text_order(n_bytes, tmp_path, monkeypatch, fortunes_installed):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    text = fortunes_book(n_bytes)
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    overrides = ["ingest.format=txt", f"ingest.source={tmp_path / 'book.txt'}", "tokenize.split_by=position"]
    overrides += ["tokenize.val_fraction=0.05", "tokenize.test_fraction=0.05"]  # the default, not tiny's 10 %
    (tmp_path / "params.yaml").write_text(compose(["experiment=tiny", *overrides], conf_dir=REPO / "conf"))
    metrics = {module.stage().name: run_stage(module.stage(), tmp_path) for module in (ingest, clean, tokenize)}
    assert metrics["ingest"]["cut_into_pieces"] == (n_bytes > 100_000)

    splits = metrics["tokenize"]["splits"]
    assert all(splits[name]["docs"] for name in SPLITS), splits
    parts = [sorted(load_split_docs(tmp_path / "data" / "tokens", name), key=lambda d: d["id"]) for name in SPLITS]
    ids = [doc["id"] for split in parts for doc in split]
    assert ids == sorted(ids)  # ids sort in text order: train, then val, then test
    cleaned = sorted(iter_folder(tmp_path / "data" / "clean"), key=lambda d: d["id"])
    assert "".join(doc["text"] for split in parts for doc in split) == "".join(doc["text"] for doc in cleaned)
    texts = {doc["id"]: doc["text"] for split in parts for doc in split}
    cut = [(a, b) for a, b in zip(ids, ids[1:], strict=False) if "/" in a and a.split("/")[0] == b.split("/")[0]]
    assert cut if n_bytes > 100_000 else len(cut) == 2  # pieces cut where val starts, or test, or both
    assert all(texts[before].endswith("\n") for before, _ in cut)  # each cut after a line break

    total = sum(split["bytes"] for split in splits.values())
    line = max(len(line.encode("utf-8")) + 1 for line in text.splitlines())
    assert abs(splits["train"]["bytes"] - 0.9 * total) <= line
    assert abs(splits["train"]["bytes"] + splits["val"]["bytes"] - 0.95 * total) <= line
