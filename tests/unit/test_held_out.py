"""clean.enabled=false: tokenize trains on raw text and holds out the cleaned records."""

from llmpipe.data.splits import as_split

CLEANED = {"id": "a:1", "text": "Café.", "lang": "fr", "label": "a", "source": "s"}
RAW = {"id": "a:1", "text": "\x1b[1mCafÃ©.\x1b[0m", "lang": "en", "label": "a", "source": "s", "held_out": CLEANED}


def test_a_raw_document_trains_raw_and_is_held_out_cleaned():
    assert as_split(RAW, "train") == {k: v for k, v in RAW.items() if k != "held_out"}
    assert as_split(RAW, "val") == CLEANED and as_split(RAW, "test") == CLEANED


def test_a_document_cleaning_removed_is_not_held_out_and_a_cleaned_one_goes_as_it_is():
    removed = {**RAW, "held_out": None}
    assert as_split(removed, "val") is None and as_split(removed, "train")["text"] == RAW["text"]
    assert as_split(CLEANED, "val") is CLEANED and as_split(CLEANED, "train") is CLEANED
