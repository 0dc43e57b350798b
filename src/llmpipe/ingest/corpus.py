"""Read a text corpus into documents: {id, text, source, lang, label}.

`ingest.source` is a folder (read recursively) or one file; `ingest.format` says how to read it:
  auto     each file as what it is (llmpipe.ingest.formats: its extension, checked against its
           content): jsonl, json (an array of objects), parquet, csv / tsv (a header row; the text
           column is `ingest.fields.text`), fortune (entries between `%` lines), txt (the file is one
           document); `.gz` and `.zst` versions of each too. The default for your own corpus.
  fortune  Debian's `fortunes` / `fortunes-zh` layout: entries between lines holding only `%`; the
           file name is the label (topic or poem collection); `ingest.zh_files` are Chinese.
  jsonl, json, parquet, csv, tsv, txt
           every file must be of this format: one that is not fails, naming the file and what it
           looks like (a folder of .jsonl read as fortunes would otherwise become one document).
  hf       a Hugging Face dataset: `ingest.source` is its name on the Hub (needs a network) or a
           builder such as `json` / `parquet` with `ingest.hf_data_files`; streamed, never held whole.
Records with a text field take `id`, `lang` and `label` when present. A record without a label has
none (a shard's file name says nothing of its text), while a fortune or txt file's name is its
documents' label (Debian's fortune files are topics). Text files in another encoding than UTF-8
(GBK, GB18030, Big5, UTF-16 with a BOM, ...) are decoded exactly or not at all (formats.decode),
and counted (`ingest_stats`).

A record that cannot become a document (not decodable, not JSON, not an object, no text field, an
empty text) is not an error: the readers yield it as a quarantine record {reason, source, raw} (see
`bad`), and the ingest stage writes those to data/quarantine/ingest.jsonl. So is a file that
cannot be read (`formats.DamagedFile`: a .gz or .zst file cut short or damaged, a broken Parquet
file): quarantined whole, or from the line where it breaks (jsonl, read line by line: the lines
before it are kept). Every record of every format then passes `checked`: a text or field holding a
lone surrogate is quarantined, NULs are counted, and ids seen before are handled as
`ingest.duplicate_ids` says (llmpipe.ingest.duplicate_ids). Only an unreadable source, a file of
another format than the one asked for, or a duplicate id under `duplicate_ids=error` stops ingest.
"""

import codecs
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from llmpipe.data import quarantine
from llmpipe.ingest import formats
from llmpipe.ingest.duplicate_ids import DuplicateIds
from llmpipe.schema import Fields, Ingest

FORMATS = ("auto", *formats.FORMATS, "hf")
# A line holding only `%` (and maybe trailing blanks). Files are split as bytes, before decoding, so
# one entry that is not UTF-8 is quarantined alone.
FORTUNE_SEPARATOR = re.compile(rb"^%[ \t\r]*$", re.MULTILINE)
# Half of a UTF-16 pair: `json.loads` accepts "\ud800" alone, and a file name that is not UTF-8
# becomes "\udcff" (Python's surrogateescape); no UTF-8 file can hold one.
SURROGATE = re.compile("[\ud800-\udfff]")


def split_fortunes(data: bytes | str) -> list[bytes] | list[str]:
    """Entries of one fortune file, in order, without the `%` separator lines (bytes in, bytes out)."""
    if isinstance(data, str):
        return [e.decode("utf-8") for e in split_fortunes(data.encode("utf-8"))]
    return [e.strip(b"\n") for e in FORTUNE_SEPARATOR.split(data) if e.strip()]


def bad(reason: str, source: str, raw: bytes | str) -> dict:
    """A quarantine record: why (one of quarantine.INGEST), where (file:line or file:entry), and the
    raw content, with undecodable bytes written as \\x escapes and lone surrogates as \\u escapes, so
    the record itself is valid UTF-8 JSON."""
    assert reason in quarantine.INGEST, reason
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    return {"reason": reason, "source": utf8_safe(source), "raw": utf8_safe(raw)}


def utf8_safe(text: str) -> str:
    """The text with each lone surrogate written as its \\u escape (the way a JSON line holds it)."""
    if text.isascii() or not SURROGATE.search(text):
        return text
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def is_bad(record: dict) -> bool:
    return "reason" in record and "raw" in record


