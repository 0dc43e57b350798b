"""Faults in a corpus that ingest must survive (issue #38, items 1-3): damaged compressed files,
text that no UTF-8 file can hold, and records that share an id. Each is quarantined, counted or
stopped with a message naming the file and the line, never a traceback, and the rest of the corpus
comes through."""

import csv
import gzip
import io
import json
import logging
import tracemalloc
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from llmpipe.data import quarantine as reasons
from llmpipe.ingest.corpus import is_bad, read_corpus
from llmpipe.ingest.duplicate_ids import DuplicateIds
from llmpipe.runner import Sections
from llmpipe.stages import ingest

from ..conftest import default_params_text, typed_section

FORMATS = ("jsonl", "json", "csv", "txt", "fortune", "parquet")


def content(fmt: str, words: str) -> bytes:
    """A small, good file of `fmt` whose texts all hold `words`."""
    texts = [f"{words} number {i}." for i in range(3)]
    if fmt == "jsonl":
        return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    if fmt == "json":
        return json.dumps([{"text": t} for t in texts]).encode()
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([["text"], *([t] for t in texts)])
        return out.getvalue().encode()
    if fmt == "fortune":
        return "\n%\n".join(texts).encode() + b"\n"
    if fmt == "parquet":
        out = io.BytesIO()
        pq.write_table(pa.table({"text": texts}), out)
        return out.getvalue()
    return " ".join(texts).encode()  # txt: the file is one document


def compress(data: bytes, kind: str) -> bytes:
    return gzip.compress(data, mtime=0) if kind == "gz" else zstandard.ZstdCompressor().compress(data)


