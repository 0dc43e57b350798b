"""tokenize's encoding job, a datatrove pipeline of one step: task r encodes shard r of data/clean.

Each document is placed in its split (splits.Placement: a position split may cut it into parts, each
in its own split), held as that split holds it (splits.as_split), and encoded with the trained
tokenizer (tiktoken where it gives the same ids: fast_encoding). The task writes, for every split it
met:

  <split>/<r:05d>.bin    token ids, each document followed by <|endoftext|> (dtype from the vocabulary)
  <split>/<r:05d>.jsonl  the documents, in the same order
  counts/<r:05d>.json    docs, tokens and bytes per split, for meta.json

Memory holds one batch of documents (`batch_chars` of text) at a time. The order of the token stream
is shard order, then document order within a shard: it depends on the clean stage's tasks, never on
how many workers encode.
"""

import json
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from llmpipe.data.splits import SPLITS, Placement
from llmpipe.data.tokenizer import load_tokenizer
from llmpipe.jsonl import iter_jsonl
from llmpipe.tokenize.fast_encoding import encode_texts, flat_ids, tiktoken_encoding


class SplitWriter:
    """One split's token shard and document shard of one task, opened on the first document."""

    def __init__(self, out: Path, split: str, rank: int, dtype, files: ExitStack):
        (out / split).mkdir(parents=True, exist_ok=True)
        self.bin = files.enter_context((out / split / f"{rank:05d}.bin").open("wb"))
        self.docs = files.enter_context((out / split / f"{rank:05d}.jsonl").open("w", encoding="utf-8"))
        self.dtype, self.counts = dtype, Counter()

    def write(self, docs: list[dict], ids: list[list[int]], eot_id: int):
        flat = flat_ids(ids, eot_id, self.dtype)
        self.bin.write(flat.tobytes())  # not tofile: a failed write keeps its errno (atomic.WriteError)
        for doc in docs:
            self.docs.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self.counts.update(docs=len(docs), tokens=len(flat), bytes=sum(len(d["text"].encode("utf-8")) for d in docs))


class EncodeShard(PipelineStep):
    """Task r: encode data/clean shard `shards[r]` into `out` (see the module docstring)."""

    name = "🔢 encode"
    type = "llmpipe"

    def __init__(self, shards: list[Path], out: Path, place: Placement, tiktoken: bool, eot_id: int, dtype: str):
        super().__init__()
        self.shards, self.out, self.place = [Path(p) for p in shards], Path(out), place
        self.tiktoken, self.eot_id, self.dtype = tiktoken, eot_id, np.dtype(dtype)
        self.batch_chars = 8 << 20  # characters of text encoded at a time

    def run(self, data, rank: int = 0, world_size: int = 1):
        assert world_size == len(self.shards), "one task per shard of data/clean"
        tokenizer = load_tokenizer(self.out / "tokenizer.json")
        encoding = tiktoken_encoding(tokenizer) if self.tiktoken else None
        writers: dict[str, SplitWriter] = {}
        batch: list[tuple[str, dict]] = []
        size, counts, files = 0, Counter(), ExitStack()

        def flush():
            ids = encode_texts(tokenizer, encoding, [doc["text"] for _, doc in batch], threads=1)
            for split in SPLITS:  # each split's documents of the batch, in order
                picked = [i for i, (s, _) in enumerate(batch) if s == split]
                if picked:
                    if split not in writers:
                        writers[split] = SplitWriter(self.out, split, rank, self.dtype, files)
                    writers[split].write([batch[i][1] for i in picked], [ids[i] for i in picked], self.eot_id)
            batch.clear()

        with files:  # every shard file is closed, whatever fails
            for doc in iter_jsonl(self.shards[rank]):
                counts["raw"] += "held_out" in doc
                for split, held in self.place.parts(doc):  # the document, or its parts where a position split cuts it
                    if held is None:  # a raw document (or part) that cleaning removed, drawn for val or test
                        counts["not_held_out"] += 1
                        continue
                    batch.append((split, held))
                    size += len(held["text"])
                    self.stat_update(f"docs_{split}")
                if size >= self.batch_chars:
                    flush()
                    size = 0
            if batch:
                flush()
        (self.out / "counts").mkdir(exist_ok=True)
        summary = {"splits": {s: dict(w.counts) for s, w in writers.items()}, **counts}
        (self.out / "counts" / f"{rank:05d}.json").write_text(json.dumps(summary))
