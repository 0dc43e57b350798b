"""What the clean stage did, from the records it wrote: metrics/clean.json, a length histogram for
`dvc plots`, and reports/clean.md with a few removed examples per rule.

Everything is counted from the output records themselves (kept, removed/<rule>, quarantine) as they
are written, so the numbers cannot disagree with the data, and `Tally.account` checks that every
input record is in exactly one of them. The tally holds counters, never the records.
"""

import bisect
import math
from collections import Counter, defaultdict

from llmpipe.data import quarantine

EXAMPLES_PER_RULE = 3
HISTOGRAM_BINS = range(3, 21)  # byte lengths 2^3 .. 2^20 (upper edges)


def size(record: dict) -> int:
    return len(record["text"].encode("utf-8"))


def lang_of(record: dict) -> str:
    return record.get("lang") or "unknown"


def bin_of(n: int) -> int:
    """The histogram bin of a byte length: log2 of the bin's upper edge, clipped to HISTOGRAM_BINS."""
    return min(max(math.ceil(math.log2(max(n, 1))), HISTOGRAM_BINS[0]), HISTOGRAM_BINS[-1])


class Tally:
    """What the report needs, counted one record at a time (records are flat dicts: id, text and
    metadata keys), so that the stage's memory does not grow with the corpus: counters, and the
    EXAMPLES_PER_RULE removed (and quarantined) records with the smallest ids per rule."""

    def __init__(self, langs: list[str]):
        self.langs = langs  # kept languages: one histogram column pair each, the rest under `other`
        self.languages: dict[str, Counter] = defaultdict(Counter)
        self.removed: dict[str, Counter] = defaultdict(Counter)
        self.removed_langs: dict[str, Counter] = defaultdict(Counter)
        self.quarantined, self.fixed, self.pii, self.histogram = Counter(), Counter(), Counter(), Counter()
        self.kept = self.kept_bytes = self.identified = self.declared = 0
        self.examples: dict[str, list] = defaultdict(list)  # rule -> (id, seen, record), smallest first
        self.seen = 0  # ties (a corpus may repeat an id) go to the record met first

    def column(self, record: dict) -> str:
        return lang_of(record) if lang_of(record) in self.langs else "other"

    def entered(self, record: dict):
        raw = record.get("raw_bytes", record.get("bytes", 0))
        self.languages[lang_of(record)].update(docs_in=1, bytes_in=raw)
        self.histogram[(f"in_{self.column(record)}", bin_of(raw))] += 1
        if "lang_detected" in record:
            self.identified += bool(record["lang_detected"])
            self.declared += not record["lang_detected"]

    def add_kept(self, record: dict):
        self.entered(record)
        self.fixed.update(record.get("fixes", []))
        self.pii.update(record.get("pii", {}))
        self.kept += 1
        self.kept_bytes += size(record)
        self.languages[lang_of(record)].update(docs_out=1, bytes_out=size(record))
        self.histogram[(f"out_{self.column(record)}", bin_of(size(record)))] += 1

    def add_removed(self, rule: str, record: dict):
        self.entered(record)
        self.fixed.update(record.get("fixes", []))
        self.removed[rule].update(docs=1, bytes=size(record))
        self.removed_langs[rule][lang_of(record)] += 1
        self.example(rule, record)

    def add_quarantined(self, record: dict):
        self.entered(record)
        self.quarantined[record["reason"]] += 1
        self.example(f"quarantined: {record['reason']}", record)

    def example(self, key: str, record: dict):
        """Keep the record if its id is among the EXAMPLES_PER_RULE smallest of `key` so far."""
        self.seen += 1  # unique, so two examples never compare their records
        kept = {k: record.get(k) for k in ("id", "text", "lang", "source", "bytes")}
        bisect.insort(self.examples[key], (str(record["id"]), self.seen, kept))
        del self.examples[key][EXAMPLES_PER_RULE:]

    def examples_of(self, key: str) -> list[dict]:
        return [record for *_, record in self.examples.get(key, [])]

    def account(self, docs_in: int):
        """Every record that entered is kept, removed for one rule, or quarantined: nothing vanished."""
        out = self.kept + sum(c["docs"] for c in self.removed.values()) + sum(self.quarantined.values())
        assert out == docs_in, f"clean lost records: {docs_in} in, {out} accounted for"

    def metrics(self, ingest_quarantine: Counter) -> dict:
        """metrics/clean.json."""
        return {
            "docs_in": sum(c["docs_in"] for c in self.languages.values()),
            "bytes_in": sum(c["bytes_in"] for c in self.languages.values()),
            "docs_out": self.kept,
            "bytes_out": self.kept_bytes,
            "languages": {
                lang: {k: c[k] for k in ("docs_in", "bytes_in", "docs_out", "bytes_out")}
                for lang, c in sorted(self.languages.items())
            },
            "removed": {
                rule: {
                    "docs": c["docs"],
                    "bytes": c["bytes"],
                    "per_language": dict(sorted(self.removed_langs[rule].items())),
                }
                for rule, c in sorted(self.removed.items())
            },
            "quarantined": quarantine.counts(self.quarantined, quarantine.CLEAN),  # every reason, 0 included
            "ingest_quarantined": quarantine.counts(ingest_quarantine, quarantine.INGEST),
            "fixed": dict(sorted(self.fixed.items())),
            "pii_replaced": dict(sorted(self.pii.items())),
            "lang_identified": self.identified,
            "lang_kept_declared": self.declared,
        }

    def length_histogram(self) -> list[dict]:
        """Rows for `dvc plots`: documents per byte-length bin (log2 of the upper edge), in and out, for
        each kept language; documents in any other language are counted under `other`."""
        columns = [f"{way}_{lang}" for lang in self.langs for way in ("in", "out")] + ["in_other"]
        return [{"log2_bytes": b, **{c: self.histogram[(c, b)] for c in columns}} for b in HISTOGRAM_BINS]


