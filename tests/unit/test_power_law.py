"""The scaling-law fits recover the laws that generated their points, with intervals that hold them."""

import numpy as np
import pytest

from llmpipe.studies import power_law

TRUE = {"E": 1.6, "A": 0.5, "alpha": 0.4, "B": 0.9, "beta": 0.3}  # N, D in millions
SIZES = [0.4e6, 1.3e6, 3.1e6]
TOKENS = [0.14e6, 0.28e6, 0.55e6, 1.1e6]


def grid(noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d = (np.array(v, dtype=float) for v in zip(*((n, d) for n in SIZES for d in TOKENS), strict=True))
    loss = power_law.joint_law((n / 1e6, d / 1e6), *TRUE.values()) + rng.normal(0, noise, len(n))
    return n, d, loss


def test_joint_fit_recovers_a_noiseless_law():
    fit = power_law.fit_joint(*grid(noise=0.0))
    assert fit.values == pytest.approx(list(TRUE.values()), rel=1e-3)
    assert fit.rmse < 1e-6 and fit.points == 12


def test_joint_fit_intervals_cover_the_true_law_about_95_percent_of_the_time():
    covered, runs = dict.fromkeys(TRUE, 0), 50
    for seed in range(runs):
        fit = power_law.fit_joint(*grid(noise=0.002, seed=seed))
        for name, (_, low, high) in fit.table().items():
            covered[name] += low <= TRUE[name] <= high
        assert fit.rmse < 0.004
    # 95% intervals: fewer than 43 of 50 would happen with probability 0.001 if they were right
    assert min(covered.values()) >= 43, covered


def test_joint_fit_predicts_beyond_its_points():
    fit = power_law.fit_joint(*grid(noise=0.002))
    # the largest model on twice the data it was fitted to
    assert fit(3.1e6, 2.2e6) == pytest.approx(power_law.joint_law((3.1, 2.2), *TRUE.values()), abs=0.02)


def test_data_law_per_size_and_no_interval_without_degrees_of_freedom():
    d = np.array(TOKENS)
    loss = power_law.data_law(d / 1e6, 2.0, 0.7, 0.35)
    fit = power_law.fit_data(d, loss)
    assert fit.values == pytest.approx([2.0, 0.7, 0.35], rel=1e-3) and fit.low is not None
    exact = power_law.fit_data(d[:3], loss[:3])  # three points, three parameters
    assert exact.low is None and exact.high is None and exact.values == pytest.approx([2.0, 0.7, 0.35], rel=1e-2)


def test_fit_points_chooses_the_law_the_points_allow():
    n, d, loss = grid(noise=0.0)
    points = [
        {"size": f"s{int(ni)}", "params": ni, "tokens": di, "val_bpb": li}
        for ni, di, li in zip(n, d, loss, strict=True)
    ]
    assert list(power_law.fit_points(points)) == ["all"]
    one_size = [p for p in points if p["params"] == SIZES[0]]
    assert list(power_law.fit_points(one_size)) == [f"s{int(SIZES[0])}"]
    assert power_law.fit_points(one_size[:2]) == {}  # two data amounts: nothing to fit
    with pytest.raises(ValueError, match="6 points"):
        power_law.fit_joint(n[:4], d[:4], loss[:4])


def test_a_parameter_pushed_to_its_bound_is_flagged():
    # Points that fall faster than any floor allows: the best E would be negative, so it sits at 0.
    d = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6])
    fit = power_law.fit_data(d, 2.0 * (d / 1e6) ** -0.3 - 1.5)
    assert "E" in fit.at_bound and fit.values[0] == pytest.approx(0, abs=1e-6)
    clean = power_law.fit_data(d, 1.0 + 2.0 * (d / 1e6) ** -0.3)
    assert clean.at_bound == ()
