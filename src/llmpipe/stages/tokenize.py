"""tokenize: split documents into train/val/test (data.splits), train a byte-level BPE on train only
(tokenizers), write each split as a flat file of token ids (by tiktoken where it gives the same ids:
data.fast_encoding). A document with a `held_out` record (clean.enabled false) trains on its raw text
and is held out as its cleaned record, or not at all where cleaning removed it (`not_held_out`).

Reads: data/clean/docs.jsonl. Writes: metrics/tokenize.json and data/tokens/: tokenizer.json;
<split>.bin, token ids (uint16; uint32 above 65535), each document followed by <|endoftext|>;
<split>.jsonl, the split's documents; meta.json, vocab size, special ids, docs / tokens / bytes per
split, train_cleaned (false when train is raw text), files (sizes and SHA-256, checked by readers).
Run: python -m llmpipe.stages.tokenize"""

import json
from pathlib import Path

from tqdm import tqdm

from llmpipe.atomic import replace_dir
from llmpipe.data.fast_encoding import fast_encoder, write_encoded
from llmpipe.data.splits import SPLITS, split_documents
from llmpipe.data.token_files import token_dtype
from llmpipe.data.tokenizer import EOT, PAD, first_bytes, special_id, train_bpe
from llmpipe.digests import file_record
from llmpipe.jsonl import read_jsonl, write_jsonl
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["vocab_size", "train_bytes_per_token", "splits/*/docs", "splits/*/tokens"]  # runner.summary


def run(sections: Sections, root: Path) -> dict:
    cfg = sections.tokenize
    docs = read_jsonl(root / "data" / "clean" / "docs.jsonl")
    splits = split_documents(docs, cfg.val_fraction, cfg.test_fraction, cfg.split_by)
    not_held_out = len(docs) - sum(map(len, splits.values()))  # raw documents cleaning removed, drawn for val/test
    assert not_held_out <= sum(d.get("held_out", 0) is None for d in docs), "tokenize lost documents"
    # A split asked for gets documents; one empty on purpose (fraction 0, or split_by=field) is written empty.
    asked = {"train": 1} | ({} if cfg.split_by == "field" else {"val": cfg.val_fraction, "test": cfg.test_fraction})
    empty = [name for name, split_docs in splits.items() if not split_docs and asked.get(name, 0) > 0]
    if empty:
        raise ValueError(
            f"splits {empty} are empty: {len(docs)} documents split by {cfg.split_by} (tokenize.split_by) "
            f"at val_fraction={cfg.val_fraction}, test_fraction={cfg.test_fraction} leave them nothing"
        )
    sample = first_bytes((d["text"] for d in splits["train"]), cfg.bpe_sample_bytes)
    tokenizer = train_bpe(sample, cfg.vocab_size, cfg.min_frequency)
    vocab_size = tokenizer.get_vocab_size()
    meta = {
        "vocab_size": vocab_size,
        "eot_id": special_id(tokenizer, EOT),
        "pad_id": special_id(tokenizer, PAD),
        "train_cleaned": not any("held_out" in d for d in docs),
        "splits": {},
    }
    encoding = fast_encoder(tokenizer, samples=[d["text"] for d in splits["train"]])  # None: tokenizers encodes
    with replace_dir(root / "data" / "tokens") as tmp:
        for name in tqdm(SPLITS, desc="tokenize", leave=False):
            split_docs, dtype = splits[name], token_dtype(vocab_size)
            texts = [d["text"] for d in split_docs]
            n_tokens = write_encoded(tmp / f"{name}.bin", texts, tokenizer, encoding, meta["eot_id"], dtype)
            n_bytes = sum(len(d["text"].encode("utf-8")) for d in split_docs)
            meta["splits"][name] = {"docs": len(split_docs), "tokens": n_tokens, "bytes": n_bytes}
            write_jsonl(tmp / f"{name}.jsonl", split_docs)
        tokenizer.save(str(tmp / "tokenizer.json"))
        meta["files"] = {path.name: file_record(path) for path in sorted(tmp.iterdir())}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    train = meta["splits"]["train"]
    return {
        "encoder": "tokenizers" if encoding is None else "tiktoken",  # the same ids either way
        "vocab_size": vocab_size,
        "train_bytes_per_token": train["bytes"] / train["tokens"],
        "splits": meta["splits"],
        "not_held_out": not_held_out,  # every document is in one split but these (clean.enabled false only)
    }


def stage() -> Stage:
    return Stage("tokenize", run, params=["tokenize"], summary=SUMMARY)


if __name__ == "__main__":
    stage_main(stage)
