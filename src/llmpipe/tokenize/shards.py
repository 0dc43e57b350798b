"""The tokenize stage's work: place documents in splits, train the BPE on a bounded sample of train,
encode every shard of data/clean on datatrove's executors (encode_shards), and describe the result
in meta.json. Memory is bounded by configuration: the BPE reads about `bpe_sample_bytes` of train
(bpe_sample), and each task holds one batch of documents (split_by=position also keeps, per
document, its id and its split or where it is cut: splits.by_position)."""

import hashlib
import json
import logging
import os
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from llmpipe.atomic import replace_dir
from llmpipe.data.executors import run_in_order
from llmpipe.data.splits import SPLITS, Placement
from llmpipe.data.token_files import token_dtype
from llmpipe.data.tokenizer import EOT, PAD, first_bytes, special_id, train_bpe
from llmpipe.digests import file_record
from llmpipe.jsonl import iter_folder
from llmpipe.schema import DataHardware, Tokenize
from llmpipe.tokenize.encode import EncodeShard
from llmpipe.tokenize.fast_encoding import fast_encoder

log = logging.getLogger("llmpipe")
CHECK_SAMPLES = 256  # train documents encoded both ways before tiktoken stands in for tokenizers


def bpe_sample(clean: Path, place: Placement, max_bytes: int | None, samples: list[str]) -> Iterator[str]:
    """The BPE's training texts: train documents (or parts of one: Placement.parts) drawn by a hash of
    their id, each with probability max_bytes / (the size of data/clean on disk), so the sample spreads
    over every source and shard, whatever their order, and holds about max_bytes (never more); every
    train document where data/clean is smaller. `samples` receives CHECK_SAMPLES of them (seeded
    reservoir, cut to 20,000 characters) for fast_encoder's check."""
    on_disk = sum(path.stat().st_size for path in clean.glob("*.jsonl"))
    rate = 1.0 if max_bytes is None else min(1.0, max_bytes / max(on_disk, 1))
    reservoir, seen = random.Random(0), 0
    for doc in iter_folder(clean):
        for split, part in place.parts(doc):
            if split != "train" or (rate < 1 and drawn(part["id"]) >= rate):
                continue
            text = part["text"]
            seen += 1
            if len(samples) < CHECK_SAMPLES:
                samples.append(text[:20000])
            elif (at := reservoir.randrange(seen)) < CHECK_SAMPLES:
                samples[at] = text[:20000]
            yield text


def drawn(doc_id: str) -> float:
    """A number in [0, 1) from a document's id, independent of the split's hash (splits.split_of)."""
    return int.from_bytes(hashlib.sha256(b"bpe sample\0" + doc_id.encode("utf-8")).digest()[:8], "big") / 2**64


def tokenize_corpus(cfg: Tokenize, hardware: DataHardware, clean: Path, out: Path, work: Path, progress=None) -> dict:
    """Write data/tokens (`out`) from the shards of data/clean (`clean`); returns meta.json's content
    with `encoder` (tiktoken or tokenizers: the same ids either way) and `not_held_out` added."""
    with replace_dir(out) as tmp:
        encode, meta = prepare(cfg, clean, tmp)
        run_in_order([("encode", [encode], len(encode.shards))], hardware, work, "tokenize", progress)
        return finish(cfg, tmp, meta)


def prepare(cfg: Tokenize, clean: Path, out: Path) -> tuple[EncodeShard, dict]:
    """Train the BPE into `out`/tokenizer.json; return the encoding job's step (a task per shard of
    data/clean, for any datatrove executor) and what meta.json will hold besides the counts."""
    shards = sorted(clean.glob("*.jsonl"))
    if not shards:
        raise ValueError(f"no input: {clean} holds no .jsonl shards (run clean first; or clean kept nothing)")
    place = Placement.of(iter_folder(clean), cfg.val_fraction, cfg.test_fraction, cfg.split_by)
    samples: list[str] = []
    sample = first_bytes(bpe_sample(clean, place, cfg.bpe_sample_bytes, samples), cfg.bpe_sample_bytes)
    tokenizer = train_bpe(sample, cfg.vocab_size, cfg.min_frequency)
    vocab_size, eot_id = tokenizer.get_vocab_size(), special_id(tokenizer, EOT)
    check_vocab_filled(cfg, vocab_size)
    encoding = fast_encoder(tokenizer, samples)  # None: tokenizers encodes
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the tasks are the parallelism (and fork after training)
    tokenizer.save(str(out / "tokenizer.json"))
    encode = EncodeShard(shards, out, place, encoding is not None, eot_id, token_dtype(vocab_size).__name__)
    meta = {"vocab_size": vocab_size, "requested_vocab_size": cfg.vocab_size}
    meta |= {"eot_id": eot_id, "pad_id": special_id(tokenizer, PAD)}
    return encode, {**meta, "encoder": "tokenizers" if encoding is None else "tiktoken"}


