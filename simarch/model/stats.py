"""Student's t distribution, for confidence intervals and tests on a handful of batches or
replications (no SciPy needed at run time; checked against SciPy in the tests)."""

from __future__ import annotations

import math


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):
            if k > 1:
                term *= c * c * (2 * k - 2) / (2 * k - 1)
            total += term
        return (2 / math.pi) * (theta + (s * total if df > 1 else 0.0))
    total, term = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c * c * (2 * k - 1) / (2 * k)
        total += term
    return s * total


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom."""
    if not 0.5 < q < 1 or df < 1:
        raise ValueError("t_quantile needs 0.5 < q < 1 and df >= 1")
    mass = 2 * q - 1
    lo, hi = 0.0, 1.0
    while _t_two_sided_mass(hi, df) < mass:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_two_sided_mass(mid, df) < mass:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_sf(t: float, df: int) -> float:
    """P(T > t), the upper tail of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if t == math.inf:
        return 0.0
    if t == -math.inf:
        return 1.0
    mass = _t_two_sided_mass(abs(t), df)
    return (1.0 - mass) / 2 if t >= 0 else (1.0 + mass) / 2


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(``mu``)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    if k > 2 * mu + 1000:  # far in the tail: the Chernoff bound, below any useful threshold
        return math.exp(k - mu - k * math.log(k / mu))
    log_term = -mu  # log P(X = 0)
    cdf = 0.0
    for i in range(k):
        if i:
            log_term += math.log(mu / i)
        cdf += math.exp(log_term)
    return max(0.0, 1.0 - cdf)
