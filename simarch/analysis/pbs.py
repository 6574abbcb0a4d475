"""Probabilistically bounded staleness (PBS) of a Dynamo-style quorum store.

The WARS model of Bailis et al., "Probabilistically Bounded Staleness for Practical Partial
Quorums" (VLDB 2012): a write is sent to all ``n`` copies; copy ``i`` applies it ``W_i``
after it was sent, and its acknowledgement reaches the coordinator ``A_i`` later; the write
*commits* when ``w`` acknowledgements are in. A read that begins ``t`` after the commit asks
all ``n`` copies: its request reaches copy ``i`` after ``R_i`` (the copy answers with what it
holds then), and the answer returns after ``S_i``; the read takes the first ``r`` answers and
returns the newest version among them. It is **stale** when none of those ``r`` copies had
applied the write. W, A, R and S are independent, each i.i.d. over the copies.

:func:`stale_probability` is the probability of a stale read at ``t`` (one minus the
"t-visibility"), for exponential W, A, R and S; :func:`order_statistic_mean` and
:func:`order_statistic_quantile` give the latency of a quorum op whose copies' times are
i.i.d. exponential (the k-th fastest of n).

The simulator's quorum datastore (``quorum: {r, w}``) follows the same model, with the
replication stream's ``lag.network`` for each leg and the copies' queueing and service added
to W and R; see docs/background/consistency.md.
"""

from __future__ import annotations

import math

import numpy as np


def _check(n: int, r: int, w: int) -> None:
    for name, v in (("n", n), ("r", r), ("w", w)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    if r > n or w > n:
        raise ValueError(f"r and w are at most n = {n} (got r = {r}, w = {w})")


def stale_probability(t: float | np.ndarray, n: int, r: int, w: int, *, write: float = 1.0,
                      ack: float | None = None, read: float | None = None,
                      response: float | None = None, trials: int = 200_000,
                      seed: int = 0) -> float | np.ndarray:
    """The probability that a read beginning ``t`` seconds after a write committed returns
    an older version, in the WARS model with exponential leg times of means ``write`` (W),
    ``ack`` (A), ``read`` (R) and ``response`` (S); the last three default to ``write``.

    ``r + w > n`` (strict quorums) gives 0 exactly. Otherwise the answer is estimated by
    Monte Carlo over ``trials`` writes from a seeded generator (its standard error is at
    most ``0.5 / sqrt(trials)``, about 0.0011 with the default); the same draws serve every
    ``t``, so the curve is smooth and non-increasing in ``t``. ``t`` may be an array.
    """
    _check(n, r, w)
    ts = np.atleast_1d(np.asarray(t, dtype=float))
    if np.any(ts < 0) or not np.all(np.isfinite(ts)):
        raise ValueError("t must be finite and >= 0")
    scalar = np.ndim(t) == 0
    if r + w > n:
        out = np.zeros_like(ts)
        return float(out[0]) if scalar else out
    a_mean = write if ack is None else ack
    r_mean = write if read is None else read
    s_mean = write if response is None else response
    for name, m in (("write", write), ("ack", a_mean), ("read", r_mean), ("response", s_mean)):
        if not m > 0 or not math.isfinite(m):
            raise ValueError(f"the mean {name} time must be > 0, got {m!r}")
    rng = np.random.default_rng(seed)
    m = int(trials)
    W = rng.exponential(write, (m, n))
    A = rng.exponential(a_mean, (m, n))
    R = rng.exponential(r_mean, (m, n))
    S = rng.exponential(s_mean, (m, n))
    commit = np.partition(W + A, w - 1, axis=1)[:, w - 1]  # the w-th acknowledgement
    # the r copies whose answers come first
    first = np.argpartition(R + S, r - 1, axis=1)[:, :r] if r < n else np.broadcast_to(np.arange(n), (m, n))
    rows = np.arange(m)[:, None]
    Wf, Rf = W[rows, first], R[rows, first]
    # copy i answers with the write iff W_i <= commit + t + R_i, i.e. t >= W_i - R_i - commit;
    # the read is stale iff every one of the first r copies lacks it: t < min_i (W_i - R_i - commit)
    need = (Wf - Rf - commit[:, None]).min(axis=1)
    out = (need[None, :] > ts[:, None]).mean(axis=1)
    return float(out[0]) if scalar else out


def order_statistic_mean(k: int, n: int, mean: float) -> float:
    """The mean of the ``k``-th smallest of ``n`` i.i.d. exponential times of mean ``mean``:
    ``mean * sum_{i=0}^{k-1} 1 / (n - i)`` (a quorum op that waits for k of n copies)."""
    _check(n, k, k)
    return mean * sum(1.0 / (n - i) for i in range(k))


def order_statistic_quantile(q: float, k: int, n: int, mean: float) -> float:
    """The ``q``-quantile of the ``k``-th smallest of ``n`` i.i.d. exponential times of mean
    ``mean``: the x where ``P(at least k of n are <= x) = q`` (solved numerically)."""
    from scipy import optimize, stats  # on first use

    _check(n, k, k)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q!r}")

    def cdf(x: float) -> float:
        f = -math.expm1(-x / mean)
        return float(stats.binom.sf(k - 1, n, f)) - q

    hi = mean
    while cdf(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(cdf, 0.0, hi, xtol=1e-12 * mean, rtol=1e-12))
