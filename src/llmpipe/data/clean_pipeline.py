"""The clean stage as datatrove pipelines: the rules live in cleaning.py, quality.py, pii.py and
language_id.py; this module wires them into datatrove steps and runs them on its executors.

Six jobs, each a datatrove executor that waits for the one before it:

  filter        read data/raw, screen bad records into quarantine, normalize, identify language,
                apply the quality rules, scrub PII, write exact-dedup signatures
  exact_find    find documents whose normalized text hashes alike (datatrove ExactFindDedups)
  exact_filter  drop all but one of each, write MinHash signatures (character shingles)
  near_pairs    LSH: documents that agree on a band of hashes are candidates; each is compared with
                at most clean.dedup.max_compare earlier representatives of its group, and a pair is
                a duplicate when its edit similarity reaches clean.dedup.similarity (near_dedup.py)
  near_cluster  union-find over the duplicate pairs; all but one per cluster are removed
  near_filter   drop them and write what is left

With `clean.executor: local` they run on datatrove's LocalPipelineExecutor (`clean.workers`
processes over `clean.tasks` shards); with `ray`, as tasks of a Ray cluster (RayPipelineExecutor);
the same pipelines run under datatrove's SlurmPipelineExecutor (see the README). Every record that
enters leaves in exactly one place: the kept output, a removed/ folder named for its rule, or
quarantine; clean_report.account checks it.
"""

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor import base as datatrove_executor_base
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils import logging as datatrove_logging
from loguru import logger

from llmpipe.data import language_id, pii, quality
from llmpipe.data.cleaning import clean_text, dedup_key, screen
from llmpipe.data.near_dedup import HASH, CharacterMinhashSignature, ConfirmedPairs, minhash_config
from llmpipe.jsonl import read_jsonl
from llmpipe.logs import quiet_bars, verbose
from llmpipe.schema import Clean, CleanHardware, Language


def dedup_content(doc: Document) -> str:
    """What exact dedup hashes (module level: datatrove pickles it into worker processes)."""
    return dedup_key(doc.text)


def warnings_only_on_stderr():
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def task_logger_quiet_on_stderr(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's add_task_logger, with stderr at WARNING: its INFO lines (the pipeline, per-task
    statistics) stay in the task's log file under data/work/clean/logs/<job>/logs/."""
    warnings_only_on_stderr()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    logger.add(logfile, level="DEBUG")
    return logfile


class Executor(LocalPipelineExecutor):
    """datatrove's local executor, quiet on stderr unless LLMPIPE_VERBOSE is set. datatrove sets up
    loguru in every task (and resets it to print everything after each), so the quieting is done
    where tasks run: in this process and in each worker."""

    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None):
        if not verbose():
            datatrove_executor_base.add_task_logger = task_logger_quiet_on_stderr
            datatrove_logging.setup_default_logger = warnings_only_on_stderr  # called by close_task_logger
        return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)


class ScreenAndNormalize(PipelineStep):
    """Bad records to quarantine (binary, too large, empty once normalized); the rest normalized,
    with the names of the normalization rules that changed them kept in metadata['fixes']."""

    name = "🧹 screen and normalize"
    type = "llmpipe"

    def __init__(self, cfg: Clean, quarantine: JsonlWriter):
        super().__init__()
        self.cfg = cfg
        self.quarantine = quarantine

    def run(self, data, rank: int = 0, world_size: int = 1):
        with self.quarantine as out:
            for doc in data:
                self.stat_update("docs_in")
                doc.metadata.pop("file_path", None)  # an absolute path: outputs must not depend on the checkout
                reason = screen(doc.text, self.cfg.max_bytes, self.cfg.max_binary_ratio)
                if reason is None:
                    text, fixes = clean_text(doc.text, self.cfg.unicode_form, self.cfg.fix_mojibake)
                    reason = None if text else "empty"
                if reason is not None:
                    self.stat_update(f"quarantined_{reason}")
                    out.write(quarantine_record(doc, reason), rank)
                    continue
                doc.metadata["raw_bytes"] = len(doc.text.encode("utf-8"))
                doc.text = text
                doc.metadata["fixes"] = fixes
                yield doc


def quarantine_record(doc: Document, reason: str, preview_chars: int = 2000) -> Document:
    """What quarantine keeps of a bad record: why, where it came from, its size and a preview (the
    whole record is still in data/raw at that position)."""
    size = len(doc.text.encode("utf-8", errors="surrogatepass"))
    preview = doc.text[:preview_chars].encode("utf-8", errors="backslashreplace").decode("utf-8")
    return Document(text=preview, id=doc.id, metadata={**doc.metadata, "reason": reason, "bytes": size})


class IdentifyLanguage(BaseFilter):
    """Sets metadata['lang'] from py3langid (or keeps the declared one when unsure); removes
    documents confidently in a language that `clean.language.keep` does not list."""

    name = "🌐 language"

    def __init__(self, cfg: Language, exclusion_writer: JsonlWriter):
        super().__init__(exclusion_writer)
        self.cfg = cfg

    def filter(self, doc: Document):
        declared = doc.metadata.get("lang")
        lang, score, detected = language_id.decide(doc.text, declared, self.cfg)
        doc.metadata.update(lang=lang, lang_score=round(score, 4), lang_detected=detected, lang_declared=declared)
        if lang not in self.cfg.keep:
            return False, "language"
        return True


