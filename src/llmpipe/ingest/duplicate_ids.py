"""Records that share an id (`ingest.duplicate_ids`). The id decides a document's split and names it
in the quarantine and removal files, so two records with one id must not pass unseen:
  rename      the later ones become <id>#2, <id>#3, ... (a number that no id seen so far holds);
  keep_first  the later ones are quarantined (reason duplicate_id);
  error       ingest stops, naming the id, both records' sources and this setting.
Every record passes here, whatever its format or source (a Hugging Face dataset too), and so do
the ids llmpipe makes from a file name and a position: two folders' part-0.jsonl both give
part-0:0000001.
"""

import hashlib
import logging
from collections.abc import Callable

log = logging.getLogger("llmpipe")
SHOWN = 5  # duplicates that the warning names


def digest(doc_id: str) -> int:
    """64 bits of the id's BLAKE2b hash: what `DuplicateIds` keeps of an id, ~80 bytes per document in
    a Python set whatever the id's length. Two different ids share a digest with odds of about n²/2^65
    for n ids (one in 3,000 at 10^8 ids): the later one is then taken for a duplicate and renamed,
    quarantined (kept in the quarantine file, not lost) or stops ingest naming both, by the policy."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "big")


class DuplicateIds:
    """Sees every document's id once, in corpus order, and applies `policy` to an id seen before.
    `first_source(id)` finds the source of the first record with that id (by reading the corpus
    again: only the error, which ends ingest, needs it, so no source is held per document)."""

    def __init__(self, policy: str, first_source: Callable[[str], str | None]):
        assert policy in ("keep_first", "rename", "error"), policy  # the schema checked it
        self.policy, self.first_source = policy, first_source
        self.seen: set[int] = set()
        self.next_number: dict[int, int] = {}  # rename: the number to try next, per duplicated id
        self.found, self.examples = 0, []

    def check(self, doc_id: str, source: str) -> str | None:
        """The id to keep the record under (its own, or a new one), or None: quarantine it."""
        key = digest(doc_id)
        if key not in self.seen:
            self.seen.add(key)
            return doc_id
        self.found += 1
        if len(self.examples) < SHOWN:
            self.examples.append(f"{doc_id!r} ({source})")
        if self.policy == "error":
            first = self.first_source(doc_id) or "an earlier record"
            raise ValueError(
                f"two records have the id {doc_id!r}: {first} and {source}. Set ingest.duplicate_ids=rename "
                f"(the later one becomes {doc_id}#2) or keep_first (it is quarantined), or make the ids unique"
            )
        if self.policy == "keep_first":
            return None
        return self.renamed(doc_id, key)

    def renamed(self, doc_id: str, key: int) -> str:
        """<id>#2, #3, ...: the first number whose id no record has had, so a corpus that holds `a#2`
        itself never sees it twice (a real `a#2` that comes later is renamed in its turn)."""
        number = self.next_number.get(key, 2)
        while (new_key := digest(f"{doc_id}#{number}")) in self.seen:
            number += 1
        self.next_number[key] = number + 1
        self.seen.add(new_key)
        return f"{doc_id}#{number}"

    def report(self):
        if not self.found:
            return
        done = {"rename": "renamed <id>#2, <id>#3, ...", "keep_first": "quarantined (duplicate_id)"}[self.policy]
        log.warning(
            "records whose id an earlier record has: %d, %s (ingest.duplicate_ids=%s); the first of them: %s",
            self.found,
            done,
            self.policy,
            ", ".join(self.examples),
        )