def histogram_png(rows: list[dict], path):
    """The length histogram as a picture, for the MLflow run and `dvc plots show`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in rows[0] if c != "log2_bytes" and any(r[c] for r in rows)]
    x = [r["log2_bytes"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    for c in columns:
        ax.plot(x, [r[c] for r in rows], marker="o", linestyle="-" if c.startswith("out") else "--", label=c)
    ax.set(xlabel="document length, log2 bytes (bin upper edge)", ylabel="documents")
    ax.set_title("Document lengths before (in) and after (out) clean")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def excerpt(text: str, limit: int = 300) -> str:
    text = text if len(text) <= limit else text[:limit] + " …"
    return text.replace("```", "'''")


def report(m: dict, tally: Tally) -> str:
    """reports/clean.md."""
    lines = [
        "# Cleaning report",
        "",
        f"{m['docs_in']} documents ({m['bytes_in']:,} bytes) in, {m['docs_out']} ({m['bytes_out']:,} bytes) out.",
        "",
        "| language | docs in | docs out | bytes in | bytes out |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {lang} | {c['docs_in']} | {c['docs_out']} | {c['bytes_in']:,} | {c['bytes_out']:,} |"
            for lang, c in m["languages"].items()
        ),
        "",
        "## Removed, by rule",
        "",
        "| rule | docs | bytes | per language |",
        "| --- | ---: | ---: | --- |",
        *(
            f"| {rule} | {c['docs']} | {c['bytes']:,} | "
            + ", ".join(f"{k}: {v}" for k, v in c["per_language"].items())
            + " |"
            for rule, c in m["removed"].items()
        ),
        "",
        "## Quarantined (bad input)",
        "",
        "In ingest: " + (", ".join(f"{k}: {v}" for k, v in m["ingest_quarantined"].items() if v) or "none") + ".  ",
        "In clean: " + (", ".join(f"{k}: {v}" for k, v in m["quarantined"].items() if v) or "none") + ".",
        "",
        "## Normalization and PII",
        "",
        "Fixed: " + (", ".join(f"{k}: {v}" for k, v in m["fixed"].items()) or "nothing") + ".  ",
        "PII replaced: " + (", ".join(f"{k}: {v}" for k, v in m["pii_replaced"].items()) or "none") + ".  ",
        f"Language from the identifier: {m['lang_identified']}; kept as declared (identifier unsure): "
        f"{m['lang_kept_declared']}.",
        "",
        "## Examples of removed documents",
        "",
    ]
    quarantined = sorted(f"quarantined: {reason}" for reason, count in m["quarantined"].items() if count)
    for key in [*sorted(m["removed"]), *quarantined]:
        lines += [f"### {key}", ""]
        for r in tally.examples_of(key):
            where = f"from `{r.get('source', '?')}`, {r['bytes']} bytes" if key in quarantined else f"({lang_of(r)})"
            lines += [f"`{r['id']}` {where}", "", "```", excerpt(r["text"]), "```", ""]
    return "\n".join(lines).rstrip() + "\n"