class QualityRules(BaseFilter):
    """The quality rules of quality.py with the thresholds for the document's language."""

    name = "🔍 quality"

    def __init__(self, cfg: dict, min_chars: int, exclusion_writer: JsonlWriter):
        super().__init__(exclusion_writer)
        quality.check_thresholds(cfg)
        self.cfg = cfg
        self.min_chars = min_chars

    def filter(self, doc: Document):
        if len(doc.text) < self.min_chars:
            return False, "too_short"
        lang = doc.metadata["lang"]
        failed = quality.first_failure(quality.TextStats(doc.text, lang), quality.rules_for(lang, self.cfg))
        return True if failed is None else (False, failed)


class ScrubPII(PipelineStep):
    name = "🔒 PII"
    type = "llmpipe"

    def __init__(self, kinds: dict[str, bool]):
        super().__init__()
        self.kinds = kinds

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in data:
            doc.text, counts = pii.scrub(doc.text, self.kinds)
            if counts:
                doc.metadata["pii"] = counts
            yield doc


class RankFileReader(PipelineStep):
    """Reads back the file one rank of an earlier job wrote ({rank:05d}.jsonl), in order. The dedup
    filters find documents by their position in this stream, so rank r must read exactly what rank
    r wrote (datatrove's readers share files out by index and skip ranks that wrote nothing)."""

    name = "📖 rank reader"
    type = "llmpipe"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data, rank: int = 0, world_size: int = 1):
        path = self.folder / f"{rank:05d}.jsonl"
        if not path.exists():
            return
        with path.open(encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                yield Document(text=record["text"], id=record["id"], metadata=record.get("metadata", {}))


def as_record(writer, document: Document) -> dict:
    """What the writers write: datatrove's default adapter deep-copies every document
    (dataclasses.asdict), which took a tenth of the stage's time."""
    return {"text": document.text, "id": document.id, "metadata": document.metadata}


def writer(folder: Path) -> JsonlWriter:
    return JsonlWriter(str(folder), output_filename="${rank}.jsonl", compression=None, adapter=as_record)


def removed_writer(work: Path, step: str) -> JsonlWriter:
    return writer(work / "removed" / step)


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
                JsonlReader(str(raw), glob_pattern="*.jsonl", compression=None, text_key="text", id_key="id"),
                ScreenAndNormalize(cfg, writer(work / "quarantine")),
                IdentifyLanguage(cfg.language, removed_writer(work, "language")),
                QualityRules(cfg.quality, cfg.min_chars, removed_writer(work, "quality")),
                ScrubPII(asdict(cfg.pii)),
                writer(filtered),  # writers pass documents on; the signature steps consume them
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
        steps.append(writer(current))
        if dedup.near:
            minhash = minhash_config(dedup, seed)
            steps.append(CharacterMinhashSignature(str(work / "minhash_sigs"), minhash))
        jobs.append(("exact_filter" if dedup.exact else "near_signatures", steps, tasks))
    if dedup.near:
        pairs = ConfirmedPairs(
            work / "minhash_sigs", current, work / "minhash_pairs", minhash, dedup.similarity, dedup.max_compare
        )
        cluster = MinhashDedupCluster(str(work / "minhash_pairs"), str(work / "minhash_remove"), config=minhash)
        near_filter = MinhashDedupFilter(
            str(work / "minhash_remove"), exclusion_writer=removed_writer(work, "near_duplicate")
        )
        jobs += [
            ("near_pairs", [pairs], min(tasks, dedup.num_buckets)),
            ("near_cluster", [cluster], 1),
            ("near_filter", [RankFileReader(current), near_filter, writer(work / "kept")], tasks),
        ]
    else:
        jobs.append(("keep", [RankFileReader(current), writer(work / "kept")], tasks))
    return jobs


def executor(hardware: CleanHardware, name: str, pipeline: list, tasks: int, work: Path):
    """A datatrove executor for one job: local processes, or tasks on a Ray cluster."""
    common = {"tasks": tasks, "logging_dir": str(work / "logs" / name), "skip_completed": False}
    # skip_completed=False: the work folder is fresh every run; never trust a half-finished one
    if hardware.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, **common, cpus_per_task=1, mem_per_cpu_gb=1)
    # fork, not datatrove's default forkserver: a forkserver worker imports datatrove, jieba and
    # py3langid again for every job, which cost a third of the stage's time with 2 workers here.
    return Executor(pipeline, **common, workers=min(hardware.workers, tasks), start_method="fork")


def start_ray(hardware: CleanHardware) -> bool:
    """Connect to the Ray cluster at `hardware.clean.ray_address` ("auto": the one this machine belongs to),
    or start one here with `hardware.clean.workers` CPUs when it is null. True when this call started Ray."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": verbose(), "logging_level": logging.INFO if verbose() else logging.WARNING}
    if hardware.ray_address:
        ray.init(address=hardware.ray_address, **quiet)
    else:
        ray.init(num_cpus=hardware.workers, include_dashboard=False, **quiet)
    return True


def run_jobs(cfg: Clean, hardware: CleanHardware, seed: int, raw: Path, work: Path, progress=None) -> list[str]:
    """Run every job of the clean stage, in order, into a fresh work folder."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if not verbose():
        warnings_only_on_stderr()  # the executors' own messages in this process
    started_ray = hardware.executor == "ray" and start_ray(hardware)
    jobs = pipelines(cfg, seed, raw, work)
    if progress is not None:
        progress.reset(total=len(jobs))
    try:
        for name, pipeline, tasks in jobs:
            if progress is not None:
                progress.set_description(f"clean: {name}")
            with quiet_bars():
                executor(hardware, name, pipeline, tasks, work).run()
            if progress is not None:
                progress.update(1)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return [name for name, _, _ in jobs]


def read_folder(folder: Path) -> list[dict]:
    """Every record of a folder of per-rank JSONL files, as plain dicts."""
    return [record for path in sorted(folder.glob("*.jsonl")) for record in read_jsonl(path)]
