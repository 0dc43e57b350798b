"""What a corpus file is and how its bytes become text: the format of each file (by its extension,
checked against its content), transparent gzip and zstd decompression, and the text encoding.

Formats: jsonl (one JSON object per line), json (one array of objects), parquet, csv and tsv (a
header row naming the columns), fortune (entries between lines holding only `%`) and txt (the file
is one document). `.gz` and `.zst` versions of each are read as the file inside.

Encodings: UTF-8 (with or without a byte-order mark) and UTF-16/32 with a byte-order mark are read as
such; anything else is detected by charset-normalizer (GBK, GB18030, Big5, Shift-JIS, Latin-1, ...)
and accepted only when the decoded text encodes back to exactly the same bytes, so a wrong guess
can never alter the text silently.
"""

import codecs
import gzip
import json
from pathlib import Path

FORMATS = ("jsonl", "json", "parquet", "csv", "tsv", "fortune", "txt")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
    ".text": "txt",
    ".md": "txt",
}
COMPRESSED = (".gz", ".zst")
SKIPPED_SUFFIXES = (".dat", ".u8")  # a fortune folder's index files and its aliases
SNIFF_BYTES = 64 * 1024  # how much of a file its content check reads
# An encoding is guessed only from this many bytes outside ASCII: fewer fit too many code pages
# equally well ("caf\xe9" is Latin-1 "café" or Arabic "cafﻠ"), and a wrong guess is worse than none.
MIN_GUESS_BYTES = 32
BOMS = [  # longest first: the UTF-32 marks begin with the UTF-16 ones
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def inner_suffix(path: Path) -> str:
    """The suffix that names the format: `.jsonl` for both a.jsonl and a.jsonl.gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it is .gz or .zst."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if suffix == ".zst":
        import zstandard

        with path.open("rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    return path.read_bytes()


def open_binary(path: Path):
    """A binary stream of the file's (decompressed) bytes, read as it goes: for line-by-line formats."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".zst":
        import io

        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True))
    return path.open("rb")


def head(path: Path) -> bytes:
    with open_binary(path) as f:
        return f.read(SNIFF_BYTES)


def looks_like(start: bytes) -> str:
    """What the first bytes of a file look like, from its content alone."""
    if start.startswith(b"PAR1"):
        return "parquet"
    text = decode_head(start).lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        return "jsonl"
    lines = text.splitlines()
    if any(line.rstrip() == "%" for line in lines):
        return "fortune"
    return "txt"


def decode_head(start: bytes) -> str:
    """The start of a file as text, for a look at its shape (errors replaced, nothing depends on them)."""
    for bom, encoding in BOMS:
        if start.startswith(bom):
            return start.decode(encoding, errors="replace")
    return start.decode("utf-8", errors="replace")


def detect(path: Path) -> str:
    """The format of one file: its extension where it names one and the content agrees, else its
    content. A `.json` file whose content is one object per line is jsonl."""
    start = head(path)
    seen = looks_like(start)
    by_name = EXTENSIONS.get(inner_suffix(path))
    if by_name in ("jsonl", "json") and seen in ("jsonl", "json"):
        return seen
    if by_name in ("csv", "tsv", "txt", "parquet"):
        return by_name
    return seen


def check_format(path: Path, wanted: str):
    """Refuse a file whose content is not of the format the config names, saying what it looks like."""
    seen = detect(path)
    compatible = {wanted} | ({"txt", "fortune"} if wanted in ("txt", "fortune") else set())
    if seen not in compatible and not (wanted in ("csv", "tsv") and seen == "txt"):
        raise ValueError(
            f"{path} looks like {seen}, not {wanted} (ingest.format={wanted}): set ingest.format=auto to "
            f"read each file as what it is, or ingest.format={seen}"
        )


def corpus_files(folder: Path, exclude: list[str] = ()) -> list[Path]:
    """The files of a corpus folder, sorted, recursively: no hidden files, links, fortune index files
    or names in `exclude`."""
    files = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_symlink() or not path.is_file() or any(p.startswith(".") for p in parts):
            continue
        if path.suffix in SKIPPED_SUFFIXES or path.name in exclude:
            continue
        files.append(path)
    return files


def decode(raw: bytes) -> tuple[str, str] | None:
    """(text, encoding) of a file's or an entry's bytes, or None when no encoding reads them exactly
    (the caller quarantines them). UTF-8 first; a byte-order mark decides; else charset-normalizer's
    best guess, kept only if it round-trips byte for byte."""
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding.removesuffix("-sig")
            except UnicodeDecodeError:
                return None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if sum(b >= 0x80 for b in raw) < MIN_GUESS_BYTES:
        return None
    from charset_normalizer import from_bytes

    for guess in from_bytes(raw, cp_isolation=None):
        encoding = guess.encoding
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if text.encode(encoding) == raw:
            return text, encoding
    return None


def json_records(raw: bytes) -> list:
    """The records of a JSON-array file (held whole: an array has no line boundaries to stream by)."""
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("not a JSON array")
    return data
