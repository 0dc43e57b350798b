import pytest

from llmpipe.schedules import warmup_cosine


def test_warmup_then_cosine_to_the_floor():
    f = lambda s: warmup_cosine(s, warmup_steps=10, max_steps=110, min_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))
