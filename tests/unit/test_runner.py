import pytest

from llmpipe.runner import is_rank_zero


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, True),
        ({"RANK": "0"}, True),
        ({"RANK": "3"}, False),
        ({"LOCAL_RANK": "1"}, False),
        ({"SLURM_PROCID": "2"}, False),
    ],
)
def test_rank_zero_from_the_launchers_variables(monkeypatch, env, expected):
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() is expected


def test_the_summary_line_shows_every_chosen_figure_uncut():
    from llmpipe.runner import summary

    metrics = {
        "docs_in": 120,
        "docs_out": 100,
        "removed": {"too_short": {"docs": 12, "bytes": 80}, "near_duplicate": {"docs": 8, "bytes": 900}},
        "quarantined": {"binary": 0, "empty": 0},  # every reason, 0 included: the summary leaves 0 out
        "lm": {"val_bpb": 2.41234, "bigram_val_bpb": 2.7},
    }
    keys = ["docs_in", "docs_out", "removed/*/docs", "quarantined/*", "lm/val_bpb", "absent/key", "*/bigram_val_bpb"]
    assert summary(metrics, keys) == (
        "docs_in=120, docs_out=100, removed/*/docs: near_duplicate=8, too_short=12, quarantined: none, "
        "lm/val_bpb=2.412, lm/bigram_val_bpb=2.7"
    )
    assert summary({"a": 1, "b": {"c": 2}, "d": 0.5}) == "a=1, d=0.5"  # without keys: the top-level numbers