def check_vocab_filled(cfg: Tokenize, learned: int):
    """The BPE stops merging when no pair of the sample occurs min_frequency times, so a small corpus
    gives fewer tokens than vocab_size asks for: say so always, and stop when the gap is so large
    (over max_vocab_shortfall times) that the setting is surely not what was meant; the model is
    built for the size learned (meta.json's vocab_size)."""
    if learned >= cfg.vocab_size:
        return
    why = (
        f"the BPE learned {learned} tokens, not the {cfg.vocab_size} of tokenize.vocab_size: its sample of train "
        f"(tokenize.bpe_sample_bytes={cfg.bpe_sample_bytes}) holds no more pairs seen "
        f"tokenize.min_frequency={cfg.min_frequency} times"
    )
    if cfg.vocab_size > cfg.max_vocab_shortfall * learned:
        raise ValueError(
            f"{why}; that is more than tokenize.max_vocab_shortfall={cfg.max_vocab_shortfall} times fewer. "
            f"Lower tokenize.vocab_size (to {learned} or less), or raise tokenize.max_vocab_shortfall to go on"
        )
    log.warning("%s; the model is built for %d tokens (metrics/tokenize.json: vocab_size)", why, learned)


def finish(cfg: Tokenize, out: Path, meta: dict) -> dict:
    """After the encoding job: sum the tasks' counts, check the splits, write `out`/meta.json."""
    splits, found = merge_counts(out / "counts")
    shutil.rmtree(out / "counts")
    shards = {name: sorted(p.stem for p in (out / name).glob("*.bin")) for name in SPLITS}
    check_splits(cfg, splits, len(shards["train"]))
    encoder = meta.pop("encoder")
    meta = {**meta, "train_cleaned": not found["raw"], "splits": splits, "shards": shards}
    meta["files"] = {p.relative_to(out).as_posix(): file_record(p) for p in sorted(out.rglob("*")) if p.is_file()}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {**meta, "encoder": encoder, "not_held_out": found["not_held_out"]}


def merge_counts(folder: Path) -> tuple[dict, Counter]:
    """{split: docs, tokens, bytes} over every task, and the tasks' other counts summed."""
    splits = {name: Counter(docs=0, tokens=0, bytes=0) for name in SPLITS}
    found = Counter(raw=0, not_held_out=0)
    for path in sorted(folder.glob("*.json")):
        counts = json.loads(path.read_text())
        for name, split in counts.pop("splits").items():
            splits[name].update(split)
        found.update(counts)
    return {name: dict(c) for name, c in splits.items()}, found


def check_splits(cfg: Tokenize, splits: dict, train_shards: int):
    """A split asked for gets documents; one empty on purpose (fraction 0, or split_by=field) is written empty."""
    asked = {"train": 1} | ({} if cfg.split_by == "field" else {"val": cfg.val_fraction, "test": cfg.test_fraction})
    empty = [name for name, split in splits.items() if not split["docs"] and asked.get(name, 0) > 0]
    if empty:
        docs = sum(split["docs"] for split in splits.values())
        raise ValueError(
            f"splits {empty} are empty: {docs} documents ({train_shards} shards of train) split by "
            f"{cfg.split_by} (tokenize.split_by) at val_fraction={cfg.val_fraction}, "
            f"test_fraction={cfg.test_fraction} leave them nothing"
        )
