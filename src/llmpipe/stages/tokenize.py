"""tokenize: place documents in train/val/test (data.splits), train a byte-level BPE on a bounded
sample of train (tokenizers), then encode every shard of data/clean into token shards on datatrove's
executors (tokenize.encode; tiktoken where it gives the same ids: tokenize.fast_encoding). A
document with a `held_out` record (clean.enabled false) trains on its raw text and is held out as
its cleaned record, or not at all where cleaning removed it (`not_held_out`).

Reads: data/clean/*.jsonl. Writes: metrics/tokenize.json and data/tokens/: tokenizer.json;
<split>/<shard>.bin, token ids (uint16; uint32 above 65535), each document followed by
<|endoftext|>; <split>/<shard>.jsonl, the shard's documents; meta.json, vocab size (learned, and
asked for: a small corpus fills fewer), special ids, docs / tokens / bytes per split, the shards
of each split in stream order, train_cleaned (false when train is raw text), files (sizes and
SHA-256, checked by readers).
Run: python -m llmpipe.stages.tokenize
"""

from pathlib import Path

from tqdm import tqdm

from llmpipe.runner import Sections, Stage, stage_main
from llmpipe.tokenize.shards import tokenize_corpus

WORK = Path("data") / "work" / "tokenize"  # datatrove's logs, rewritten every run
SUMMARY = ["vocab_size", "train_bytes_per_token", "splits/*/docs", "splits/*/tokens"]  # runner.summary


def run(sections: Sections, root: Path) -> dict:
    data = root / "data"
    with tqdm(total=None, desc="tokenize", unit=" jobs", leave=False) as progress:
        meta = tokenize_corpus(
            sections.tokenize, sections.hardware.tokenize, data / "clean", data / "tokens", root / WORK, progress
        )
    train = meta["splits"]["train"]
    return {
        "encoder": meta["encoder"],  # tiktoken or tokenizers: the same ids either way
        "vocab_size": meta["vocab_size"],  # what the BPE learned: tokenize.vocab_size or fewer
        "requested_vocab_size": meta["requested_vocab_size"],
        "train_bytes_per_token": train["bytes"] / train["tokens"],
        "splits": meta["splits"],
        "shards": len(meta["shards"]["train"]),
        "not_held_out": meta["not_held_out"],  # every document is in one split but these (clean.enabled false only)
    }


def stage() -> Stage:
    return Stage(
        "tokenize", run, params=["tokenize"], hardware=True, summary=SUMMARY,
        reads=["data/clean"], writes=["data/tokens"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
