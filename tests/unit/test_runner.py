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
