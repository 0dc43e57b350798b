"""What a change to the clean stage did to its outputs: two projects that ran the clean stage on the
same raw corpus (e.g. two `benchmarks/data_scale.py --work` folders, before and after), compared.

Prints, as markdown:
  - documents removed per rule (and quarantined, and kept), before and after, with the change, and
    each rule whose count moved by more than --flag percent (default 2);
  - the language of each document that reached language identification, before and after: the
    agreement, and a table of every (before, after) pair that differs.
A document's language is read from the records that left the filter job after language ID: the
kept output (data/clean, whose records are pieces "<id>#<n>" of a document) and every removed/
file; the quarantine holds records that never reached it.

Run:
  .venv/bin/python benchmarks/clean_compare.py /tmp/ds_before/all /tmp/ds_after/all
  .venv/bin/python benchmarks/clean_compare.py BEFORE AFTER --examples 5   # show disagreeing texts
"""

import argparse
import json
from collections import Counter
from pathlib import Path


def removed_counts(root: Path) -> dict[str, int]:
    """metrics/clean.json's documents per outcome: each removal rule, quarantined, kept."""
    metrics = json.loads((root / "metrics" / "clean.json").read_text())
    counts = {rule: entry["docs"] for rule, entry in metrics["removed"].items()}
    counts["(quarantined)"] = sum(metrics["quarantined"].values())
    counts["(kept)"] = metrics["docs_out"]
    return counts


def languages(root: Path) -> dict[str, tuple[str, str]]:
    """document id -> (language, a short text) for every document that reached language ID."""
    found = {}
    files = sorted((root / "data" / "clean").glob("*.jsonl")) + sorted((root / "data" / "removed").glob("*.jsonl"))
    for path in files:
        with path.open("rb") as lines:
            for line in lines:
                record = json.loads(line)
                if "lang" in record:
                    doc = record["id"].split("#")[0]
                    found.setdefault(doc, (record["lang"], record["text"][:160]))
    return found


def percent(before: int, after: int) -> str:
    if before == 0:
        return "new" if after else "0 %"
    return f"{100 * (after - before) / before:+.1f} %"


def rule_table(before: dict[str, int], after: dict[str, int], flag: float) -> list[str]:
    rows = ["| outcome | before | after | change |", "| --- | ---: | ---: | ---: |"]
    flagged = []
    for rule in sorted(set(before) | set(after)):
        b, a = before.get(rule, 0), after.get(rule, 0)
        rows.append(f"| {rule} | {b:,} | {a:,} | {percent(b, a)} |")
        if abs(a - b) > flag / 100 * max(b, 1) and not rule.startswith("("):
            flagged.append(rule)
    rows.append("")
    rows.append(f"rules whose count moved by more than {flag} %: {', '.join(flagged) or 'none'}")
    return rows


def language_table(before: dict, after: dict, examples: int) -> list[str]:
    both = sorted(set(before) & set(after))
    pairs = Counter((before[doc][0], after[doc][0]) for doc in both)
    same = sum(n for (b, a), n in pairs.items() if b == a)
    rows = [
        f"documents identified in both runs: {len(both):,} (only before: {len(set(before) - set(after)):,}, "
        f"only after: {len(set(after) - set(before)):,})",
        f"same language: {same:,} = {same / max(len(both), 1):.4f}",
        "",
        "| before | after | documents |",
        "| --- | --- | ---: |",
    ]
    rows += [f"| {b} | {a} | {n:,} |" for (b, a), n in pairs.most_common() if b != a]
    if examples:
        shown = Counter()
        rows.append("")
        for doc in both:
            (b, text), (a, _) = before[doc], after[doc]
            if b != a and shown[(b, a)] < examples:
                shown[(b, a)] += 1
                rows.append(f"- {doc} {b} -> {a}: {text!r}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="project root of the run before the change")
    parser.add_argument("after", type=Path, help="project root of the run after it")
    parser.add_argument("--flag", type=float, default=2.0, help="name rules whose count moves by more (percent)")
    parser.add_argument("--examples", type=int, default=0, help="texts shown per disagreeing language pair")
    args = parser.parse_args()
    print("## Documents per outcome\n")
    print("\n".join(rule_table(removed_counts(args.before), removed_counts(args.after), args.flag)))
    print("\n## Language identification\n")
    print("\n".join(language_table(languages(args.before), languages(args.after), args.examples)))


if __name__ == "__main__":
    main()
