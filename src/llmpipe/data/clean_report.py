"""What the clean stage did, from the records it wrote: metrics/clean.json, a length histogram for
`dvc plots`, and reports/clean.md with a few removed examples per rule.

Everything is counted from the output files themselves (kept, removed/<rule>, quarantine), so the
numbers cannot disagree with the data, and `account` checks that every input record is in exactly
one of them.
"""

import math
from collections import Counter, defaultdict

EXAMPLES_PER_RULE = 3
HISTOGRAM_BINS = range(3, 21)  # byte lengths 2^3 .. 2^20 (upper edges)


def size(record: dict) -> int:
    return len(record["text"].encode("utf-8"))


def lang_of(record: dict) -> str:
    return record.get("lang") or "unknown"


def account(docs_in: int, kept: list, removed: dict[str, list], quarantined: list):
    """Every record that entered is kept, removed for one rule, or quarantined: nothing vanished."""
    out = len(kept) + sum(len(v) for v in removed.values()) + len(quarantined)
    assert out == docs_in, f"clean lost records: {docs_in} in, {out} accounted for"


def metrics(
    kept: list[dict], removed: dict[str, list[dict]], quarantined: list[dict], ingest_quarantine: Counter
) -> dict:
    """metrics/clean.json. Records are flat dicts (id, text and metadata keys)."""
    everything = [*kept, *(r for rs in removed.values() for r in rs)]
    languages: dict[str, Counter] = defaultdict(Counter)
    for r in [*everything, *quarantined]:
        raw = r.get("raw_bytes", r.get("bytes", 0))
        languages[lang_of(r)].update(docs_in=1, bytes_in=raw)
    for r in kept:
        languages[lang_of(r)].update(docs_out=1, bytes_out=size(r))
    fixed = Counter(fix for r in everything for fix in r.get("fixes", []))
    pii = Counter()
    for r in kept:
        pii.update(r.get("pii", {}))
    detected = [r for r in everything if "lang_detected" in r]
    return {
        "docs_in": sum(c["docs_in"] for c in languages.values()),
        "bytes_in": sum(c["bytes_in"] for c in languages.values()),
        "docs_out": len(kept),
        "bytes_out": sum(size(r) for r in kept),
        "languages": {
            lang: {k: c[k] for k in ("docs_in", "bytes_in", "docs_out", "bytes_out")}
            for lang, c in sorted(languages.items())
        },
        "removed": {
            rule: {
                "docs": len(rs),
                "bytes": sum(size(r) for r in rs),
                "per_language": dict(sorted(Counter(lang_of(r) for r in rs).items())),
            }
            for rule, rs in sorted(removed.items())
        },
        "quarantined": dict(sorted(Counter(r["reason"] for r in quarantined).items())),
        "ingest_quarantined": dict(sorted(ingest_quarantine.items())),
        "fixed": dict(sorted(fixed.items())),
        "pii_replaced": dict(sorted(pii.items())),
        "lang_identified": sum(1 for r in detected if r["lang_detected"]),
        "lang_kept_declared": sum(1 for r in detected if not r["lang_detected"]),
    }


def length_histogram(
    kept: list[dict], removed: dict[str, list[dict]], quarantined: list[dict], langs: list[str]
) -> list[dict]:
    """Rows for `dvc plots`: documents per byte-length bin (log2 of the upper edge), in and out, for
    each kept language; documents in any other language are counted under `other`."""

    def bin_of(n: int) -> int:
        return min(max(math.ceil(math.log2(max(n, 1))), HISTOGRAM_BINS[0]), HISTOGRAM_BINS[-1])

    def column(record: dict) -> str:
        return lang_of(record) if lang_of(record) in langs else "other"

    counts = Counter()
    for r in [*kept, *quarantined, *(r for rs in removed.values() for r in rs)]:
        counts[(f"in_{column(r)}", bin_of(r.get("raw_bytes", r.get("bytes", 0))))] += 1
    for r in kept:
        counts[(f"out_{column(r)}", bin_of(size(r)))] += 1
    columns = [f"{way}_{lang}" for lang in langs for way in ("in", "out")] + ["in_other"]
    return [{"log2_bytes": b, **{c: counts[(c, b)] for c in columns}} for b in HISTOGRAM_BINS]


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


def report(m: dict, removed: dict[str, list[dict]], quarantined: list[dict]) -> str:
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
        "In ingest: " + (", ".join(f"{k}: {v}" for k, v in m["ingest_quarantined"].items()) or "none") + ".  ",
        "In clean: " + (", ".join(f"{k}: {v}" for k, v in m["quarantined"].items()) or "none") + ".",
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
    for rule, records in sorted(removed.items()):
        lines += [f"### {rule}", ""]
        for r in sorted(records, key=lambda r: r["id"])[:EXAMPLES_PER_RULE]:
            lines += [f"`{r['id']}` ({lang_of(r)})", "", "```", excerpt(r["text"]), "```", ""]
    by_reason = defaultdict(list)
    for r in quarantined:
        by_reason[r["reason"]].append(r)
    for reason, records in sorted(by_reason.items()):
        lines += [f"### quarantined: {reason}", ""]
        for r in records[:EXAMPLES_PER_RULE]:
            lines += [
                f"`{r['id']}` from `{r.get('source', '?')}`, {r['bytes']} bytes",
                "",
                "```",
                excerpt(r["text"]),
                "```",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
