"""The clean stage's own datatrove steps: screening and normalization, the language and quality
rules, PII scrubbing, and the reader and writer of its intermediate shards.

They keep datatrove's step interface (a generator of Documents per task), but not its per-document
bookkeeping: datatrove's filters and writers update several statistics, start a timer and template
an output file name for every document, which cost a fifth of the filter job on a corpus of short
documents. Here each step counts what it did in a Counter and sums the seconds of its own work, and
hands both to datatrove's statistics once per task (they land in the task logs and the job's
stats.json, as datatrove's own do).
"""

from abc import abstractmethod
from collections import Counter
from pathlib import Path
from time import perf_counter

import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter, ExactDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashDedupFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from llmpipe.data import language_id, pii, quality
from llmpipe.data.cleaning import clean_text, screen
from llmpipe.schema import Clean, Language


def record_counts(step: PipelineStep, counts: Counter, seconds: float | None = None):
    """A task's counts, and the seconds spent in the step's own work when it timed them, into
    datatrove's statistics (PipelineStep.stat_update itself: CountedStats replaces the step's own)."""
    for label, count in counts.items():
        PipelineStep.stat_update(step, label, value=count, unit="task")
    if seconds is not None:
        step.stats.time_stats.update(seconds, unit="task")


class CountedStats:
    """For datatrove's own steps (exact dedup's signature and filter, MinHash's filter): what they
    count per document goes into a Counter, handed to datatrove's statistics once per task, and the
    per-document length statistics are left out. The steps' work is theirs, unchanged."""

    def stat_update(self, *labels, value: int = 1, unit: str = None):
        for label in labels:
            self.tallies[label] += value

    def update_doc_stats(self, document: Document):
        pass

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.tallies = Counter()
        passed = super().run(data, rank, world_size)  # None from a step that ends a pipeline
        yield from passed or ()
        record_counts(self, self.tallies)


class ExactSignatures(CountedStats, ExactDedupSignature):
    pass


class ExactFilter(CountedStats, ExactDedupFilter):
    pass


class NearDuplicateFilter(CountedStats, MinhashDedupFilter):
    pass


def as_record(writer, document: Document) -> dict:
    """What the writers write (datatrove's default adapter deep-copies every document)."""
    return {"text": document.text, "id": document.id, "metadata": document.metadata}


class ShardWriter(DiskWriter):
    """datatrove's disk writer (local or remote folders through its fsspec layer) writing JSON lines
    as its JsonlWriter does, one file per task, {rank:05d}.jsonl, with one count per task instead
    of statistics per document. Not a JsonlWriter: datatrove checks a step's dependencies up its
    class tree, and its check for JsonlWriter's orjson reads the metadata of every installed
    distribution (0.13 s at every start of the stage; orjson is imported at the top of this module)."""

    name = "🐿 Jsonl shards"
    default_output_filename = "${rank}.jsonl"

    def __init__(self, folder: Path):
        super().__init__(str(folder), output_filename="${rank}.jsonl", compression=None, adapter=as_record, mode="wb")
        self.written, self.seconds, self.file = 0, 0.0, None

    def _write(self, document: dict, file_handler, _filename: str):
        file_handler.write(orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))

    def write(self, document: Document, rank: int = 0, **kwargs):
        started = perf_counter()
        if self.file is None:  # the task's file, opened (through datatrove's retries) on its first document
            self.file = self._get_output_file_with_retry(f"{rank:05d}.jsonl")
        self._write(as_record(self, document), self.file, "")
        self.written += 1
        self.seconds += perf_counter() - started

    def close(self):
        record_counts(self, Counter(total=self.written), self.seconds)
        # one process may run several tasks with this same step (datatrove's local executor)
        self.written, self.seconds, self.file = 0, 0.0, None
        super().close()

    def run(self, data, rank: int = 0, world_size: int = 1):
        with self:
            for document in data:
                self.write(document, rank)
                yield document


def removed_writer(work: Path, step: str) -> ShardWriter:
    return ShardWriter(work / "removed" / step)


def batches(data, max_docs: int, max_chars: int):
    """Lists of consecutive documents: at most max_docs of them, and no more characters than
    max_chars unless one document alone has more (memory stays bounded by the batch)."""
    batch, chars = [], 0
    for doc in data:
        if batch and (len(batch) == max_docs or chars + len(doc.text) > max_chars):
            yield batch
            batch, chars = [], 0
        batch.append(doc)
        chars += len(doc.text)
    if batch:
        yield batch


class DocumentRule(PipelineStep):
    """A rule that keeps a document or removes it for a reason: removed documents go to the rule's
    writer with metadata['filter_reason'] set, as datatrove's filters write them. A rule that is
    faster on many documents at once overrides reject_batch and sets batch_docs."""

    type = "llmpipe"
    batch_docs = 1
    batch_chars = 1 << 20

    def __init__(self, removed: DiskWriter):
        super().__init__()
        self.removed = removed

    @abstractmethod
    def reject(self, doc: Document) -> str | None:
        """Why the document is removed, or None to keep it."""

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        return [self.reject(doc) for doc in docs]

    def run(self, data, rank: int = 0, world_size: int = 1):
        counts, seconds = Counter(), 0.0
        with self.removed as out:
            for batch in batches(data, self.batch_docs, self.batch_chars):
                started = perf_counter()
                reasons = self.reject_batch(batch)
                seconds += perf_counter() - started
                for doc, reason in zip(batch, reasons, strict=True):
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
    """Sets metadata['lang'] from py3langid (or keeps the declared one when unsure); removes
    documents confidently in a language that `clean.language.keep` does not list. Documents are
    identified in batches: one walk of py3langid's automaton over a batch instead of one per
    document (language_id.FastIdentifier.classify_many)."""

    name = "🌐 language"
    batch_docs = 256

    def __init__(self, cfg: Language, removed: DiskWriter):
        super().__init__(removed)
        language_id.identifier(tuple(cfg.candidates))  # the model loaded once, before the workers fork
        self.cfg = cfg

    def reject(self, doc: Document) -> str | None:
        return self.reject_batch([doc])[0]

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        declared = [doc.metadata.get("lang") for doc in docs]
        decided = language_id.decide_many([doc.text for doc in docs], declared, self.cfg)
        reasons = []
        for doc, said, (lang, score, detected) in zip(docs, declared, decided, strict=True):
            doc.metadata.update(lang=lang, lang_score=round(score, 4), lang_detected=detected, lang_declared=said)
            reasons.append(None if lang in self.cfg.keep else "language")
        return reasons


class QualityRules(DocumentRule):
    """The quality rules of quality.py with the thresholds for the document's language."""

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
                record = orjson.loads(line)  # written by ShardWriter, with orjson
                yield Document(text=record["text"], id=record["id"], metadata=record.get("metadata", {}))
