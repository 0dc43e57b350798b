"""Which documents train, validate and test (tokenize.split_by): by a hash of each id, by the
corpus's own `split` field, or by position within each source file; and how a raw document (clean
off) is held out as its cleaned record."""

import hashlib
import re

SPLITS = ("train", "val", "test")


def split_of(doc_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of a document, from a hash of its id: stable across runs, machines and corpus edits."""
    u = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") / 2**64
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"


def as_split(doc: dict, split: str) -> dict | None:
    """The document as its split holds it: a raw document (with `held_out`) trains on its raw text
    and is held out as its cleaned record, or not held out where cleaning removed it."""
    if "held_out" not in doc:
        return doc
    if split == "train":
        return {k: v for k, v in doc.items() if k != "held_out"}
    return doc["held_out"]


def split_documents(
    docs: list[dict], val_fraction: float, test_fraction: float, split_by: str = "hash"
) -> dict[str, list[dict]]:
    """{split: its documents}, each held as as_split says, placed by `split_by`:
    hash      split_of its id: stable across runs, machines and corpus edits;
    field     its own `split` field (train, val or test), e.g. a corpus with its own validation set;
    position  per source file, in id order (a long text's pieces sort in text order): the documents
              that start in the first 1 - val - test of the file's bytes train, the next val_fraction
              validate, the rest test, as nanoGPT splits one text."""
    placed = {"hash": by_hash, "field": by_field, "position": by_position}[split_by](docs, val_fraction, test_fraction)
    splits = {name: [] for name in SPLITS}
    for doc, split in zip(docs, placed, strict=True):
        if (kept := as_split(doc, split)) is not None:
            splits[split].append(kept)
    return splits


def by_hash(docs: list[dict], val_fraction: float, test_fraction: float) -> list[str]:
    return [split_of(doc["id"], val_fraction, test_fraction) for doc in docs]


def by_field(docs: list[dict], val_fraction: float, test_fraction: float) -> list[str]:
    for doc in docs:
        if doc.get("split") not in SPLITS:
            raise ValueError(
                f"tokenize.split_by=field: document {doc['id']!r} (from {doc.get('source')}) has split="
                f"{doc.get('split')!r}; every document needs a `split` field of {list(SPLITS)}"
            )
    return [doc["split"] for doc in docs]


def by_position(docs: list[dict], val_fraction: float, test_fraction: float) -> list[str]:
    files: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        files.setdefault(source_file(doc.get("source") or ""), []).append(i)
    placed = [""] * len(docs)
    for members in files.values():
        members.sort(key=lambda i: docs[i]["id"])
        sizes = [len(docs[i]["text"].encode("utf-8")) for i in members]
        total, start = sum(sizes), 0
        for i, size in zip(members, sizes, strict=True):
            where = start / total if total else 0.0
            placed[i] = (
                "train" if where < 1 - val_fraction - test_fraction else "val" if where < 1 - test_fraction else "test"
            )
            start += size
    return placed


def source_file(source: str) -> str:
    """The file a document came from: its source without the line, row or entry it was at."""
    return re.sub(r":(entry )?\d+$", "", source)