def guess_lang(text: str, window: int = 65536, windows: int = 4) -> str:
    """'zh' when more than 30 % of the letters are CJK ideographs, else 'en'. A cheap stand-in for real
    language ID. A text longer than `windows` x `window` characters (a book in one record) is judged
    on that many evenly spaced windows of it: time and memory stay flat whatever its length."""
    if len(text) > window * windows:
        step = (len(text) - window) // (windows - 1)
        text = "".join(text[i * step : i * step + window] for i in range(windows))
    letters = cjk = 0
    for char in text:
        if char.isalpha():
            letters += 1
            cjk += unicodedata.name(char, "").startswith("CJK")
    return "zh" if letters and cjk / letters > 0.3 else "en"


def fortune_files(folder: Path, exclude: list[str]) -> list[Path]:
    """The fortune text files of a folder: its corpus files (no index or alias files), none of its sub-folders'."""
    return [path for path in formats.corpus_files(folder, exclude) if path.parent == folder]


def read_fortune_file(path: Path, lang: str | None, stats: Counter) -> Iterator[dict]:
    """The entries of one fortune file; `lang` None: guessed per entry from its script. Entries are
    UTF-8, or, in a file where no entry is UTF-8 beyond ASCII, in the legacy encoding that the
    failing entries together reveal (formats.decode); any other entry is quarantined alone."""
    entries = split_fortunes(formats.read_bytes(path))
    texts = [utf8_or_none(e) for e in entries]
    legacy = None
    if None in texts and all(t is None or t.isascii() for t in texts):
        found = formats.decode(b"\n".join(e for e, t in zip(entries, texts, strict=True) if t is None))
        legacy = found[1] if found else None
    for i, (entry, text) in enumerate(zip(entries, texts, strict=True)):
        if text is None and legacy is not None:
            text = entry.decode(legacy)  # the failing entries together decoded exactly in it
            count_encoding(stats, legacy)
        if text is None:
            yield bad("undecodable", f"{path}:entry {i}", entry)
            continue
        doc = {"id": f"{path.name}:{i:05d}", "text": text, "source": str(path), "lang": lang or guess_lang(text)}
        yield {**doc, "label": label_of(path)}


def utf8_or_none(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def label_of(path: Path) -> str:
    """A file's default label: its name without the format and compression suffixes."""
    name = path.name
    for suffix in (*formats.COMPRESSED, *formats.EXTENSIONS):
        name = name.removesuffix(suffix)
    return name


def count_encoding(stats: Counter, encoding: str):
    if encoding != "utf-8":
        stats[f"decoded/{encoding}"] += 1


def document(record: dict, fields: Fields, default_id: str, source: str, default_label: str | None) -> dict:
    """A document from one record of a jsonl / json / parquet / csv / Hugging Face corpus (or a
    quarantine record when it has no text, or an empty one: nothing downstream can hold it)."""
    text = record.get(fields.text)
    if not isinstance(text, str):
        return bad("missing_text", source, json.dumps(record, ensure_ascii=False, default=str))
    if not text:
        return bad("empty", source, json.dumps(record, ensure_ascii=False, default=str))
    label = record.get(fields.label)
    if label is None:  # absent, or a null in a column that other rows fill
        label = default_label
    doc = {
        "id": str(record.get(fields.id) or default_id),
        "text": text,
        "source": source,
        "lang": record.get(fields.lang) or guess_lang(text),
        "label": None if label is None else str(label),
    }
    if record.get(fields.split) is not None:  # the corpus's own split (tokenize.split_by=field)
        doc["split"] = str(record[fields.split])
    return doc


def read_jsonl_file(path: Path, fields: Fields) -> Iterator[dict]:
    """The records of a JSON-lines file, a line at a time. Where a compressed file breaks, the whole
    lines before it are kept and the rest is one quarantine record at the line it broke in."""
    lineno = 0
    try:
        with formats.open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                if raw.strip():  # a blank line (often the last one) is not a record
                    yield jsonl_record(raw, path, lineno, fields)
    except formats.DamagedFile as err:
        yield bad(err.reason, f"{path}:{lineno + 1}", f"{err.detail}; the {lineno} lines before it are ingested")


def jsonl_record(raw: bytes, path: Path, lineno: int, fields: Fields) -> dict:
    where = f"{path}:{lineno}"
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return bad("invalid_utf8", where, raw.rstrip(b"\n"))
    except json.JSONDecodeError:  # an invalid escape ("\x", "\u12") too
        return bad("malformed_json", where, raw.rstrip(b"\n"))
    if not isinstance(record, dict):
        return bad("not_an_object", where, raw.rstrip(b"\n"))
    return document(record, fields, f"{label_of(path)}:{lineno:07d}", where, None)


def read_json_file(path: Path, fields: Fields) -> Iterator[dict]:
    raw = formats.read_bytes(path)  # a DamagedFile is read_file's to quarantine, not malformed JSON
    try:
        records = formats.json_records(raw)
    except (ValueError, UnicodeDecodeError) as err:
        yield bad("malformed_json", str(path), f"{type(err).__name__}: {err}")
        return
    for row, record in enumerate(records, start=1):
        where = f"{path}:{row}"
        if not isinstance(record, dict):
            yield bad("not_an_object", where, json.dumps(record, ensure_ascii=False, default=str))
            continue
        yield document(record, fields, f"{label_of(path)}:{row:07d}", where, None)


def read_parquet_file(path: Path, fields: Fields) -> Iterator[dict]:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    source = path if path.suffix == ".parquet" else io.BytesIO(formats.read_bytes(path))
    row = 0
    try:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=4096):  # never the whole file in memory
            for record in batch.to_pylist():
                row += 1
                yield document(record, fields, f"{label_of(path)}:{row:07d}", f"{path}:{row}", None)
    except (pa.ArrowException, OSError) as err:  # no footer (cut short), not Parquet, a corrupt page
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the system's (a disk error), not the file's: pyarrow's own OSErrors have no errno
        detail = f"not a readable Parquet file ({type(err).__name__}: {err}); the {row} rows before it are ingested"
        raise formats.DamagedFile(path, "damaged_file", detail) from err