def damage(data: bytes, kind: str, how: str) -> bytes:
    """A compressed file, damaged: its first block or frame header made invalid, cut in half, emptied,
    or with a wrong magic number."""
    data = bytearray(data)
    if how == "bad_frame":  # gzip: block type 11 (reserved) in the first deflate block; zstd: a reserved bit
        data[10 if kind == "gz" else 4] |= 0b110 if kind == "gz" else 0x08
    elif how == "truncated":
        del data[len(data) // 2 :]
    elif how == "empty":
        data.clear()
    else:
        data[:4] = b"NOPE"
    return bytes(data)


def file_name(fmt: str, label: str) -> str:
    return f"{label}.{fmt}" if fmt != "fortune" else label  # a fortune file has no extension


def ingest_folder(source, fmt="auto", **keys):
    stats = Counter()
    records = list(read_corpus(typed_section("ingest", source=str(source), format=fmt, **keys), stats))
    return [r for r in records if not is_bad(r)], [r for r in records if is_bad(r)], stats


def reason_of(how: str) -> str:
    return "truncated_file" if how in ("truncated", "empty") else "damaged_file"


@pytest.mark.parametrize("kind", ["gz", "zst"])
@pytest.mark.parametrize("how", ["bad_frame", "truncated", "empty", "wrong_magic"])
def test_each_damaged_compressed_file_is_quarantined_and_the_rest_of_the_corpus_ingested(tmp_path, kind, how):
    for fmt in FORMATS:  # a damaged and a good compressed file of every format, and a plain one
        (tmp_path / f"{file_name(fmt, 'bad')}.{kind}").write_bytes(
            damage(compress(content(fmt, "Lost"), kind), kind, how)
        )
        (tmp_path / f"{file_name(fmt, 'good')}.{kind}").write_bytes(compress(content(fmt, f"Good {fmt}"), kind))
        (tmp_path / file_name(fmt, "plain")).write_bytes(content(fmt, f"Plain {fmt}"))
    docs, quarantined, _ = ingest_folder(tmp_path)
    by_file = {}
    for q in quarantined:
        by_file.setdefault(q["source"].split(":")[0], []).append(q["reason"])
    for fmt in FORMATS:
        bad_file = str(tmp_path / f"{file_name(fmt, 'bad')}.{kind}")
        assert reason_of(how) in by_file.pop(bad_file), (fmt, by_file)
    assert not by_file  # nothing else was quarantined
    texts = {d["text"] for d in docs}
    for fmt in FORMATS:
        for words in (f"Good {fmt}", f"Plain {fmt}"):
            expected = {f"{words} number {i}." for i in range(3)}
            assert expected <= texts or fmt == "txt" and " ".join(sorted(expected)) in texts, (fmt, words)
    assert not any("Lost" in t for t in texts) or how == "truncated"  # a truncated jsonl keeps whole lines


@pytest.mark.parametrize("kind", ["gz", "zst"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_damaged_file_is_quarantined_when_the_format_is_named_too(tmp_path, kind, fmt):
    (tmp_path / f"{file_name(fmt, 'bad')}.{kind}").write_bytes(
        damage(compress(content(fmt, "Lost"), kind), kind, "wrong_magic")
    )
    (tmp_path / f"{file_name(fmt, 'good')}.{kind}").write_bytes(compress(content(fmt, "Kept"), kind))
    docs, [quarantined], _ = ingest_folder(tmp_path, fmt)
    assert quarantined["reason"] == "damaged_file" and quarantined["source"].endswith(f"{file_name(fmt, 'bad')}.{kind}")
    assert docs and all("Kept" in d["text"] for d in docs)


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_truncated_jsonl_file_keeps_the_lines_before_the_damage_and_names_the_line(tmp_path, kind):
    lines = [json.dumps({"text": f"Line {i}: {i * 7919 % 10007} and {i * 104729 % 1009}."}) for i in range(20_000)]
    whole = compress(("\n".join(lines) + "\n").encode(), kind)
    path = tmp_path / f"part.jsonl.{kind}"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    docs, [quarantined], _ = ingest_folder(tmp_path)
    read = len(docs)
    assert 1000 < read < len(lines)  # most of what was there before the cut
    assert [d["text"] for d in docs] == [json.loads(line)["text"] for line in lines[:read]]  # whole lines, in order
    assert quarantined["reason"] == "truncated_file" and quarantined["source"] == f"{path}:{read + 1}"
    assert f"the {read} lines before it are ingested" in quarantined["raw"]


def test_a_damaged_parquet_file_is_quarantined_after_the_rows_before_the_damage(tmp_path):
    out = io.BytesIO()
    texts = [f"Row {i}: {i * 7919 % 10007}." for i in range(6000)]
    pq.write_table(pa.table({"text": texts}), out, row_group_size=500)
    data = bytearray(out.getvalue())
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # no footer: nothing can be read
    data[len(data) * 3 // 4 : len(data) * 3 // 4 + 500] = b"\xff" * 500  # a corrupt page in a late row group
    (tmp_path / "page.parquet").write_bytes(data)
    docs, quarantined, _ = ingest_folder(tmp_path)
    assert {(q["reason"], q["source"]) for q in quarantined} == {
        ("damaged_file", str(tmp_path / "cut.parquet")),
        ("damaged_file", str(tmp_path / "page.parquet")),
    }
    assert 0 < len(docs) < 6000 and [d["text"] for d in docs] == texts[: len(docs)]  # the batches before it
    assert f"the {len(docs)} rows before it are ingested" in next(
        q["raw"] for q in quarantined if "page" in q["source"]
    )


def test_a_compressed_file_holding_nothing_is_quarantined_as_empty_not_refused(tmp_path):
    (tmp_path / "nothing.jsonl.gz").write_bytes(gzip.compress(b""))  # a valid gzip stream of no bytes
    (tmp_path / "some.jsonl").write_text(json.dumps({"text": "Something."}) + "\n")
    docs, [quarantined], _ = ingest_folder(tmp_path, "jsonl")  # was: "looks like txt, not jsonl"
    assert quarantined == {"reason": "empty", "source": str(tmp_path / "nothing.jsonl.gz"), "raw": ""}
    assert [d["text"] for d in docs] == ["Something."]


def test_invalid_unicode_is_quarantined_with_file_and_line_and_a_nul_is_kept_and_counted(tmp_path):
    lines = {  # line -> (what ingest makes of it)
        1: ('{"text": "Good text."}', None),
        2: ('{"text": "A lone surrogate \\ud800 here."}', "invalid_unicode"),
        3: ('{"text": "Half a pair \\ud83d only."}', "invalid_unicode"),
        4: ('{"text": "A whole pair \\ud83d\\ude00 is an emoji."}', None),
        5: ('{"text": "An invalid escape \\x41."}', "malformed_json"),
        6: ('{"text": "A short escape \\u12."}', "malformed_json"),
        7: ('{"text": "A NUL \\u0000 inside."}', None),
        8: ('{"text": "A bad id.", "id": "k\\udc80"}', "invalid_unicode"),
        9: ('{"text": "A bad label.", "label": "\\udfff"}', "invalid_unicode"),
    }
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(line for line, _ in lines.values()) + "\n")
    (tmp_path / "array.json").write_text('[{"text": "Fine."}, {"text": "Not \\udbff fine."}]')
    docs, quarantined, stats = ingest_folder(tmp_path)
    assert {q["source"]: q["reason"] for q in quarantined} == {
        **{f"{path}:{n}": reason for n, (_, reason) in lines.items() if reason},
        f"{tmp_path / 'array.json'}:2": "invalid_unicode",
    }
    assert [d["text"] for d in docs] == ["Fine.", "Good text.", "A whole pair 😀 is an emoji.", "A NUL \x00 inside."]
    assert stats["texts_with_nul"] == 1
    surrogate = next(q for q in quarantined if q["source"] == f"{path}:2")
    assert "\\ud800" in surrogate["raw"]  # as the escape it came as
    for record in docs + quarantined:  # all of it can be written to a UTF-8 file: ingest's writes cannot fail
        json.dumps(record, ensure_ascii=False).encode("utf-8")


def test_a_hugging_face_dataset_that_fails_on_a_row_names_it(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "fine"}\n{"text": "bad \\ud800"}\n')
    cfg = typed_section("ingest", source="json", format="hf", hf_data_files=str(data), hf_split="train")
    with pytest.raises(ValueError, match=r"ingest.source='json': the Hugging Face dataset fails after row 0"):
        list(read_corpus(cfg))  # the json builder refuses the whole file: the error says which source


def duplicate_corpus(tmp_path):
    """Three files; `k` is in a.jsonl:1 and b.jsonl:2, and c.jsonl:1 holds a real `k#2`."""
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "k", "text": "First k."}) + "\n")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"id": "j", "text": "Only j."}) + "\n" + json.dumps({"id": "k", "text": "Second k."}) + "\n"
    )
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "k#2", "text": "A real k#2."}) + "\n")


