"""Encoding speed of the tokenize stage: Hugging Face `tokenizers` (`encode_batch`, its own thread pool
on every core) against tiktoken running the same merges (llmpipe.tokenize.fast_encoding, a thread per
core), on the same texts in the same process, with the ids compared one by one.

The texts are the default corpus's cleaned documents (the shards of data/clean: run `dvc repro -s clean`
first), repeated until they hold --megabytes (the ids of a text do not depend on what else is in the
batch, so repeating measures speed at size without fetching anything). The tokenizer is trained on
the first --train-megabytes with tokenize.vocab_size from params.yaml (or --vocab-size).

  python benchmarks/tokenize_speed.py --megabytes 100
"""

import argparse
import datetime
import gc
import os
import platform
import resource
import time
from pathlib import Path

import yaml

from llmpipe.data.tokenizer import train_bpe
from llmpipe.jsonl import iter_folder
from llmpipe.tokenize.fast_encoding import encode_texts, fast_encoder


def compare(tokenizer, encoding, batches: list[list[str]]) -> tuple[float, float, bool, int]:
    """Seconds of tokenizers and of tiktoken over all batches, whether every id agreed, and how many
    ids. Batch by batch, the ids dropped after the comparison: holding a whole run's ids (tens of
    millions of Python ints) would make the garbage collector slow down whichever encoder runs next."""
    hf_seconds = tk_seconds = 0.0
    same, tokens = True, 0
    gc.collect()
    for batch in batches:
        start = time.perf_counter()
        hf_ids = encode_texts(tokenizer, None, batch)
        middle = time.perf_counter()
        tk_ids = encode_texts(tokenizer, encoding, batch)
        hf_seconds, tk_seconds = hf_seconds + middle - start, tk_seconds + time.perf_counter() - middle
        same = same and hf_ids == tk_ids
        tokens += sum(map(len, tk_ids))
    return hf_seconds, tk_seconds, same, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="data/clean", help="a folder of JSON-lines shards")
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--train-megabytes", type=float, default=4.0)
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=4096, help="texts per encode call (tokenize's batch)")
    args = parser.parse_args()

    texts = [d["text"] for d in iter_folder(args.docs)]
    corpus_bytes = sum(len(t.encode()) for t in texts)
    vocab_size = args.vocab_size or yaml.safe_load(Path("params.yaml").read_text())["tokenize"]["vocab_size"]
    train, size = [], 0
    for text in texts:
        if size >= args.train_megabytes * 1e6:
            break
        train.append(text)
        size += len(text.encode())
    tokenizer = train_bpe(train, vocab_size)
    encoding = fast_encoder(tokenizer, samples=texts[:256])
    assert encoding is not None, "tiktoken cannot run this tokenizer"

    repeats = max(1, round(args.megabytes * 1e6 / corpus_bytes))
    batches = [texts[i : i + args.batch] for _ in range(repeats) for i in range(0, len(texts), args.batch)]
    megabytes = repeats * corpus_bytes / 1e6
    print(f"{megabytes:.1f} MB ({repeats} x {corpus_bytes / 1e6:.2f} MB of {args.docs}), vocab {vocab_size}")
    hf_seconds, tk_seconds, same, tokens = compare(tokenizer, encoding, batches)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"tokenizers encode_batch {hf_seconds:8.2f} s\ntiktoken (same merges)  {tk_seconds:8.2f} s")
    print(f"identical ids: {same} ({tokens:,} tokens)")
    print(f"speed: tokenizers {megabytes / hf_seconds:.2f} MB/s, tiktoken {megabytes / tk_seconds:.2f} MB/s")
    print(f"tiktoken / tokenizers: {hf_seconds / tk_seconds:.2f}x faster; peak RSS of this process {peak_gb:.2f} GB")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {datetime.date.today()}")
    assert same, "tiktoken and tokenizers gave different ids"


if __name__ == "__main__":
    main()