def read_table_file(path: Path, fields: Fields, delimiter: str, stats: Counter) -> Iterator[dict]:
    """A csv / tsv file with a header row; the text column is `fields.text`."""
    import csv
    import io

    raw = formats.read_bytes(path)
    decoded = formats.decode(raw)
    if decoded is None:
        yield bad("undecodable", str(path), raw[:4096])
        return
    text, encoding = decoded
    count_encoding(stats, encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if fields.text not in (reader.fieldnames or []):
        raise ValueError(f"{path}: no column {fields.text!r} (ingest.fields.text); its columns: {reader.fieldnames}")
    for row, record in enumerate(reader, start=1):
        yield document(record, fields, f"{label_of(path)}:{row:07d}", f"{path}:{row + 1}", None)


def read_hf(cfg: Ingest) -> Iterator[dict]:
    import datasets

    name = cfg.source
    try:
        stream = datasets.load_dataset(
            name,
            cfg.hf_config,
            split=cfg.hf_split,
            data_files=cfg.hf_data_files,
            streaming=True,
        )
    except Exception as err:  # datasets raises many types: a missing dataset, no network, a bad split
        raise ValueError(
            f"ingest.source={name!r}: cannot open the Hugging Face dataset ({type(err).__name__}: {err})"
        ) from err
    row = 0
    try:
        for row, record in enumerate(stream, start=1):
            yield document(record, cfg.fields, f"{name}:{row:09d}", f"{name}:{row}", None)
    except Exception as err:  # the stream cannot go past a row it fails on (a lone surrogate in a JSON file...)
        raise ValueError(
            f"ingest.source={name!r}: the Hugging Face dataset fails after row {row} ({type(err).__name__}: "
            f"{err}): repair or remove that record in its files"
        ) from err


def read_txt_file(path: Path, stats: Counter) -> Iterator[dict]:
    raw = formats.read_bytes(path)
    decoded = formats.decode(raw)
    if decoded is None:
        yield bad("undecodable", str(path), raw)
        return
    text, encoding = decoded
    count_encoding(stats, encoding)
    if not text:
        yield bad("empty", str(path), raw)
        return
    yield {"id": label_of(path), "text": text, "source": str(path), "lang": guess_lang(text), "label": label_of(path)}


def read_file(path: Path, kind: str, cfg: Ingest, stats: Counter) -> Iterator[dict]:
    """The records of one file read as `kind` (formats.kind: its format, or `empty`). A file that
    breaks (formats.DamagedFile) is quarantined from there: whole, but for jsonl and Parquet, whose
    readers keep the records before the damage. The other formats are read whole (an encoding is
    guessed from all of a file, a JSON array needs its end), so nothing of a broken one is trusted."""
    if kind == "empty":
        yield bad("empty", str(path), b"")
        return
    stats[f"files/{kind}"] += 1
    try:
        yield from read_format(path, kind, cfg, stats)
    except formats.DamagedFile as err:
        yield bad(err.reason, str(path), err.detail)


def read_format(path: Path, fmt: str, cfg: Ingest, stats: Counter) -> Iterator[dict]:
    if fmt == "fortune":  # Debian's layout names its Chinese files; elsewhere each entry's script decides
        lang = "zh" if path.name in cfg.zh_files else ("en" if cfg.format == "fortune" else None)
        return read_fortune_file(path, lang, stats)
    if fmt == "jsonl":
        return read_jsonl_file(path, cfg.fields)
    if fmt == "json":
        return read_json_file(path, cfg.fields)
    if fmt == "parquet":
        return read_parquet_file(path, cfg.fields)
    if fmt in ("csv", "tsv"):
        return read_table_file(path, cfg.fields, "," if fmt == "csv" else "\t", stats)
    return read_txt_file(path, stats)


def read_corpus(cfg: Ingest, stats: Counter | None = None) -> Iterator[dict]:
    """Documents (and quarantine records) of the corpus that the ingest section describes; `stats`
    counts files per format, files or entries decoded from an encoding other than UTF-8, texts with
    a NUL and records whose id an earlier record has."""
    fmt, stats = cfg.format, Counter() if stats is None else stats
    if fmt not in FORMATS:
        raise ValueError(f"ingest.format={fmt!r} is not one of {FORMATS}")
    if fmt == "hf":
        return checked(lambda counts: read_hf(cfg), cfg.duplicate_ids, stats)
    files = source_files(cfg)
    kinds = []
    for path in files:  # every file's format is settled before any is read: a wrong one stops at once
        try:
            kinds.append(formats.kind(path, fmt))
        except formats.DamagedFile as err:  # no byte of it decompresses: quarantined in its turn
            kinds.append(bad(err.reason, str(path), err.detail))

    def records(counts: Counter) -> Iterator[dict]:
        for path, kind in zip(files, kinds, strict=True):
            yield from ([kind] if isinstance(kind, dict) else read_file(path, kind, cfg, counts))

    return checked(records, cfg.duplicate_ids, stats)


def source_files(cfg: Ingest) -> list[Path]:
    source = Path(cfg.source)
    if source.is_file():
        return [source]
    if source.is_dir():
        if cfg.format == "fortune":
            return fortune_files(source, cfg.exclude_files)
        return formats.corpus_files(source, cfg.exclude_files)
    hint = " (install Debian's `fortunes` and `fortunes-zh`: make setup)" if cfg.format == "fortune" else ""
    raise ValueError(f"ingest.source={str(source)!r} is not a readable folder or file{hint}")


def checked(records: Callable[[Counter], Iterator[dict]], duplicate_ids: str, stats: Counter) -> Iterator[dict]:
    """Every record of the corpus, whatever its format, as `records(stats)` gives them, checked: a
    document with a lone surrogate in any of its strings is quarantined (invalid_unicode), texts
    with a NUL are counted, and an id seen before is renamed, quarantined or stops ingest."""

    def first_source(doc_id: str) -> str | None:  # reads the corpus again: for the error only
        again = (r for r in records(Counter()) if not is_bad(r) and r["id"] == doc_id)
        return next((r["source"] for r in again), None)

    ids = DuplicateIds(duplicate_ids, first_source)
    for record in records(stats):
        yield record if is_bad(record) else checked_document(record, ids, stats)
    stats["duplicate_ids"] = ids.found
    ids.report()


def checked_document(doc: dict, ids: DuplicateIds, stats: Counter) -> dict:
    """The document (under a new id where `ids` renames it), or its quarantine record."""
    # A lone surrogate is not repaired: it is half of a character that is lost (an emoji, a rare CJK
    # character), and U+FFFD in its place would be text that was never there. The quarantine keeps
    # it as the \u escape it came as.
    if any(isinstance(v, str) and not v.isascii() and SURROGATE.search(v) for v in doc.values()):
        return bad("invalid_unicode", doc["source"], json.dumps(doc, ensure_ascii=False))
    doc_id = ids.check(doc["id"], doc["source"])
    if doc_id is None:
        return bad("duplicate_id", doc["source"], json.dumps(doc, ensure_ascii=False))
    # A NUL is kept, and counted: JSON lines hold it (as \u0000), clean removes a text with one as
    # binary (cleaning.screen), and with clean off the byte-level tokenizer encodes it as a byte.
    stats["texts_with_nul"] += "\x00" in doc["text"]
    return doc if doc_id == doc["id"] else {**doc, "id": doc_id}
