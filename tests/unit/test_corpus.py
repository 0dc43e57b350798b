import json
from collections import Counter
from dataclasses import replace

import pytest

from llmpipe.ingest.corpus import guess_lang, is_bad, read_corpus, split_fortunes

from ..conftest import typed_section


def test_split_fortunes_drops_separators_and_empty_entries():
    assert split_fortunes("one\nline\n%\ntwo\n%\n%\nthree\n") == ["one\nline", "two", "three"]


def test_guess_lang():
    assert guess_lang("床前明月光，疑是地上霜。") == "zh"
    assert guess_lang("The quick brown fox.") == "en"
    assert guess_lang("12345") == "en"


def test_guess_lang_of_a_book_in_one_record_reads_windows_of_it_in_flat_memory():
    import tracemalloc

    book = (
        "The preface is in English. " * 2000 + "床前明月光，疑是地上霜。举头望明月，低头思故乡。" * 200_000
    )  # 4.9M chars
    tracemalloc.start()
    assert guess_lang(book) == "zh"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # the windows it reads (1 MB as UTF-32 at most), never a list per character
    assert guess_lang("English only. " * 100_000) == "en"


def test_fortune_folder_skips_index_files_links_and_subfolders(tmp_path):
    (tmp_path / "computers").write_text("Bugs are features.\n%\nRTFM.\n")
    (tmp_path / "computers.dat").write_bytes(b"\x00\x01binary index")
    (tmp_path / "computers.u8").symlink_to(tmp_path / "computers")
    (tmp_path / "tang300").write_text("\x1b[32m《静夜思》\x1b[m\n床前明月光\n%\n")
    (tmp_path / "off").mkdir()
    docs = list(read_corpus(typed_section("ingest", source=tmp_path, format="fortune", zh_files=["tang300"])))
    assert [(d["id"], d["lang"], d["label"]) for d in docs] == [
        ("computers:00000", "en", "computers"),
        ("computers:00001", "en", "computers"),
        ("tang300:00000", "zh", "tang300"),
    ]


def test_jsonl_folder_and_bad_line_named(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "你好世界", "label": "x"}) + "\n" + json.dumps({"id": "k", "text": "hi"}) + "\n"
    )
    docs = list(read_corpus(typed_section("ingest", source=tmp_path, format="jsonl")))
    assert [(d["id"], d["lang"], d["label"]) for d in docs] == [("a:0000001", "zh", "x"), ("k", "en", None)]
    (tmp_path / "b.jsonl").write_text('{"text": 1}\n\n{"text": "fine"}\n')
    docs = list(read_corpus(typed_section("ingest", source=tmp_path, format="jsonl")))
    bad = [d for d in docs if is_bad(d)]
    assert bad == [{"reason": "missing_text", "source": f"{tmp_path / 'b.jsonl'}:1", "raw": '{"text": 1}'}]
    assert docs[-1]["id"] == "b:0000003" and docs[-1]["text"] == "fine"  # the blank line is skipped


def test_entries_in_another_encoding_are_decoded_exactly_and_unreadable_ones_quarantined_not_lost(tmp_path):
    poems = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。", "春眠不觉晓，处处闻啼鸟。"]
    (tmp_path / "gbk").write_bytes("\n%\n".join(poems).encode("gbk"))  # a whole file in GBK
    (tmp_path / "mixed").write_bytes("first entry\n%\ncaf\xe9 au lait\n%\nthird entry\n".encode("latin-1"))
    stats = Counter()
    docs = list(read_corpus(typed_section("ingest", source=tmp_path, format="fortune"), stats))
    assert [d.get("text") for d in docs] == [*poems, "first entry", None, "third entry"]
    assert sum(v for k, v in stats.items() if k.startswith("decoded/")) == 3  # the GBK entries, counted
    # one byte outside ASCII is no evidence of an encoding (Latin-1 "café" or Arabic "cafﻠ"): quarantined
    assert docs[4] == {"reason": "undecodable", "source": f"{tmp_path / 'mixed'}:entry 1", "raw": "caf\\xe9 au lait"}
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "doc.txt").write_bytes(b"\xff\xfe binary-ish")  # a UTF-16 mark, then an odd byte count
    [txt] = list(read_corpus(typed_section("ingest", source=tmp_path / "txt", format="txt")))
    assert txt["reason"] == "undecodable" and txt["source"].endswith("doc.txt")


def test_missing_source_and_unknown_format_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a readable folder"):
        read_corpus(typed_section("ingest", source=tmp_path / "nope", format="txt"))
    with pytest.raises(ValueError, match="ingest.format"):
        read_corpus(typed_section("ingest", source=tmp_path, format="docx"))


def test_parquet_folder_with_a_custom_text_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"body": ["床前明月光", "A fortune."], "label": ["poem", None]})
    pq.write_table(table, tmp_path / "part.parquet")
    cfg = typed_section("ingest", source=tmp_path, format="parquet")
    docs = list(read_corpus(replace(cfg, fields=replace(cfg.fields, text="body"))))
    assert [(d["id"], d["text"], d["lang"], d["label"]) for d in docs] == [
        ("part:0000001", "床前明月光", "zh", "poem"),
        ("part:0000002", "A fortune.", "en", None),
    ]


def test_hugging_face_dataset_through_a_local_builder(tmp_path):
    # The same code path as a dataset on the Hub, offline: the `json` builder over local files.
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello world", "label": 3}) + "\n" + json.dumps({"text": "你好世界"}) + "\n")
    cfg = {"source": "json", "format": "hf", "hf_data_files": str(data), "hf_split": "train"}
    docs = list(read_corpus(typed_section("ingest", **cfg)))
    assert [(d["id"], d["text"], d["lang"], d["label"]) for d in docs] == [
        ("json:000000001", "hello world", "en", "3"),
        ("json:000000002", "你好世界", "zh", None),
    ]
    with pytest.raises(ValueError, match="cannot open the Hugging Face dataset"):
        list(read_corpus(typed_section("ingest", **{**cfg, "hf_data_files": str(tmp_path / "missing.jsonl")})))