def test_duplicate_ids_are_renamed_to_ids_no_record_has(tmp_path, caplog):
    duplicate_corpus(tmp_path)
    with caplog.at_level(logging.WARNING, logger="llmpipe"):
        docs, quarantined, stats = ingest_folder(tmp_path, duplicate_ids="rename")
    assert [(d["id"], d["text"]) for d in docs] == [
        ("k", "First k."), ("j", "Only j."), ("k#2", "Second k."), ("k#2#2", "A real k#2."),
    ]  # fmt: skip  # the real k#2 came after the renamed one: renamed in its turn, nothing shares an id
    assert not quarantined and stats["duplicate_ids"] == 2
    assert "records whose id an earlier record has: 2" in caplog.text
    assert f"'k' ({tmp_path / 'b.jsonl'}:2)" in caplog.text and "ingest.duplicate_ids=rename" in caplog.text


def test_a_rename_counts_past_an_id_that_a_record_already_holds(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": f"Record {n}."}) + "\n" for n, i in enumerate(["k", "k#2", "k", "k"]))
    )
    docs, _, _ = ingest_folder(tmp_path, duplicate_ids="rename")
    assert [d["id"] for d in docs] == ["k", "k#2", "k#3", "k#4"]


def test_duplicate_ids_keep_first_quarantines_the_later_records(tmp_path):
    duplicate_corpus(tmp_path)
    docs, [quarantined], stats = ingest_folder(tmp_path, duplicate_ids="keep_first")
    assert [d["id"] for d in docs] == ["k", "j", "k#2"]
    assert quarantined["reason"] == "duplicate_id" and quarantined["source"] == f"{tmp_path / 'b.jsonl'}:2"
    assert json.loads(quarantined["raw"])["text"] == "Second k."  # nothing lost: the record is in the quarantine
    assert stats["duplicate_ids"] == 1


