"""clean: strip terminal noise, normalize Unicode and whitespace, drop empty, too short, too long
and duplicate documents.

Reads: data/raw/*.jsonl. Writes: data/clean/docs.jsonl; metrics/clean.json (counts per rule).
Run: python -m llmpipe.stages.clean
"""

from pathlib import Path

from tqdm import tqdm

from llmpipe.atomic import replace_file
from llmpipe.cleaning import clean_documents
from llmpipe.datasets import read_jsonl, write_jsonl
from llmpipe.runner import stage_main

STAGE = "clean"
SECTIONS = [STAGE]
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params


def run(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    files = sorted((root / "data" / "raw").glob("*.jsonl"))
    if not files:
        raise ValueError(f"no input: {root / 'data' / 'raw'} holds no .jsonl files (run ingest first)")
    docs = [doc for path in tqdm(files, desc="clean: read", leave=False) for doc in read_jsonl(path)]
    kept, counts = clean_documents(docs, cfg["unicode_form"], cfg["min_chars"], cfg["max_chars"], cfg["dedup"])
    with replace_file(root / "data" / "clean" / "docs.jsonl") as tmp:
        write_jsonl(tmp, kept)
    return dict(sorted(counts.items()))


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED)


if __name__ == "__main__":
    main()
