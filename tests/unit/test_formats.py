"""Bring your own corpus: every common file format and text encoding is read as what it is, and a
file of another format than the one asked for stops ingest naming it (issue #22, traps 1, 5, 6)."""

import codecs
import csv
import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmpipe.ingest import formats
from llmpipe.ingest.corpus import read_corpus

from ..conftest import typed_section

POEM = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
TRADITIONAL = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"  # Big5 holds traditional characters
SAYING = "A journey of a thousand miles begins with a single step."


def ingest(source, fmt="auto", **keys):
    stats = Counter()
    records = list(read_corpus(typed_section("ingest", source=str(source), format=fmt, **keys), stats))
    return records, stats


def test_auto_reads_every_format_as_what_it_is(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": SAYING, "label": "proverb"}) + "\n")
    (tmp_path / "b.json").write_text(json.dumps([{"text": POEM, "id": "li-bai"}]))
    pq.write_table(pa.table({"text": ["From a parquet file."]}), tmp_path / "c.parquet")
    with (tmp_path / "d.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], ["A row, with a comma.", "csv"]])
    (tmp_path / "e.tsv").write_text("label\ttext\ntsv\tTabs between columns.\n")
    (tmp_path / "f").write_text("First entry.\n%\nSecond entry.\n%\n")  # fortune style, no extension
    (tmp_path / "g.txt").write_text("A whole book in one file.\n\nIts second paragraph.\n")
    (tmp_path / "h.jsonl.gz").write_bytes(gzip.compress(json.dumps({"text": "Compressed."}).encode() + b"\n"))
    records, stats = ingest(tmp_path)
    texts = {r["text"] for r in records}
    assert texts == {
        SAYING, POEM, "From a parquet file.", "A row, with a comma.", "Tabs between columns.", "First entry.",
        "Second entry.", "A whole book in one file.\n\nIts second paragraph.\n", "Compressed.",
    }  # fmt: skip
    assert stats["files/jsonl"] == 2 and stats["files/fortune"] == 1 and stats["files/tsv"] == 1
    by_text = {r["text"]: r for r in records}
    assert by_text[POEM]["id"] == "li-bai" and by_text[POEM]["lang"] == "zh"
    assert by_text["A row, with a comma."]["label"] == "csv" and by_text[SAYING]["label"] == "proverb"
    assert by_text["Compressed."]["label"] is None  # a record without a label has none (not its shard's name)
    assert (
        by_text["First entry."]["label"] == "f"
        and by_text["A whole book in one file.\n\nIts second paragraph.\n"]["label"] == "g"
    )  # a fortune or txt file's name is its label


def test_a_format_that_does_not_match_a_file_stops_naming_it(tmp_path):
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": SAYING}) + "\n")
    with pytest.raises(ValueError, match=r"docs.jsonl looks like jsonl, not fortune .*ingest.format=auto"):
        ingest(tmp_path, "fortune")  # the default format on a user's folder
    (tmp_path / "book.txt").write_text("Not JSON at all.\n")
    with pytest.raises(ValueError, match=r"book.txt looks like txt, not jsonl"):
        ingest(tmp_path, "jsonl")  # was: silently skipped


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "big5", "utf-16", "utf-8-sig"])
def test_chinese_text_in_legacy_encodings_is_decoded_exactly_and_counted(tmp_path, encoding):
    text = (
        (TRADITIONAL if encoding == "big5" else POEM) + "\n" + "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。\n" * 3
    )
    if encoding == "big5":
        text = text.replace("觉晓", "覺曉").replace("处处闻啼鸟", "處處聞啼鳥").replace("夜来风雨声", "夜來風雨聲")
    (tmp_path / "poems.txt").write_bytes(text.encode(encoding))
    [doc], stats = ingest(tmp_path)
    assert doc["text"] == text and doc["lang"] == "zh"  # byte-exact round trip of the decoded text
    name = {"utf-8-sig": "utf-8", "utf-16": "utf-16"}.get(encoding)
    if name == "utf-8":
        assert not [k for k in stats if k.startswith("decoded/")]
    else:
        [(key, count)] = [(k, v) for k, v in stats.items() if k.startswith("decoded/")]
        assert count == 1 and codecs.lookup(key.removeprefix("decoded/")).name in {
            codecs.lookup(e).name for e in ("gbk", "gb18030", "big5", "big5hkscs", "cp950", "utf-16", "utf_16_le")
        }


def test_bytes_that_no_encoding_reads_exactly_are_quarantined(tmp_path):
    (tmp_path / "noise.txt").write_bytes(bytes(range(256)) * 8)
    [record], _ = ingest(tmp_path)
    assert record["reason"] == "undecodable" and record["source"].endswith("noise.txt")


def test_an_empty_text_is_quarantined_as_empty_not_lost(tmp_path):
    lines = [json.dumps({"text": ""}), json.dumps({"text": SAYING})]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    records, _ = ingest(tmp_path)
    assert [r.get("reason") for r in records] == ["empty", None]


def test_sniffing_reads_only_the_start_of_a_file(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text((json.dumps({"text": SAYING}) + "\n") * 20_000)
    assert path.stat().st_size > 10 * formats.SNIFF_BYTES and formats.detect(path) == "jsonl"
