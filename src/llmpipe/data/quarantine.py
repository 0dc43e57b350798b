"""Why a record is quarantined (set aside as bad input, with its reason and position): every reason
of ingest (ingest/corpus.py) and of clean (clean/normalize.screen). Their metrics count each reason, 0
included, so that `dvc metrics diff` and `dvc exp show` line up between runs whatever went wrong."""

from collections.abc import Mapping

INGEST = (
    "malformed_json", "invalid_utf8", "undecodable", "not_an_object", "missing_text", "empty",
    "invalid_unicode", "duplicate_id", "damaged_file", "truncated_file",
)  # fmt: skip
CLEAN = ("binary", "empty", "too_large")


def counts(found: Mapping[str, int], reasons: tuple[str, ...]) -> dict[str, int]:
    """{reason: count} for every reason, 0 included, in the order given."""
    assert set(found) <= set(reasons), f"reasons not listed in data/quarantine.py: {set(found) - set(reasons)}"
    return {reason: found.get(reason, 0) for reason in reasons}
