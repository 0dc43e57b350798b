"""Read a text corpus from disk into documents: {id, text, source, lang, label}.

Formats:
  fortune  a folder of fortune files (Debian's `fortunes`, `fortunes-zh`): entries are separated by
           lines holding only `%`; the file name is the label (the topic or poem collection).
  jsonl    a folder of .jsonl files, one JSON object per line with at least `text`; `id`, `lang`
           and `label` are used when present.
  txt      a folder of .txt files, one document per file; the label is the file's stem.
"""

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

FORMATS = ("fortune", "jsonl", "txt")
FORTUNE_SEPARATOR = re.compile(r"^%\s*$", re.MULTILINE)


def split_fortunes(text: str) -> list[str]:
    """Entries of one fortune file, in order, without the `%` separator lines."""
    entries = FORTUNE_SEPARATOR.split(text)
    return [e.strip("\n") for e in entries if e.strip()]


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
        text = path.read_bytes().decode("utf-8", errors="replace")
        lang = "zh" if path.name in zh_files else "en"
        for i, entry in enumerate(split_fortunes(text)):
            yield {"id": f"{path.name}:{i:05d}", "text": entry, "source": str(path), "lang": lang, "label": path.name}


def read_jsonl(folder: Path) -> Iterator[dict]:
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                where = f"{path}:{lineno}"
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise ValueError(f"{where}: not a JSON line ({err})") from err
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"{where}: a record needs a string field `text`")
                text = record["text"]
                yield {
                    "id": str(record.get("id", f"{path.stem}:{lineno:07d}")),
                    "text": text,
                    "source": where,
                    "lang": record.get("lang") or guess_lang(text),
                    "label": record.get("label", path.stem),
                }


def read_txt(folder: Path) -> Iterator[dict]:
    for path in sorted(folder.glob("*.txt")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        yield {"id": path.stem, "text": text, "source": str(path), "lang": guess_lang(text), "label": path.stem}


def read_corpus(source: str | Path, fmt: str, zh_files: list[str] = (), exclude: list[str] = ()) -> Iterator[dict]:
    folder = Path(source)
    if fmt not in FORMATS:
        raise ValueError(f"ingest.format={fmt!r} is not one of {FORMATS}")
    if not folder.is_dir():
        hint = " (install Debian's `fortunes` and `fortunes-zh`: make setup)" if fmt == "fortune" else ""
        raise ValueError(f"ingest.source={str(source)!r} is not a readable folder{hint}")
    if fmt == "fortune":
        return read_fortunes(folder, list(zh_files), list(exclude))
    if fmt == "jsonl":
        return read_jsonl(folder)
    return read_txt(folder)
