"""Benchmark of the clean stage (datatrove executors, default config from conf/).

Prints, all measured in this run:
  1. throughput: MB of raw text per second with one worker, on the default corpus (Debian's fortunes
     and fortunes-zh, read as the ingest stage reads them);
  2. speed-up of 2 workers over 1 on a larger input (the corpus `--copies` times, as many files);
  3. near-duplicate recall and precision: the cleaned corpus, plus a copy of `--planted` of its
     documents with 5-15 % of their characters edited at random (substitutions, insertions,
     deletions), run through the whole stage again.
     recall    = planted pairs of which exactly one document was removed as a near duplicate
     precision = documents removed as near duplicates that belong to a planted pair whose other
                 document was kept, over all documents removed as near duplicates
     Pairs where a quality rule removed either document first are counted apart.

Run: python benchmarks/clean_bench.py [--copies 4] [--planted 2000]
"""

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from llmpipe import typed_params
from llmpipe.clean.near_dedup import random_edits
from llmpipe.clean.outputs import flat_records
from llmpipe.clean.pipeline import run_jobs
from llmpipe.config import compose
from llmpipe.ingest.corpus import is_bad, read_corpus

REPO = Path(__file__).resolve().parents[1]


def write_raw(folder: Path, docs: list[dict], files: int):
    """docs as data/raw would hold them, spread over `files` files."""
    folder.mkdir(parents=True)
    handles = [(folder / f"part{i:03d}.jsonl").open("w", encoding="utf-8") for i in range(files)]
    for i, doc in enumerate(docs):
        handles[i % files].write(json.dumps(doc, ensure_ascii=False) + "\n")
    for handle in handles:
        handle.close()


def finished(work: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    """The kept records and the removed ones by rule, from a finished clean's work folder."""
    removed: dict[str, list[dict]] = {}
    for folder in sorted((work / "removed").glob("*")):
        for record in flat_records(folder):
            removed.setdefault(record.pop("filter_reason", folder.name), []).append(record)
    return list(flat_records(work / "kept")), removed


def timed_clean(cfg, hardware, seed: int, raw: Path, work: Path, workers: int) -> float:
    started = time.perf_counter()
    run_jobs(cfg, replace(hardware, workers=workers), seed, raw, work)
    return time.perf_counter() - started


def raw_bytes(docs: list[dict]) -> int:
    return sum(len(d["text"].encode("utf-8")) for d in docs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="the larger input is the corpus this many times")
    parser.add_argument("--planted", type=int, default=2000, help="near-duplicates to plant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import yaml

    params = typed_params.build(yaml.safe_load(compose([], conf_dir=REPO / "conf")))
    cfg, hardware, seed = params.clean, params.hardware.clean, params.seed
    docs = [d for d in read_corpus(params.ingest) if not is_bad(d)]
    tmp = Path(tempfile.mkdtemp(prefix="clean_bench_"))
    try:
        # 1. throughput on the default corpus, one worker
        write_raw(tmp / "raw", docs, files=cfg.tasks)
        seconds = timed_clean(cfg, hardware, seed, tmp / "raw", tmp / "work", workers=1)
        mb = raw_bytes(docs) / 1e6
        print(f"default corpus: {len(docs)} documents, {mb:.2f} MB, tasks={cfg.tasks}")
        print(f"  1 worker: {seconds:.1f} s = {mb / seconds:.3f} MB/s per worker")

        # 2. speed-up of 2 workers over 1 on a larger input
        larger = [{**d, "id": f"{k}-{d['id']}"} for k in range(args.copies) for d in docs]
        write_raw(tmp / "raw_large", larger, files=4 * cfg.tasks)
        large_cfg = replace(cfg, tasks=4 * cfg.tasks)  # more shards than workers: no idle worker at the end
        times = {
            w: timed_clean(large_cfg, hardware, seed, tmp / "raw_large", tmp / f"work_large_{w}", workers=w)
            for w in (1, 2)
        }
        mb_large = raw_bytes(larger) / 1e6
        print(
            f"larger input: the corpus {args.copies} times, {len(larger)} documents, {mb_large:.1f} MB, "
            f"tasks={large_cfg.tasks}"
        )
        for w, s in times.items():
            print(f"  {w} worker(s): {s:.1f} s = {mb_large / s:.3f} MB/s")
        print(f"  speed-up of 2 workers over 1: {times[1] / times[2]:.2f}x (target >= 1.7x)")

        # 3. near-duplicate recall and precision on planted edits of the cleaned corpus
        kept, _ = finished(tmp / "work")
        rng = random.Random(args.seed)
        originals = rng.sample(kept, min(args.planted, len(kept)))
        copies = [
            {**d, "id": f"planted-{d['id']}", "text": random_edits(d["text"], rng.uniform(0.05, 0.15), rng)}
            for d in originals
        ]
        base = [{k: d.get(k) for k in ("id", "text", "source", "lang", "label")} for d in kept]
        write_raw(tmp / "raw_planted", base + copies, files=cfg.tasks)
        run_jobs(cfg, replace(hardware, workers=2), seed, tmp / "raw_planted", tmp / "work_planted")
        kept2, removed = finished(tmp / "work_planted")
        kept_ids = {d["id"] for d in kept2}
        near = {d["id"] for d in removed.get("near_duplicate", [])}
        elsewhere = {d["id"] for rule, rs in removed.items() if rule != "near_duplicate" for d in rs}
        pairs = [(d["id"], f"planted-{d['id']}") for d in originals]
        judged = [p for p in pairs if not (set(p) & elsewhere)]
        found = [p for p in judged if len(set(p) & near) == 1 and len(set(p) & kept_ids) == 1]
        partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
        correct = [i for i in near if i in partner and partner[i] in kept_ids]
        langs = {d["id"]: d["lang"] for d in originals}
        print(f"near duplicates: {len(pairs)} planted into {len(base)} cleaned documents (5-15 % of characters edited)")
        print(f"  pairs removed by another rule first (not judged): {len(pairs) - len(judged)}")
        for lang in sorted({langs[a] for a, _ in judged}):
            n = sum(1 for a, _ in judged if langs[a] == lang)
            k = sum(1 for a, _ in found if langs[a] == lang)
            print(f"  recall {lang}: {k}/{n} = {k / n:.3f}")
        print(f"  recall: {len(found)}/{len(judged)} = {len(found) / len(judged):.3f} (target >= 0.95)")
        print(f"  precision: {len(correct)}/{len(near)} = {len(correct) / max(len(near), 1):.4f} (target >= 0.99)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
