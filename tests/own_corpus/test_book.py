"""The README's second own-corpus recipe: one 2 MB English book in one file, split by position."""

import pytest

from llmpipe.data.token_files import load_split_docs

from ..conftest import tiny_dvc_project
from . import english_files, entries, metrics, readme_recipes, run_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory, fortunes_installed):
    return tiny_dvc_project(tmp_path_factory.mktemp("own"))


def test_a_two_megabyte_book_splits_by_position_in_order_and_registers_a_model(repo, tmp_path):
    paragraphs, size = [], 0
    for name in english_files():  # Debian's English fortunes, one after another: about 2.5 MB of prose and verse
        for text in entries(name, min_chars=0):
            if size < 2_000_000:
                paragraphs.append(text)
                size += len(text.encode()) + 2
    assert size >= 2_000_000, size
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    run_recipe(repo, readme_recipes()[1], "/data/book.txt", book)
    ingest = metrics(repo, "ingest")
    assert ingest["cut_into_pieces"] == 1 and ingest["docs"] >= 20 and ingest["capped"] == 0
    ids = {}
    for split in ("train", "val", "test"):
        docs = load_split_docs(repo / "data" / "tokens", split)
        assert docs, f"the {split} split is empty"
        ids[split] = sorted(doc["id"] for doc in docs)  # `<id>#<piece>`, cut as `<id>#<piece>/<n>`: text order
    assert ids["train"][-1] < ids["val"][0] <= ids["val"][-1] < ids["test"][0]  # in text order
    assert metrics(repo, "register")["version"]
    assert metrics(repo, "pretrain")["val_bpb"] > 0
