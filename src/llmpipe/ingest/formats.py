"""What a corpus file is and how its bytes become text: the format of each file (by its extension,
checked against its content), transparent gzip and zstd decompression, and the text encoding.

Formats: jsonl (one JSON object per line), json (one array of objects), parquet, csv and tsv (a
header row naming the columns), fortune (entries between lines holding only `%`) and txt (the file
is one document). `.gz` and `.zst` versions of each are read as the file inside; one that is cut
short or damaged gives its bytes up to the damage, then DamagedFile naming it (never a traceback
from gzip or zstandard), which the readers turn into a quarantine record.

Encodings: UTF-8 (with or without a byte-order mark) and UTF-16/32 with a byte-order mark are read as
such; anything else is detected by charset-normalizer (GBK, GB18030, Big5, Shift-JIS, Latin-1, ...)
and accepted only when the decoded text encodes back to exactly the same bytes, so a wrong guess
can never alter the text silently.
"""

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

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
GZIP_READ = 1024 * 1024  # decompressed bytes read from a .gz file at a time (at most)
# Compressed bytes given to zstd at a time: one decompress call returns all that its input holds
# (100 times as much or more, for repetitive text), so a small input keeps each output piece small.
ZSTD_READ = 64 * 1024
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


class DamagedFile(ValueError):
    """A file that cannot be read to its end: `reason` is truncated_file (it ends early, as a copy or
    a download cut short leaves it) or damaged_file (its bytes are not what its name says: a wrong
    magic number, a corrupt zstd frame or deflate block, a checksum that does not match, a broken
    Parquet footer). The readers quarantine the file, or its unread rest, and go on with the next
    file; a ValueError, so that one nobody catches stops a stage with its message, not a traceback."""

    def __init__(self, path: Path, reason: str, detail: str):
        super().__init__(f"{path}: {detail} (replace it with a good copy, or remove it)")
        self.reason, self.detail = reason, detail


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if it is .gz or .zst."""
    with open_binary(path) as f:
        return f.read()


def open_binary(path: Path):
    """A binary stream of the file's (decompressed) bytes, read as it goes: for line-by-line formats."""
    if path.suffix.lower() in COMPRESSED:
        return io.BufferedReader(Decompressed(path))
    return path.open("rb")


class Decompressed(io.RawIOBase):
    """The decompressed bytes of a .gz or .zst file, a raw stream read as it is needed; where the file
    is cut short or damaged, a read raises DamagedFile naming it (after the bytes before the damage)."""

    def __init__(self, path: Path):
        self.chunks = decompressed_chunks(path)
        self.chunk, self.pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.pos == len(self.chunk):
            self.chunk, self.pos = next(self.chunks, b""), 0  # chunks are never empty: b"" is the end
        n = min(len(buffer), len(self.chunk) - self.pos)
        buffer[:n] = self.chunk[self.pos : self.pos + n]
        self.pos += n
        return n

    def close(self):
        self.chunks.close()  # closes the file under it
        super().close()


def decompressed_chunks(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of a .gz or .zst file, a non-empty piece at a time, and DamagedFile where
    they end before the end of the compressed stream or do not decompress."""
    kind = {".gz": "gzip", ".zst": "zstd"}[path.suffix.lower()]
    try:
        if path.stat().st_size == 0:  # even an empty text compresses to a header and an end mark
            raise EOFError("the file is empty (0 bytes)")
        yield from (gzip_chunks(path) if kind == "gzip" else zstd_chunks(path))
    except EOFError as err:
        raise DamagedFile(path, "truncated_file", f"the {kind} stream is cut short: {err}") from err
    except (gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as err:
        raise DamagedFile(path, "damaged_file", f"not a readable {kind} file: {err}") from err


def gzip_chunks(path: Path) -> Iterator[bytes]:
    """gzip raises EOFError where the file is cut short, BadGzipFile for a wrong magic number or a
    checksum that does not match, zlib.error for a corrupt block."""
    with gzip.open(path, "rb") as f:
        while chunk := f.read1(GZIP_READ):  # read1: what is decompressed so far, not all or an error
            yield chunk


def zstd_chunks(path: Path) -> Iterator[bytes]:
    """zstandard's stream_reader returns what it decoded and stops without a word where a file is cut
    short inside a frame; decompressobj tells when a frame ends (`eof`), so a frame still open at the
    end of the file is an EOFError. Frame after frame: a file may hold several (pzstd, appends)."""
    dctx, frame = zstandard.ZstdDecompressor(), None
    with path.open("rb") as f:
        while data := f.read(ZSTD_READ):
            while data:
                frame = dctx.decompressobj() if frame is None else frame
                out = frame.decompress(data)
                data, frame = (frame.unused_data, None) if frame.eof else (b"", frame)
                if out:
                    yield out
    if frame is not None:
        raise EOFError("the file ends inside a zstd frame")


def head(path: Path) -> bytes:
    """The start of the file's (decompressed) content, up to SNIFF_BYTES: what it looks like. A file
    damaged after its first bytes gives those (its reader meets the damage and quarantines the rest);
    one damaged from the first byte raises DamagedFile."""
    start = b""
    with open_binary(path) as f:
        try:
            while len(start) < SNIFF_BYTES and (more := f.read1(SNIFF_BYTES - len(start))):
                start += more
        except DamagedFile:
            if not start:
                raise
    return start


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


def detect(path: Path, start: bytes | None = None) -> str:
    """The format of one file: its extension where it names one and the content agrees, else its
    content (`start`, read here when not given). A `.json` file whose content is one object per line
    is jsonl."""
    seen = looks_like(head(path) if start is None else start)
    by_name = EXTENSIONS.get(inner_suffix(path))
    if by_name in ("jsonl", "json") and seen in ("jsonl", "json"):
        return seen
    if by_name in ("csv", "tsv", "txt", "parquet"):
        return by_name
    return seen


def check_format(path: Path, wanted: str, start: bytes | None = None):
    """Refuse a file whose content is not of the format the config names, saying what it looks like."""
    seen = detect(path, start)
    compatible = {wanted} | ({"txt", "fortune"} if wanted in ("txt", "fortune") else set())
    if seen not in compatible and not (wanted in ("csv", "tsv") and seen == "txt"):
        raise ValueError(
            f"{path} looks like {seen}, not {wanted} (ingest.format={wanted}): set ingest.format=auto to "
            f"read each file as what it is, or ingest.format={seen}"
        )


def kind(path: Path, wanted: str) -> str:
    """How to read one file: `empty` when it holds no byte (once decompressed: no format to check, no
    record to read), else its format, detected (wanted auto) or checked against `wanted`. Raises
    DamagedFile for a compressed file that does not decompress from its first byte."""
    start = head(path)
    if not start:
        return "empty"
    if wanted == "auto":
        return detect(path, start)
    check_format(path, wanted, start)
    return wanted


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
