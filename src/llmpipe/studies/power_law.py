"""Scaling laws fitted to (model size, data, loss) points, with confidence intervals.

The joint law (Chinchilla's form, Hoffmann et al. 2022, eq. 2):

    L(N, D) = E + A / N^alpha + B / D^beta

with N the non-embedding parameters in millions and D the training tokens in millions (units that
keep the five parameters within a few orders of magnitude of each other, which least squares needs).
It takes at least 6 points over at least 2 sizes and 2 data amounts. With fewer, each size gets the
data law L(D) = E + B / D^beta from its own points (at least 3). Fits are nonlinear least squares
(scipy's curve_fit, from a few starting exponents: the loss surface has flat valleys); the 95%
intervals are the estimate +- t(0.975, n - k) standard errors from the covariance of the fit, which
assumes the noise is the same for every point. With n = k points there is no interval.
"""

import itertools
import warnings
from dataclasses import dataclass

import numpy as np

MILLION = 1e6
STARTS = (0.1, 0.3, 0.6)  # starting exponents tried for each of alpha and beta


def joint_law(x: np.ndarray, e: float, a: float, alpha: float, b: float, beta: float) -> np.ndarray:
    n, d = x  # millions of parameters, millions of tokens
    return e + a / n**alpha + b / d**beta


def data_law(d: np.ndarray, e: float, b: float, beta: float) -> np.ndarray:
    return e + b / d**beta


@dataclass
class Fit:
    law: str  # "joint" (L(N, D)) or "data" (L(D) for one size)
    names: tuple[str, ...]
    values: np.ndarray
    low: np.ndarray | None  # 95% interval; None when there are no degrees of freedom left
    high: np.ndarray | None
    rmse: float  # of the fitted points, in the loss's units
    points: int
    at_bound: tuple[str, ...] = ()  # parameters the fit pushed to a bound: the points do not pin them down

    def __call__(self, n_params: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        """The fitted loss at raw counts (parameters, tokens); a data law ignores n_params."""
        d = np.asarray(tokens, dtype=float) / MILLION
        if self.law == "data":
            return data_law(d, *self.values)
        n = np.asarray(n_params, dtype=float) / MILLION
        return joint_law((n, d), *self.values)

    def table(self) -> dict[str, tuple[float, float | None, float | None]]:
        """name -> (estimate, 95% low, 95% high)."""
        low = self.low if self.low is not None else [None] * len(self.names)
        high = self.high if self.high is not None else [None] * len(self.names)
        return {k: (float(v), lo, hi) for k, v, lo, hi in zip(self.names, self.values, low, high, strict=True)}


def least_squares(law, x, y: np.ndarray, starts: list[list[float]], bounds) -> tuple[np.ndarray, np.ndarray]:
    """The best of the fits from each start: (parameters, covariance)."""
    from scipy.optimize import OptimizeWarning, curve_fit

    best = None
    for p0 in starts:
        try:
            with warnings.catch_warnings():  # no covariance with no degrees of freedom: `intervals` says so
                warnings.simplefilter("ignore", OptimizeWarning)
                values, cov = curve_fit(law, x, y, p0=p0, bounds=bounds, maxfev=20000)
        except RuntimeError:  # no convergence from this start
            continue
        sse = float(np.sum((law(x, *values) - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, values, cov)
    if best is None:
        raise ValueError(f"the power law did not converge on {len(y)} points from any of {len(starts)} starts")
    return best[1], best[2]


def intervals(values: np.ndarray, cov: np.ndarray, dof: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """95% intervals from the covariance (Student t with dof degrees of freedom)."""
    from scipy.stats import t

    if dof < 1:
        return None, None
    half = t.ppf(0.975, dof) * np.sqrt(np.abs(np.diag(cov)))  # inf where a parameter is not identified
    return values - half, values + half


def at_bounds(names, values: np.ndarray, bounds) -> tuple[str, ...]:
    """The parameters whose estimate sits on a bound of the search (E = 0, an exponent at 3): the
    least-squares optimum wants them beyond it, so their value and interval mean little."""
    lower, upper = (np.asarray(b, dtype=float) for b in bounds)
    close = np.isclose(values, lower, rtol=0, atol=1e-6) | np.isclose(values, upper, rtol=1e-6, atol=0)
    return tuple(name for name, hit in zip(names, close, strict=True) if hit)


def make_fit(law_name: str, names, law, x, y: np.ndarray, starts, bounds) -> Fit:
    values, cov = least_squares(law, x, y, starts, bounds)
    low, high = intervals(values, cov, len(y) - len(names))
    rmse = float(np.sqrt(np.mean((law(x, *values) - y) ** 2)))
    return Fit(law_name, tuple(names), values, low, high, rmse, len(y), at_bounds(names, values, bounds))


def fit_joint(n_params, tokens, loss) -> Fit:
    """L(N, D) = E + A / N^alpha + B / D^beta from points (raw parameter and token counts)."""
    n, d, y = (np.asarray(v, dtype=float) for v in (n_params, tokens, loss))
    if len(y) < 6 or len(set(n)) < 2 or len(set(d)) < 2:
        raise ValueError(f"the joint law needs 6 points over 2 sizes and 2 data amounts; got {len(y)}")
    spread = float(np.ptp(y)) or 1.0
    starts = [[0.5 * y.min(), spread, alpha, spread, beta] for alpha, beta in itertools.product(STARTS, STARTS)]
    bounds = ([0, 0, 0, 0, 0], [np.inf, np.inf, 3, np.inf, 3])
    return make_fit("joint", ("E", "A", "alpha", "B", "beta"), joint_law, (n / MILLION, d / MILLION), y, starts, bounds)


def fit_data(tokens, loss) -> Fit:
    """L(D) = E + B / D^beta from one size's points."""
    d, y = (np.asarray(v, dtype=float) for v in (tokens, loss))
    if len(y) < 3 or len(set(d)) < 3:
        raise ValueError(f"the data law needs 3 points at 3 data amounts; got {len(y)}")
    starts = [[0.5 * y.min(), float(np.ptp(y)) or 1.0, beta] for beta in STARTS]
    return make_fit("data", ("E", "B", "beta"), data_law, d / MILLION, y, starts, ([0, 0, 0], [np.inf, np.inf, 3]))


def fit_points(points: list[dict]) -> dict[str, Fit]:
    """The law the points allow: {"all": joint fit}, else {size: data law} for each size with 3
    points or more (possibly none). Points have size, params (N), tokens (D) and val_bpb."""
    sizes = sorted({p["size"] for p in points})
    if len(points) >= 6 and len(sizes) >= 2 and len({p["tokens"] for p in points}) >= 2:
        return {"all": fit_joint(*zip(*((p["params"], p["tokens"], p["val_bpb"]) for p in points), strict=True))}
    fits = {}
    for size in sizes:
        own = [p for p in points if p["size"] == size]
        if len({p["tokens"] for p in own}) >= 3:
            fits[size] = fit_data([p["tokens"] for p in own], [p["val_bpb"] for p in own])
    return fits
