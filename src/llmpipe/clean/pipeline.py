"""The clean stage as datatrove pipelines: the rules live in clean/normalize.py, clean/quality.py, clean/pii.py and
clean/language_id.py, the steps that apply them in clean/steps.py; this module wires the steps into
datatrove jobs and runs them on its executors.

Six jobs, each a datatrove executor that waits for the one before it:

  filter        read data/raw (each task its byte range of every file: clean/record_ranges.py), screen
                bad records into quarantine, normalize, identify language,
                apply the quality rules, scrub PII, write exact-dedup signatures
  exact_find    find documents whose normalized text hashes alike (datatrove ExactFindDedups)
  exact_filter  drop all but one of each, write MinHash signatures (character shingles)
  near_pairs    LSH: documents that agree on a band of hashes are candidates; each document is
                compared with at most clean.dedup.max_compare earlier representatives over all its
                bands, and a pair is a duplicate when its edit similarity reaches
                clean.dedup.similarity (clean/near_dedup.py)
  near_cluster  union-find over the duplicate pairs; all but one per cluster are removed
  near_filter   drop them and write what is left

They run on the executor that `hardware.clean` names (data/executors.py: local processes over
`clean.tasks` shards, or a Ray cluster); the same pipelines run under datatrove's
SlurmPipelineExecutor (see the README). Every record that
enters leaves in exactly one place: the kept output, a removed/ folder named for its rule, or
quarantine; report.Tally.account checks it.
"""

from dataclasses import asdict
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import MinhashDedupCluster, MinhashDedupFilter

from llmpipe.clean.minhash import CharacterMinhashSignature
from llmpipe.clean.near_dedup import HASH, ConfirmedPairs, DedupKeys, minhash_config
from llmpipe.clean.normalize import dedup_key
from llmpipe.clean.record_ranges import RecordRangeReader
from llmpipe.clean.steps import (
    IdentifyLanguage,
    QualityRules,
    RankFileReader,
    ScreenAndNormalize,
    ScrubPII,
    removed_writer,
    shard_writer,
)
from llmpipe.data.executors import run_in_order
from llmpipe.schema import Clean, DataHardware


def dedup_content(doc: Document) -> str:
    """What exact dedup hashes (module level: datatrove pickles it into worker processes)."""
    return dedup_key(doc.text)


def pipelines(cfg: Clean, seed: int, raw: Path, work: Path) -> list[tuple[str, list, int]]:
    """The jobs of the clean stage, in the order they must run: (name, datatrove pipeline, tasks).
    Executor-agnostic: `run_jobs` runs them locally or on Ray; the README shows Slurm."""
    tasks, dedup = cfg.tasks, cfg.dedup
    exact = ExactDedupConfig(content_getter=dedup_content, hash_config=HASH)
    filtered = work / "filtered"
    jobs = [
        (
            "filter",
            [
                RecordRangeReader(raw),  # every task reads its share of every file: one big file uses every worker
                ScreenAndNormalize(cfg, shard_writer(work / "quarantine")),
                IdentifyLanguage(cfg.language, removed_writer(work, "language")),
                QualityRules(cfg.quality, cfg.min_chars, removed_writer(work, "quality")),
                ScrubPII(asdict(cfg.pii)),
                shard_writer(filtered),  # writers pass documents on; the signature steps consume them
                *([ExactDedupSignature(str(work / "exact_sigs"), exact)] if dedup.exact else []),
            ],
            tasks,
        )
    ]
    current = filtered
    if dedup.exact:
        jobs.append(("exact_find", [ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), exact)], 1))
    if dedup.exact or dedup.near:
        steps = [RankFileReader(current)]
        if dedup.exact:
            steps.append(ExactDedupFilter(str(work / "exact_dups"), exact, removed_writer(work, "exact_duplicate")))
        current = work / "exact_deduped"
        steps.append(shard_writer(current))
        if dedup.near:
            minhash = minhash_config(dedup, seed)
            steps.append(CharacterMinhashSignature(str(work / "minhash_sigs"), minhash))
        jobs.append(("exact_filter" if dedup.exact else "near_signatures", steps, tasks))
    if dedup.near:
        jobs += near_jobs(dedup, minhash, work, current, tasks)
    else:
        jobs.append(("keep", [RankFileReader(current), shard_writer(work / "kept")], tasks))
    return jobs


def near_jobs(dedup, minhash, work: Path, deduped: Path, tasks: int) -> list[tuple[str, list, int]]:
    """Near-duplicate removal after the signatures: confirmed pairs, their clusters, the filter."""
    near_tasks = min(tasks, dedup.num_buckets)
    # a document's max_compare, shared out evenly among the tasks, each spending its share over its bands
    budget = max(1, dedup.max_compare // near_tasks)
    pairs = ConfirmedPairs(
        work / "minhash_sigs", deduped, work / "minhash_pairs", minhash, dedup.similarity, budget, dedup.compare_chars
    )
    cluster = MinhashDedupCluster(str(work / "minhash_pairs"), str(work / "minhash_remove"), config=minhash)
    near_filter = MinhashDedupFilter(
        str(work / "minhash_remove"), exclusion_writer=removed_writer(work, "near_duplicate")
    )
    return [
        ("near_pairs", [pairs], near_tasks),
        ("near_cluster", [cluster], 1),
        ("near_filter", [RankFileReader(deduped), near_filter, shard_writer(work / "kept")], tasks),
    ]


def run_jobs(cfg: Clean, hardware: DataHardware, seed: int, raw: Path, work: Path, progress=None) -> list[str]:
    """Run every job of the clean stage, in order, into a fresh work folder."""
    jobs = pipelines(cfg, seed, raw, work)
    try:
        run_in_order(jobs, hardware, work, "clean", progress)
    finally:
        DedupKeys.shared.clear()  # the keys near_pairs read in this process
    return [name for name, _, _ in jobs]