def test_duplicate_ids_error_names_the_id_both_sources_and_the_setting(tmp_path):
    duplicate_corpus(tmp_path)
    with pytest.raises(ValueError) as caught:
        ingest_folder(tmp_path, duplicate_ids="error")
    message = str(caught.value)
    assert "'k'" in message and f"{tmp_path / 'a.jsonl'}:1" in message and f"{tmp_path / 'b.jsonl'}:2" in message
    assert "ingest.duplicate_ids=rename" in message


def test_a_hugging_face_dataset_goes_through_the_same_duplicate_check(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": "x", "text": t}) + "\n" for t in ("One.", "Two.")))
    cfg = typed_section("ingest", source="json", format="hf", hf_data_files=str(data), hf_split="train")
    assert [d["id"] for d in read_corpus(cfg)] == ["x", "x#2"]  # the default: rename


def test_the_id_check_holds_a_small_digest_per_id_whatever_its_length():
    ids = DuplicateIds("keep_first", lambda doc_id: None)
    tracemalloc.start()
    for n in range(20_000):
        assert ids.check(f"{n:06d}" + "x" * 1000, "here") is not None  # 20 MB of ids
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4_000_000, peak  # a 64-bit digest each (about 80 bytes in a set), not the id


def test_the_ingest_stage_counts_add_up_on_a_corpus_with_every_fault(tmp_path):
    source = tmp_path / "corpus"
    source.mkdir()
    lines = [json.dumps({"id": f"d{i}", "text": f"Document {i} of the corpus."}) for i in range(3000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    (source / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (source / "broken.jsonl.zst").write_bytes(b"NOPE, not zstd")
    (source / "dups.jsonl").write_text(
        json.dumps({"id": "d0", "text": "Another d0."}) + '\n{"text": "Lone \\ud800."}\n{"text": "NUL \\u0000."}\n'
    )
    params = yaml.safe_load(default_params_text())
    params["ingest"] |= {
        "source": str(source), "format": "auto", "duplicate_ids": "keep_first", "max_docs_per_file": None,
    }  # fmt: skip
    metrics = ingest.run(Sections(params, ["ingest"]), tmp_path)
    kept = sum(1 for p in (tmp_path / "data" / "raw").glob("*.jsonl") for _ in p.open(encoding="utf-8"))
    quarantine = [json.loads(line) for line in (tmp_path / "data" / "quarantine" / "ingest.jsonl").open()]
    assert {reason: n for reason, n in metrics["quarantined"].items() if n} == {
        "truncated_file": 1, "damaged_file": 1, "duplicate_id": 1, "invalid_unicode": 1,
    }  # fmt: skip
    assert list(metrics["quarantined"]) == list(reasons.INGEST)  # every reason, 0 included
    assert len(quarantine) == sum(metrics["quarantined"].values()) == 4
    read_lines = int(next(q for q in quarantine if q["reason"] == "truncated_file")["source"].rsplit(":", 1)[1]) - 1
    assert kept == metrics["docs"] == read_lines + 1  # the whole lines before the cut, and the NUL text
    assert metrics["duplicate_ids"] == 1 and metrics["texts_with_nul"] == 1
