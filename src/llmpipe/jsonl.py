"""Splits, token files and the torch datasets that read them.

Token files are flat arrays of token ids (uint16 while the vocabulary fits), one per split, with
every document followed by the end-of-text token, read back as memory maps (as nanoGPT does).
"""

import json
from pathlib import Path


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]



def write_jsonl(path: str | Path, records: list[dict]):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

