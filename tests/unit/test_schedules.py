import pytest

from llmpipe.training.schedules import warmup_cosine, warmup_stable_decay


def test_warmup_then_cosine_to_the_floor():
    f = lambda s: warmup_cosine(s, warmup_steps=10, max_steps=110, min_ratio=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))


def test_warmup_stable_then_linear_decay_over_the_last_fraction():
    f = lambda s: warmup_stable_decay(s, warmup_steps=10, max_steps=110, min_ratio=0.1, decay_fraction=0.2)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert all(f(s) == 1.0 for s in range(10, 88))  # decay starts at 110 - 22 = 88
    assert f(99) == pytest.approx(1.0 - 0.9 * 11 / 22)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))


def test_wsd_never_decays_inside_the_warmup():
    f = lambda s: warmup_stable_decay(s, warmup_steps=8, max_steps=10, min_ratio=0.0, decay_fraction=0.5)  # noqa: E731
    assert [f(s) for s in range(8)] == pytest.approx([(s + 1) / 8 for s in range(8)])
    assert f(8) == 1.0 and f(9) == pytest.approx(0.5) and f(10) == 0.0
