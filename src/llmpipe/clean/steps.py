"""The clean stage's own datatrove steps: screening and normalization, the language and quality
rules, PII scrubbing, and the reader and writer of its intermediate shards.

They keep datatrove's step interface (a generator of Documents per task). Each of the clean stage's
own steps counts what it did in a Counter and sums the seconds of its own work, and hands both to
datatrove's statistics once per task through PipelineStep's public stats (they land in the task
logs and the job's stats.json, as datatrove's own do). The shards between jobs are written by
datatrove's JsonlWriter, and the dedup steps are datatrove's own, with their own statistics.
"""

from abc import abstractmethod
from collections import Counter
from pathlib import Path
from time import perf_counter

import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.pipeline.writers.jsonl import JsonlWriter

from llmpipe.clean import language_id, pii, quality
from llmpipe.clean.normalize import clean_text, screen
from llmpipe.schema import Clean, Language


def record_counts(step: PipelineStep, counts: Counter, seconds: float | None = None):
    """A task's counts, and the seconds spent in the step's own work when it timed them, into
    datatrove's statistics of the step."""
    for label, count in counts.items():
        step.stat_update(label, value=count, unit="task")
    if seconds is not None:
        step.stats.time_stats.update(seconds, unit="task")


def as_record(writer: DiskWriter, document: Document) -> dict:
    """What the shard writers write: text, id and metadata (datatrove's default adapter leaves out
    empty fields, so a record's keys would depend on its content)."""
    return {"text": document.text, "id": document.id, "metadata": document.metadata}


def shard_writer(folder: Path) -> JsonlWriter:
    """datatrove's JSON lines writer (local or remote folders, through its fsspec layer): one file
    per task, {rank:05d}.jsonl, uncompressed, opened on the task's first document, so a task that
    writes nothing leaves no file (RankFileReader reads that as empty). As a pipeline step it passes
    every document on."""
    return JsonlWriter(str(folder), output_filename="${rank}.jsonl", compression=None, adapter=as_record)


def removed_writer(work: Path, step: str) -> JsonlWriter:
    return shard_writer(work / "removed" / step)


class DocumentRule(PipelineStep):
    """A rule that keeps a document or removes it for a reason: removed documents go to the rule's
    writer with metadata['filter_reason'] set, as datatrove's filters write them."""

    type = "llmpipe"

    def __init__(self, removed: DiskWriter):
        super().__init__()
        self.removed = removed

    @abstractmethod
    def reject(self, doc: Document) -> str | None:
        """Why the document is removed, or None to keep it."""

    def run(self, data, rank: int = 0, world_size: int = 1):
        counts, seconds = Counter(), 0.0
        with self.removed as out:
            for doc in data:
                started = perf_counter()
                reason = self.reject(doc)
                seconds += perf_counter() - started
                if reason is None:
                    counts["forwarded"] += 1
                    yield doc
                    continue
                counts[f"dropped_{reason}"] += 1
                doc.metadata["filter_reason"] = reason
                out.write(doc, rank)
        record_counts(self, counts, seconds)


class ScreenAndNormalize(PipelineStep):
    """Bad records to quarantine (binary, too large, empty once normalized); the rest normalized,
    with the names of the normalization rules that changed them kept in metadata['fixes']."""

    name = "🧹 screen and normalize"
    type = "llmpipe"

    def __init__(self, cfg: Clean, quarantine: DiskWriter):
        super().__init__()
        self.cfg = cfg
        self.quarantine = quarantine

    def run(self, data, rank: int = 0, world_size: int = 1):
        counts, seconds = Counter(), 0.0
        with self.quarantine as out:
            for doc in data:
                started = perf_counter()
                counts["docs_in"] += 1
                doc.metadata.pop("file_path", None)  # an absolute path: outputs must not depend on the checkout
                reason = screen(doc.text, self.cfg.max_bytes, self.cfg.max_binary_ratio)
                if reason is None:
                    text, fixes = clean_text(doc.text, self.cfg.unicode_form, self.cfg.fix_mojibake)
                    reason = None if text else "empty"
                seconds += perf_counter() - started
                if reason is not None:
                    counts[f"quarantined_{reason}"] += 1
                    out.write(quarantine_record(doc, reason), rank)
                    continue
                doc.metadata["raw_bytes"] = len(doc.text.encode("utf-8"))
                doc.text = text
                doc.metadata["fixes"] = fixes
                yield doc
        record_counts(self, counts, seconds)


def quarantine_record(doc: Document, reason: str, preview_chars: int = 2000) -> Document:
    """What quarantine keeps of a bad record: why, where it came from, its size and a preview (the
    whole record is still in data/raw at that position)."""
    size = len(doc.text.encode("utf-8", errors="surrogatepass"))
    preview = doc.text[:preview_chars].encode("utf-8", errors="backslashreplace").decode("utf-8")
    return Document(text=preview, id=doc.id, metadata={**doc.metadata, "reason": reason, "bytes": size})


class IdentifyLanguage(DocumentRule):
    """Sets metadata['lang'] from fastText's lid.176 (clean/language_id.py; or keeps the declared one when
    unsure); removes documents confidently in a language that `clean.language.keep` does not list."""

    name = "🌐 language"

    def __init__(self, cfg: Language, removed: DiskWriter):
        super().__init__(removed)
        language_id.identifier(tuple(cfg.candidates))  # the model loaded once, before the workers fork
        self.cfg = cfg

    def reject(self, doc: Document) -> str | None:
        said = doc.metadata.get("lang")
        lang, score, detected = language_id.decide(doc.text, said, self.cfg)
        doc.metadata.update(lang=lang, lang_score=round(score, 4), lang_detected=detected, lang_declared=said)
        return None if lang in self.cfg.keep else "language"


class QualityRules(DocumentRule):
    """The quality rules of clean/quality.py with the thresholds for the document's language."""

    name = "🔍 quality"

    def __init__(self, cfg: dict, min_chars: int, removed: DiskWriter):
        super().__init__(removed)
        quality.check_thresholds(cfg)
        quality.load_tables()
        self.cfg = cfg
        self.rules: dict[str, list] = {}  # each language's active rules, made on its first document
        self.min_chars = min_chars

    def reject(self, doc: Document) -> str | None:
        if len(doc.text) < self.min_chars:
            return "too_short"
        lang = doc.metadata["lang"]
        if lang not in self.rules:
            self.rules[lang] = quality.active_rules(quality.rules_for(lang, self.cfg))
        return quality.first_failure(quality.TextStats(doc.text, lang), self.rules[lang])


class ScrubPII(PipelineStep):
    name = "🔒 PII"
    type = "llmpipe"

    def __init__(self, kinds: dict[str, bool]):
        super().__init__()
        self.kinds = kinds

    def run(self, data, rank: int = 0, world_size: int = 1):
        seconds = 0.0
        for doc in data:
            started = perf_counter()
            doc.text, counts = pii.scrub(doc.text, self.kinds)
            seconds += perf_counter() - started
            if counts:
                doc.metadata["pii"] = counts
            yield doc
        record_counts(self, Counter(), seconds)


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
                record = orjson.loads(line)  # written by shard_writer (datatrove's JsonlWriter)
                yield Document(text=record["text"], id=record["id"], metadata=record.get("metadata", {}))
