"""The clean stage as datatrove pipelines: the rules live in cleaning.py, quality.py, pii.py and
language_id.py; this module wires them into datatrove steps and runs them on its executors.

Six jobs, each a datatrove executor that waits for the one before it:

  filter        read data/raw (each task its byte range of every file: record_ranges.py), screen
                bad records into quarantine, normalize, identify language,
                apply the quality rules, scrub PII, write exact-dedup signatures
  exact_find    find documents whose normalized text hashes alike (datatrove ExactFindDedups)
  exact_filter  drop all but one of each, write MinHash signatures (character shingles)
  near_pairs    LSH: documents that agree on a band of hashes are candidates; each document is
                compared with at most clean.dedup.max_compare earlier representatives over all its
                bands, and a pair is a duplicate when its edit similarity reaches
                clean.dedup.similarity (near_dedup.py)
  near_cluster  union-find over the duplicate pairs; all but one per cluster are removed
  near_filter   drop them and write what is left

They run on the executor that `hardware.clean` names (data/executors.py: local processes over
`clean.tasks` shards, or a Ray cluster); the same pipelines run under datatrove's
SlurmPipelineExecutor (see the README). Every record that
enters leaves in exactly one place: the kept output, a removed/ folder named for its rule, or
quarantine; clean_report.Tally.account checks it.
"""

from dataclasses import asdict
from pathlib import Path

import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers import JsonlWriter

from llmpipe.data import language_id, pii, quality
from llmpipe.data.cleaning import clean_text, dedup_key, screen
from llmpipe.data.executors import run_in_order
from llmpipe.data.minhash_signatures import CharacterMinhashSignature
from llmpipe.data.near_dedup import HASH, ConfirmedPairs, minhash_config
from llmpipe.data.record_ranges import RecordRangeReader
from llmpipe.schema import Clean, DataHardware, Language


def dedup_content(doc: Document) -> str:
    """What exact dedup hashes (module level: datatrove pickles it into worker processes)."""
    return dedup_key(doc.text)


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
        language_id.identifier(tuple(cfg.candidates))  # the model loaded once, before the workers fork
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
        quality.load_tables()
        self.cfg = cfg
        self.rules: dict[str, list] = {}  # each language's active rules, made on its first document
        self.min_chars = min_chars

    def filter(self, doc: Document):
        if len(doc.text) < self.min_chars:
            return False, "too_short"
        lang = doc.metadata["lang"]
        if lang not in self.rules:
            self.rules[lang] = quality.active_rules(quality.rules_for(lang, self.cfg))
        failed = quality.first_failure(quality.TextStats(doc.text, lang), self.rules[lang])
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
        with path.open("rb") as f:
            for line in f:
                record = orjson.loads(line)  # written by datatrove's writer, with orjson
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
                RecordRangeReader(raw),  # every task reads its share of every file: one big file uses every worker
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
        jobs += near_jobs(dedup, minhash, work, current, tasks)
    else:
        jobs.append(("keep", [RankFileReader(current), writer(work / "kept")], tasks))
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
        ("near_filter", [RankFileReader(deduped), near_filter, writer(work / "kept")], tasks),
    ]


def run_jobs(cfg: Clean, hardware: DataHardware, seed: int, raw: Path, work: Path, progress=None) -> list[str]:
    """Run every job of the clean stage, in order, into a fresh work folder."""
    jobs = pipelines(cfg, seed, raw, work)
    run_in_order(jobs, hardware, work, "clean", progress)
    return [name for name, _, _ in jobs]
