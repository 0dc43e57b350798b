"""Read a text corpus into documents: {id, text, source, lang, label}.

Formats (`ingest.format`):
  fortune  a folder of fortune files (Debian's `fortunes`, `fortunes-zh`): entries are separated by
           lines holding only `%`; the file name is the label (the topic or poem collection).
  jsonl    a folder of .jsonl files, one JSON object per line with a text field (`ingest.text_field`);
           `id`, `lang` and `label` are used when present, the file's stem is the default label.
  parquet  a folder of .parquet files with the same columns as jsonl.
  txt      a folder of .txt files, one document per file; the label is the file's stem.
  hf       a Hugging Face dataset: `ingest.source` is its name on the Hub (needs a network) or a
           builder such as `json` / `parquet` with `ingest.hf_data_files`; streamed, never held whole.

A record that cannot become a document (not UTF-8, not JSON, not an object, no text field) is not
an error: the readers yield it as a quarantine record {reason, source, raw} (see `bad`), and the
ingest stage writes those to data/quarantine/ingest.jsonl. Only an unreadable source stops ingest.
"""

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from llmpipe.schema import Ingest

FORMATS = ("fortune", "jsonl", "parquet", "txt", "hf")
# A line holding only `%` (and maybe trailing blanks). Files are split as bytes, before decoding, so
# one entry that is not UTF-8 is quarantined alone.
FORTUNE_SEPARATOR = re.compile(rb"^%[ \t\r]*$", re.MULTILINE)


def split_fortunes(data: bytes | str) -> list[bytes] | list[str]:
    """Entries of one fortune file, in order, without the `%` separator lines (bytes in, bytes out)."""
    if isinstance(data, str):
        return [e.decode("utf-8") for e in split_fortunes(data.encode("utf-8"))]
    return [e.strip(b"\n") for e in FORTUNE_SEPARATOR.split(data) if e.strip()]


def bad(reason: str, source: str, raw: bytes | str) -> dict:
    """A quarantine record: why, where (file:line or file:entry), and the raw content, with
    undecodable bytes written as \\x escapes so the record itself is valid UTF-8 JSON."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    return {"reason": reason, "source": source, "raw": raw}


def is_bad(record: dict) -> bool:
    return "reason" in record and "raw" in record


def guess_lang(text: str) -> str:
    """'zh' when most letters are CJK ideographs, else 'en'. A cheap stand-in for real language ID."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if unicodedata.name(c, "").startswith("CJK"))
    return "zh" if cjk / len(letters) > 0.3 else "en"


def fortune_files(folder: Path, exclude: list[str]) -> list[Path]:
    """The fortune text files of a folder: no index (.dat) files, no .u8 aliases, no sub-folders."""
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix in (".dat", ".u8") or path.name in exclude:
            continue
        files.append(path)
    return files


def read_fortunes(folder: Path, zh_files: list[str], exclude: list[str]) -> Iterator[dict]:
    for path in fortune_files(folder, exclude):
        lang = "zh" if path.name in zh_files else "en"
        for i, entry in enumerate(split_fortunes(path.read_bytes())):
            try:
                text = entry.decode("utf-8")
            except UnicodeDecodeError:
                yield bad("invalid_utf8", f"{path}:entry {i}", entry)
                continue
            yield {"id": f"{path.name}:{i:05d}", "text": text, "source": str(path), "lang": lang, "label": path.name}


def document(record: dict, text_field: str, default_id: str, source: str, default_label: str | None) -> dict:
    """A document from one record of a jsonl / parquet / Hugging Face corpus (or a quarantine
    record when it has no text)."""
    text = record.get(text_field)
    if not isinstance(text, str):
        return bad("missing_text", source, json.dumps(record, ensure_ascii=False, default=str))
    label = record.get("label")
    if label is None:  # absent, or a null in a column that other rows fill
        label = default_label
    return {
        "id": str(record.get("id") or default_id),
        "text": text,
        "source": source,
        "lang": record.get("lang") or guess_lang(text),
        "label": None if label is None else str(label),
    }


def read_jsonl(folder: Path, text_field: str) -> Iterator[dict]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                where = f"{path}:{lineno}"
                if not raw.strip():
                    continue  # a blank line (often the last one) is not a record
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    yield bad("invalid_utf8", where, raw.rstrip(b"\n"))
                    continue
                except json.JSONDecodeError:
                    yield bad("malformed_json", where, raw.rstrip(b"\n"))
                    continue
                if not isinstance(record, dict):
                    yield bad("not_an_object", where, raw.rstrip(b"\n"))
                    continue
                yield document(record, text_field, f"{path.stem}:{lineno:07d}", where, path.stem)


def read_parquet(folder: Path, text_field: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("*.parquet")):
        row = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):  # never the whole file in memory
            for record in batch.to_pylist():
                row += 1
                yield document(record, text_field, f"{path.stem}:{row:07d}", f"{path}:{row}", path.stem)


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
    for row, record in enumerate(stream, start=1):
        yield document(record, cfg.text_field, f"{name}:{row:09d}", f"{name}:{row}", None)


def read_txt(folder: Path) -> Iterator[dict]:
    for path in sorted(folder.glob("*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield bad("invalid_utf8", str(path), raw)
            continue
        yield {"id": path.stem, "text": text, "source": str(path), "lang": guess_lang(text), "label": path.stem}


def read_corpus(cfg: Ingest) -> Iterator[dict]:
    """Documents of the corpus that the ingest section describes."""
    fmt, text_field = cfg.format, cfg.text_field
    if fmt not in FORMATS:
        raise ValueError(f"ingest.format={fmt!r} is not one of {FORMATS}")
    if fmt == "hf":
        return read_hf(cfg)
    folder = Path(cfg.source)
    if not folder.is_dir():
        hint = " (install Debian's `fortunes` and `fortunes-zh`: make setup)" if fmt == "fortune" else ""
        raise ValueError(f"ingest.source={str(folder)!r} is not a readable folder{hint}")
    if fmt == "fortune":
        return read_fortunes(folder, list(cfg.zh_files), list(cfg.exclude_files))
    if fmt == "jsonl":
        return read_jsonl(folder, text_field)
    if fmt == "parquet":
        return read_parquet(folder, text_field)
    return read_txt(folder)
