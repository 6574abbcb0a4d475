"""An approximate queueing-network model of a whole design, solved in milliseconds.

Where :mod:`simarch.analysis.capacity` compares offered load with capacity on mean values
alone, this model puts the queueing back: every worker pool is a multi-server station with a
wait, and a caller that holds its worker through a synchronous call holds it for the callee's
*response*, wait included, so a slower callee loads its callers too (a layered queueing
model). What it computes, per component and end to end, at a load multiplier:

* visit rates along the calls (probabilities, ``requests:`` routing, cache misses from Che's
  approximation, datastore shards and replicas, retries as extra visits, rejected visits
  taken out of what flows on);
* per station (the pools of an instance or a replica; one pooled station for least
  connections and the power of two choices): utilisation, the probability of waiting and
  the mean wait from Erlang C, corrected for general service and arrival variability by
  Allen and Cunneen's factor ``(c_a^2 + c_s^2) / 2``; with a bounded queue, the M/M/c/K
  blocking probability and wait; for a pool whose visits all hold a worker of a
  worker-limited caller, a finite-source chain that cannot hold more visits than the
  callers have workers, and the callers saturate where those run out (the method of
  layers' view: a server's threads are the customers of the layer below);
* holding and response times, bottom up: a caller's holding time is its own service plus
  the time of its synchronous calls (network latency, the callee's response, capped at the
  timeout, every attempt of a retried call and the backoffs); ``forward`` calls add to the
  response but not to the holding time; ``async`` calls and queue consumers add load only;
  a parallel fan-out waits for the largest of its branches (Clark's moments of the maximum);
* second moments along the way, so that a 99th percentile per component (the Erlang C
  mixture: no wait, or an exponential wait, with the holding time) and end to end (a gamma
  distribution fitted to the first two moments of the response) can be given;
* closed workloads by mean-value analysis: exact MVA (Reiser and Lavenberg, with the exact
  recursion for multi-server stations) when the design is a product-form network, else a
  fixed point of the interactive response-time law ``X = N / (Z + R(X))`` with the waits
  scaled by ``(N - 1) / N`` (Schweitzer's estimate of the queue an arrival sees);
* the load multiplier at which the first station reaches utilisation 1 (or its callers'
  workers run out), found by bisection on the load with the whole model solved at each step.

Rates depend on times only through blocking, timeouts, retries and admission control; when a
design has any of these the two passes (rates top down, times bottom up) are repeated to a
fixed point, starting from an empty system (or, in the saturation search, from the fixed point
just below), so the fixed point found is the lowest one (a design that can also sit in a retry
storm is reported in its good state).

``docs/background/queueing-model.md`` states the method, the assumptions and the measured
accuracy against the simulation.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from ..errors import argument
from ..kinds import kind
from ..kinds.base import Route, Station
from ..model.architecture import Architecture, call_edges, call_graph, entry_of
from ..model.architecture import load as load_arch
from ..model.dists import Exponential
from ..model.regions import call_rtt_moments
from ..model.units import parse_multiplier
from ..model.workload import rate_profile
from ..results.text import fmt, html_table, table
from ..runtime.overload import overload_notes
from .capacity import propagate_flows

__all__ = ["ModelReport", "analyze", "format_model", "gamma_cdf", "gamma_quantile"]

METHOD = ("layered M/M/c: Erlang C with the Allen-Cunneen correction, M/M/c/K for bounded "
          "queues, finite-source pools behind worker-limited callers, holding times of "
          "synchronous calls to a fixed point, Che for LRU caches, retries as extra visits, "
          "Clark's maximum for fan-out; p99 from the Erlang C mixture (components) and a gamma "
          "fit (end to end)")
SHORT_METHOD = "layered M/M/c, Erlang C with Allen-Cunneen"
P99 = 0.99
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_NORMAL = NormalDist()
_REL = 1e-3  # relative precision of the saturation search
_MAX_ITER = 400  # passes of the fixed point at most
_WH_SHAPE = 1e5  # gamma shapes above this: the Wilson-Hilferty approximation


# =========================================================================== numbers


def _phi(z: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * z * z)


def _cdf_norm(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def _gamma_pq(a: float, x: float) -> tuple[float, float]:
    """The regularized incomplete gamma functions ``(P(a, x), Q(a, x))``: a power series
    below ``x = a + 1``, Lentz's continued fraction above (Numerical Recipes, 6.2), and the
    Wilson-Hilferty normal approximation for shapes above 10^5 (where it is within 2e-5)."""
    if not x > 0:
        return 0.0, 1.0
    if math.isinf(x):
        return 1.0, 0.0
    if a > _WH_SHAPE:
        h = 1.0 / (9.0 * a)
        z = ((x / a) ** (1.0 / 3.0) - (1.0 - h)) / math.sqrt(h)
        p = _cdf_norm(z)
        return p, 1.0 - p
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        ap, term = a, 1.0 / a
        total = term
        for _ in range(100_000):
            ap += 1.0
            term *= x / ap
            total += term
            if term < total * 1e-16:
                break
        p = min(1.0, total * math.exp(log_front))
        return p, 1.0 - p
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    q = min(1.0, math.exp(log_front) * h)
    return 1.0 - q, q


def gamma_cdf(x: float, shape: float, scale: float = 1.0) -> float:
    """P(X <= x) for X ~ Gamma(shape, scale) (regularized lower incomplete gamma)."""
    return _gamma_pq(shape, x / scale)[0]


def _gamma_pdf(x: float, shape: float, scale: float) -> float:
    if not x > 0:
        return math.inf if shape < 1 else (1.0 / scale if shape == 1 else 0.0)
    y = x / scale
    lp = (shape - 1.0) * math.log(y) - y - math.lgamma(shape)
    return math.exp(lp) / scale if lp < 700.0 else math.inf


def gamma_quantile(p: float, shape: float, scale: float = 1.0) -> float:
    """The ``p``-quantile of Gamma(shape, scale): from the Wilson-Hilferty approximation (or
    the lower-tail power law ``P(a, x) ~ x^a / Gamma(a + 1)`` when that is below 0), Newton
    steps on the regularized incomplete gamma in ``log x``, inside a bracket that every step
    narrows (bisection when a step leaves it); the approximation itself above shape 10^5."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1, got {p!r}")
    z = _NORMAL.inv_cdf(p)
    h = 1.0 / (9.0 * shape)
    base = 1.0 - h + z * math.sqrt(h)
    if shape > _WH_SHAPE:
        return shape * max(base, 0.0) ** 3 * scale
    if base > 0:
        u = 3.0 * math.log(base) + math.log(shape)
    else:
        u = (math.log(p) + math.lgamma(shape + 1.0)) / shape
    lo, hi = -math.inf, math.inf
    for _ in range(300):
        x = math.exp(u)
        f = _gamma_pq(shape, x)[0] - p
        if f < 0:
            lo = u
        else:
            hi = u
        ls = shape * u - x - math.lgamma(shape)  # log of d P / d log x
        slope = math.exp(ls) if ls < 700.0 else math.inf
        new = u - f / slope if slope > 0 and math.isfinite(slope) else math.nan
        if not lo < new < hi:
            if math.isfinite(lo) and math.isfinite(hi):
                new = 0.5 * (lo + hi)
            else:
                new = lo + 1.0 if math.isfinite(lo) else hi - 1.0
        if abs(new - u) <= 1e-14 * max(1.0, abs(u)) or hi - lo <= 1e-14 * max(1.0, abs(u)):
            return math.exp(new) * scale
        u = new
    return math.exp(u) * scale


# --------------------------------------------------------------------------- distributions
# A fitted distribution is a tuple: ("det", value), ("gamma", shape, scale), ("exp", rate)
# or ("hypo", rate1, rate2) (the sum of two independent exponentials).


def _fit(mean: float, var: float) -> tuple:
    """The gamma distribution with this mean and variance (a point mass when the variance
    is negligible)."""
    if not mean > 0:
        return ("det", 0.0)
    if math.isinf(mean) or math.isinf(var):
        return ("det", math.inf)
    if not var > 1e-12 * mean * mean:
        return ("det", mean)
    shape = mean * mean / var
    if shape > 1e7:
        return ("det", mean)
    return ("gamma", shape, var / mean)


def _cdf(d: tuple, t: float) -> float:
    k = d[0]
    if k == "det":
        return 1.0 if t >= d[1] else 0.0
    if t <= 0:
        return 0.0
    if k == "gamma":
        return _gamma_pq(d[1], t / d[2])[0]
    if k == "exp":
        return -math.expm1(-d[1] * t)
    a, b = d[1], d[2]
    if abs(a - b) <= 1e-9 * max(a, b):
        return 1.0 - (1.0 + a * t) * math.exp(-a * t)
    return 1.0 - (b * math.exp(-a * t) - a * math.exp(-b * t)) / (b - a)


def _pdf(d: tuple, t: float) -> float:
    k = d[0]
    if k == "det" or t <= 0:
        return 0.0
    if k == "gamma":
        return _gamma_pdf(t, d[1], d[2])
    if k == "exp":
        return d[1] * math.exp(-d[1] * t)
    a, b = d[1], d[2]
    if abs(a - b) <= 1e-9 * max(a, b):
        return a * a * t * math.exp(-a * t)
    return a * b * (math.exp(-a * t) - math.exp(-b * t)) / (b - a)


def _quantile(d: tuple, p: float) -> float:
    k = d[0]
    if k == "det":
        return d[1]
    if k == "gamma":
        return gamma_quantile(p, d[1], d[2])
    if k == "exp":
        return -math.log1p(-p) / d[1]
    return _mixture_quantile([(1.0, d)], p)


def _moments(d: tuple) -> tuple[float, float]:
    k = d[0]
    if k == "det":
        return d[1], 0.0
    if k == "gamma":
        return d[1] * d[2], d[1] * d[2] * d[2]
    if k == "exp":
        return 1.0 / d[1], 1.0 / d[1] ** 2
    return 1.0 / d[1] + 1.0 / d[2], 1.0 / d[1] ** 2 + 1.0 / d[2] ** 2


def _mixture_quantile(parts: list[tuple[float, tuple]], p: float) -> float:
    """The ``p``-quantile of a mixture ``sum w_i D_i`` (weights summing to 1): Newton steps on
    the mixture's distribution function, bracketed by the parts' own quantiles."""
    parts = [(w, d) for w, d in parts if w > 0]
    if not parts:
        return math.nan
    total = sum(w for w, _ in parts)
    parts = [(w / total, d) for w, d in parts]
    if any(d[0] == "det" and math.isinf(d[1]) for _, d in parts):
        inf_w = sum(w for w, d in parts if d[0] == "det" and math.isinf(d[1]))
        if inf_w >= 1.0 - p:
            return math.inf
        finite = [(w, d) for w, d in parts if not (d[0] == "det" and math.isinf(d[1]))]
        return _mixture_quantile(finite, p / (1.0 - inf_w))
    if len(parts) == 1 and parts[0][1][0] != "hypo":
        return _quantile(parts[0][1], p)
    qs = []
    for _, d in parts:
        if d[0] == "hypo":  # between the quantiles of its larger part and of twice that
            m = 1.0 / min(d[1], d[2])
            qs += [-math.log1p(-p) * m, -2.0 * math.log1p(-p) * m + 1.0 / max(d[1], d[2])]
        else:
            qs.append(_quantile(d, p))
    lo, hi = min(qs), max(qs)
    if hi <= lo:
        return lo
    x = 0.5 * (lo + hi)
    for _ in range(100):
        f = sum(w * _cdf(d, x) for w, d in parts) - p
        if f < 0:
            lo = x
        else:
            hi = x
        dens = sum(w * _pdf(d, x) for w, d in parts)
        new = x - f / dens if dens > 0 else math.nan
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(new - x) <= 1e-12 * max(x, 1e-300) or hi - lo <= 1e-12 * hi:
            return new
        x = new
    return x


def _capped(mean: float, var: float, cap: float | None) -> tuple[float, float, float]:
    """``(E[min(Y, cap)], Var[min(Y, cap)], P(Y > cap))`` for Y with this mean and variance,
    under the gamma fit (exact moments without a cap)."""
    if cap is None:
        return mean, var, 0.0
    if math.isinf(mean):
        return cap, 0.0, 1.0
    d = _fit(mean, var)
    if d[0] == "det":
        return (d[1], 0.0, 0.0) if d[1] <= cap else (cap, 0.0, 1.0)
    k, s = d[1], d[2]
    y = cap / s
    q = _gamma_pq(k, y)[1]
    m1 = k * s * _gamma_pq(k + 1.0, y)[0] + cap * q
    m2 = k * (k + 1.0) * s * s * _gamma_pq(k + 2.0, y)[0] + cap * cap * q
    return m1, max(m2 - m1 * m1, 0.0), q


def _max_moments(items: list[tuple[float, float]]) -> tuple[float, float]:
    """Mean and variance of the maximum of independent variables with these means and
    variances: Clark's (1961) formulas for the maximum of two normal variables, applied in
    turn."""
    m, v = items[0]
    for m2, v2 in items[1:]:
        if math.isinf(m) or math.isinf(m2):
            return math.inf, 0.0
        a2 = v + v2
        if not a2 > 1e-300:
            m, v = max(m, m2), 0.0
            continue
        a = math.sqrt(a2)
        al = (m - m2) / a
        pa, pb, ph = _cdf_norm(al), _cdf_norm(-al), _phi(al)
        e1 = m * pa + m2 * pb + a * ph
        e2 = (m * m + v) * pa + (m2 * m2 + v2) * pb + (m + m2) * a * ph
        m, v = e1, max(e2 - e1 * e1, 0.0)
    return m, v


def _kth_moments(items: list[tuple[float, float]], k: int) -> tuple[float, float]:
    """Mean and variance of the ``k``-th smallest of independent variables with these means
    and variances (a quorum op's answer), each taken as a gamma variable with those moments (a
    constant when its variance is 0): numerically, from P(at least k are done by t), the
    Poisson-binomial sum over the variables. ``k`` equal to their number is the maximum
    (:func:`_max_moments`)."""
    n = len(items)
    if k >= n:
        return _max_moments(items)
    finite = [(m, v) for m, v in items if math.isfinite(m)]
    if len(finite) < k:
        return math.inf, 0.0
    from scipy.stats import gamma

    hi = max(m + 12.0 * math.sqrt(v) for m, v in finite) * 1.05 + 1e-12
    t = np.linspace(0.0, hi, 4001)
    done = np.zeros((n + 1, len(t)))  # done[j]: P(exactly j finished by t)
    done[0] = 1.0
    for m, v in items:
        if not math.isfinite(m):
            f = np.zeros_like(t)
        elif v > 0 and m > 0:
            f = gamma.cdf(t, m * m / v, scale=v / m)
        else:
            f = (t >= m).astype(float)
        done[1:] = done[1:] * (1.0 - f) + done[:-1] * f
        done[0] = done[0] * (1.0 - f)
    waiting = done[:k].sum(axis=0)  # fewer than k finished by t
    trap = getattr(np, "trapezoid", None) or np.trapz  # (numpy < 2: trapz)
    mean = float(trap(waiting, t))
    second = float(trap(2.0 * t * waiting, t))
    return mean, max(second - mean * mean, 0.0)


# --------------------------------------------------------------------------- queueing formulas


def erlang_b(c: int, a: float) -> float:
    """Erlang B: the blocking probability of M/G/c/c with offered load ``a`` (the stable
    recursion; above 2,000 servers from the Poisson distribution, ``pmf(c) / cdf(c)``)."""
    if not a > 0:
        return 0.0
    if c > 2000:
        cdf = _gamma_pq(c + 1.0, a)[1]  # P(Poisson(a) <= c) = Q(c + 1, a)
        pmf = math.exp(c * math.log(a) - a - math.lgamma(c + 1.0))
        return min(1.0, pmf / cdf) if cdf > 0 else 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
        if b < 1e-300:
            return 0.0
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an arrival waits in M/M/c with offered load ``a``."""
    rho = a / c
    if rho >= 1.0:
        return 1.0
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def mmck(c: int, q: int, a: float) -> tuple[float, float, float, float]:
    """M/M/c/K with ``q`` places to wait (K = c + q) and offered load ``a`` = lambda E[S]:
    ``(blocking probability, P(wait) of an admitted arrival, E[W] / E[S], E[W^2] / E[S]^2)``,
    the wait of an admitted arrival that finds j others waiting being Erlang(j + 1, c mu)."""
    if not a > 0:
        return 0.0, 0.0, 0.0, 0.0
    if math.isinf(a):
        return 1.0, 1.0, math.inf, math.inf
    b = erlang_b(c, a)
    if not b > 0:
        return 0.0, 0.0, 0.0, 0.0
    rho = a / c
    lower = 1.0 / b - 1.0  # sum of the states below c, relative to state c
    lr = math.log(rho)
    # the states that matter: rho^j within e^-60 of the largest (at most 2 million of them)
    span = min(60.0 / abs(lr), 2e6) if lr != 0 else 2e6
    if lr <= 0:
        j0, j1 = 0, int(min(q, math.ceil(span)))
    else:
        j1 = q
        j0 = int(max(0, q - math.ceil(span)))
    j = np.arange(j0, j1 + 1, dtype=float)
    lw = j * lr
    top = float(lw.max())
    w = np.exp(lw - top)
    low = lower * math.exp(-top) if j0 == 0 else 0.0  # beyond the window: negligible
    z = low + float(w.sum())
    pb = float(w[-1]) / z if j1 == q else 0.0
    admitted = 1.0 - pb
    wait = w[:-1] if j1 == q else w  # states with a place left to wait in
    jw = j[:-1] if j1 == q else j
    p_wait = float(wait.sum()) / z / admitted
    lq = float((j * w).sum()) / z
    w1 = lq / (a * admitted)
    w2 = float(((jw + 1.0) * (jw + 2.0) * wait).sum()) / z / admitted / (c * c)
    return pb, p_wait, w1, w2


def _finite_source(c: int, queue: int | None, lam: float, s: float, n_src: int, think: float
                   ) -> tuple[float, float, float, float]:
    """A pool of ``c`` workers (mean service ``s``) whose visits come from ``n_src`` workers of
    its callers, each of which holds its worker for ``think`` between two visits here: in
    state n (visits here, waiting or served) the arrival rate is ``min(lam, (n_src - n) /
    think)``, so the queue never holds more than the callers' workers (a finite-source,
    machine-repairman chain that is Poisson at rate ``lam`` until the callers run short of
    workers). Returns ``(blocking probability, P(wait) of an admitted arrival, E[W] / s,
    E[W^2] / s^2)``; visits the callers cannot make wait for a caller's worker, not here."""
    top = n_src if queue is None else min(n_src, c + queue)
    n = np.arange(top + 1, dtype=float)
    rate = (n_src - n) / think if think > 0 else np.full(top + 1, math.inf)
    rate = np.minimum(rate, lam)  # rate[n]: arrivals in state n
    serve = np.minimum(n[1:], c) / s
    with np.errstate(divide="ignore"):
        logp = np.concatenate(([0.0], np.cumsum(np.log(rate[:-1]) - np.log(serve))))
    p = np.exp(logp - logp.max())
    p /= p.sum()
    flow = p * rate
    admitted = float(flow[:-1].sum()) if top < n_src else float(flow[:top].sum())
    blocked = float(flow[top]) if top < n_src else 0.0
    if not admitted > 0:
        return 0.0, 0.0, 0.0, 0.0
    j = n[c:top] - c  # found j waiting (admitted arrivals that wait)
    fw = flow[c:top]
    pw = float(fw.sum()) / admitted
    w1 = float((fw * (j + 1.0)).sum()) / admitted / c
    w2 = float((fw * (j + 1.0) * (j + 2.0)).sum()) / admitted / (c * c)
    return blocked / (admitted + blocked), pw, w1, w2


@functools.lru_cache(maxsize=4096)
def _source_capacity(c: int, queue: int | None, s: float, n_src: int, think: float) -> float:
    """The most visits per second that ``n_src`` callers' workers can bring through a pool of
    ``c`` workers (mean service ``s``), each holding its worker ``think`` seconds between two
    visits: the throughput of the finite-source chain with every worker busy (exact MVA of
    the closed pair for exponential times: the machine-repairman model)."""
    top = n_src if queue is None else min(n_src, c + queue)
    if not think > 0:
        return c / s
    n = np.arange(top + 1, dtype=float)
    serve = np.minimum(n[1:], c) / s
    logp = np.concatenate(([0.0], np.cumsum(np.log((n_src - n[:-1]) / think) - np.log(serve))))
    p = np.exp(logp - logp.max())
    return float((p[1:] * serve).sum() / p.sum())


def _station_wait(st: Station, lam: float, m1: float, m2: float,
                  source: tuple | None = None
                  ) -> tuple[float, float, float, float, float, bool, float]:
    """One pool of station ``st`` with arrival rate ``lam`` and holding-time moments ``m1 =
    E[H]``, ``m2 = E[H^2]``: ``(offered utilisation, blocking probability, P(wait) of an
    admitted arrival, E[W], E[W^2], unstable, callers' limit)``.

    Unbounded queue: Erlang C, the wait scaled by Allen and Cunneen's ``(c_a^2 + c_s^2) / 2``
    (exact for M/M/c); bounded queue: M/M/c/K with the same scaling of the wait. When every
    visit comes from callers that hold one of their ``source[0]`` workers for the visit and
    ``source[1]`` seconds besides, the queue is that finite-source chain instead
    (:func:`_finite_source`), which cannot grow beyond the callers' workers, and the callers'
    limit is ``lam`` over the most their workers can bring through (:func:`_source_capacity`;
    NaN without a source): at 1 or more the callers cannot keep up, every one of their
    workers is busy, and the pool sees the chain with all of them (the machine-repairman
    model)."""
    c = st.workers
    if c is None or not lam > 0:
        return (math.nan if c is None else 0.0), 0.0, 0.0, 0.0, 0.0, False, math.nan
    a = lam * m1
    rho = a / c
    if math.isinf(m1):
        if st.queue is None:
            return math.inf, 0.0, 1.0, math.inf, math.inf, True, math.nan
        return math.inf, 1.0, 1.0, math.inf, math.inf, False, math.nan
    if not m1 > 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0, False, math.nan
    cs2 = max(m2 / (m1 * m1) - 1.0, 0.0)
    k = 0.5 * (st.arrival_scv + cs2)
    if source is not None:
        # a full bounded queue turns visits away, which frees the callers' workers: no limit
        limit = (lam / _source_capacity(c, None, m1, source[0], source[1])
                 if st.queue is None and source[3] else math.nan)
        if source[0] <= c:
            return rho, 0.0, 0.0, 0.0, 0.0, False, limit  # never more visits than workers
        pb, pw, w1, w2 = _finite_source(c, st.queue, math.inf if limit >= 1.0 else lam, m1,
                                        source[0], source[1])
        return rho, pb, pw, k * w1 * m1, k * k * w2 * m1 * m1, False, limit
    if st.queue is None:
        if rho >= 1.0:
            return rho, 0.0, 1.0, math.inf, math.inf, True, math.nan
        pw = erlang_c(c, a)
        mean_w = k * m1 / (c - a)  # the wait of those who wait: exponential, rate (c - a) / E[H]
        return rho, 0.0, pw, pw * mean_w, 2.0 * pw * mean_w * mean_w, False, math.nan
    pb, pw, w1, w2 = mmck(c, st.queue, a)
    return rho, pb, pw, k * w1 * m1, k * k * w2 * m1 * m1, False, math.nan


def _bursty_station(st: Station, share: float, dispersion: tuple[float, float], rate: float) -> Station:
    """A pool's arrivals under bursty workload arrivals: the workload's index of dispersion
    I = ``dispersion[0] + dispersion[1] * rate`` at ``rate`` requests per second, thinned
    to the pool's ``share`` of them (at most 1): the SCV of Poisson arrivals split the
    pool's way (1, or 1/k for round robin) plus ``share * (I - 1)``. For a pool that takes
    every arrival that is I; a random split keeps ``1 + share (I - 1)`` (the thinning of a
    point process); round robin over k pools ``I / k``."""
    i = dispersion[0] + dispersion[1] * rate
    return replace(st, arrival_scv=st.arrival_scv + min(share, 1.0) * (i - 1.0))


@dataclass
class _Call:
    """One call of the spec in the model."""

    index: int
    src: int
    dst: int
    mode: str  # "call", "forward", "async", or "group" (a consumer group of a queue)
    prob: list[float]  # per class: the chance that a visit makes it (0: not for the class)
    lat: tuple[float, float]  # network latency: mean, variance
    timeout: float | None
    attempts: int = 1
    retry_on: frozenset[str] = frozenset()
    pauses: tuple[float, ...] = ()  # mean backoff after attempt 1, 2, ...
    budget: float | None = None  # retries per first attempt at most


@dataclass
class _Node:
    """One component in the model, with its stations and calls."""

    index: int
    name: str
    spec: Any
    kind: Any
    svc: list[tuple[float, float, bool]]  # per class: mean, variance, exponential?
    stations: list[Station]
    routes: list[list[Route]]  # per class
    sync: list[_Call] = field(default_factory=list)
    fwd: list[_Call] = field(default_factory=list)
    asyncs: list[_Call] = field(default_factory=list)
    groups: list[_Call] = field(default_factory=list)
    parallel: bool = False
    broker: bool = False
    backlog: int | None = None
    reach: list[bool] = field(default_factory=list)


MAX_SOURCES = 4000  # callers' workers above which a pool's arrivals are taken as Poisson


@dataclass
class _State:
    """The model solved at one arrival rate."""

    visits: list[list[float]]  # [node][class] offered visits per second (attempts included)
    pulled: list[list[float]]  # [node][class] visits taken by consumer workers (no wait)
    shed: list[float]  # [node] admission-control share
    stations: list[list[tuple]]  # [node][station] _station_wait results + (lam per pool,)
    station_load: list[list[list[tuple[float, float, float]]]]  # [node][station] (rate, m1, m2) per entry
    hold: list[list[tuple[float, float]]]  # [node][class] holding time: mean, variance
    resp: list[list[tuple[float, float]]]  # [node][class] what a caller waits for (rejections at 0)
    ok_resp: list[list[tuple[float, float]]]  # [node][class] the same over admitted visits
    time_in: list[list[float]]  # [node][class] mean time in the component (wait + hold), admitted
    fail: list[list[tuple[float, float, float]]]  # [node][class] P(rejected, timeout, failed)
    calls: dict[int, list[tuple[float, float]]]  # call index -> per class (attempts, P(fail))
    groups: dict[int, tuple]  # call index of a consumer group -> its backlog station
    unstable: bool = False
    iterations: int = 0
    converged: bool = True
    x: Any = None  # the fixed point's figures (a start for a nearby rate)

    def max_util(self, net: _Net) -> tuple[float, int | None]:
        """The highest utilisation of any pool (offered work over workers; consumer backlogs
        count for the consumers; the visits of a pool over what its callers' workers can bring
        through it count for the callers), and the node it belongs to."""
        best, where = 0.0, None
        for n in range(len(self.stations)):
            u = self.node_util(net, n)
            if u > best:  # NaN (no worker limit) compares False
                best, where = u, n
        return best, where

    def node_util(self, net: _Net, n: int) -> float:
        """The utilisation that decides when node ``n`` saturates (see :meth:`max_util`)."""
        vals = [r[0] for r in self.stations[n] if not math.isnan(r[0])]
        vals += [g[0] for ci, g in self.groups.items() if net.calls[ci].dst == n]
        for (m, i), src in net.sources.items():
            if n in src[2] and self.stations[m]:
                r = self.stations[m][i]
                if r[8] > 1.001 * r[0]:  # the callers' workers, not the pool, are the limit
                    vals.append(r[8])
        return max(vals) if vals else math.nan


def _backoff_means(retries: Any) -> tuple[float, ...]:
    """The mean pause after attempt 1, 2, ... of a retried call."""
    out = []
    prev = retries.base
    for n in range(1, retries.attempts):
        e = min(retries.cap, retries.base * 2.0 ** min(n - 1, 1000))
        b = retries.backoff
        if b == "none":
            m = 0.0
        elif b == "exponential":
            m = e
        elif b == "full_jitter":
            m = e / 2.0
        elif b == "equal_jitter":
            m = 0.75 * e
        else:  # decorrelated jitter: min(cap, uniform(base, 3 prev)), on its mean
            m = min(retries.cap, 0.5 * (retries.base + max(retries.base, 3.0 * prev)))
            prev = m
        out.append(m)
    return tuple(out)


class _Net:
    """The load-independent part of the model of one design."""

    def __init__(self, arch: Architecture):
        spec = arch.spec
        self.arch = arch
        self.spec = spec
        comps = spec.components
        self.classes = list(spec.workload.requests)
        weights = [spec.workload.requests[c].weight for c in self.classes]
        total = sum(weights)
        self.weights = [w / total for w in weights]
        entry = entry_of(spec)
        g = call_graph(arch.graph)
        order = list(nx.topological_sort(g))
        for n in comps:  # components nothing calls and that call nothing
            if n not in order:
                order.append(n)
        self.order = order
        self.index = {n: i for i, n in enumerate(order)}
        self.entry = self.index[entry]
        edges = call_edges(g)
        kinds = {n: kind(c.kind) for n, c in comps.items()}
        self.warnings: list[str] = []

        # ---- first pass: key popularity and cache splits at unit rate (load independent)
        classes = self.classes
        out_calls: dict[str, list] = {n: [] for n in comps}
        for u, _, call in edges:
            out_calls[u].append(call)
        flows, self.hit_ratio, miss = propagate_flows(
            spec, kinds, order, out_calls, entry, dict(zip(classes, self.weights, strict=True)))
        self.flows = flows

        # ---- how callers pick each component's instance
        policies: dict[str, set[str]] = {n: set() for n in comps}
        policies[entry].add(comps[entry].policy)
        for u, v, _ in edges:
            if not kinds[u].consumer_backlog(comps[u])[0]:
                policies[v].add(comps[u].policy if comps[u].routes_callees else comps[v].policy)

        # ---- nodes
        self.nodes: list[_Node] = []
        for name in order:
            cs = comps[name]
            svc = []
            for c in classes:
                d = cs.service_time.lookup(c, spec.workload.op(c))
                if d is None:
                    svc.append((0.0, 0.0, False))
                else:
                    svc.append((d.mean, d.variance, isinstance(d, Exponential)))
            pol = policies[name]
            stations, routes = kinds[name].queueing_layout(
                cs, flows[name], classes, spec.workload, next(iter(pol)) if len(pol) == 1 else None)
            broker, backlog = kinds[name].consumer_backlog(cs)
            self.nodes.append(_Node(
                self.index[name], name, cs, kinds[name], svc, list(stations),
                [list(routes.get(c, [])) for c in classes], parallel=cs.fanout == "parallel",
                broker=broker, backlog=backlog,
                reach=[flows[name][c].rate > 0 for c in classes]))

        # ---- calls, in the order each component makes them (on-miss calls after the others)
        self.calls: list[_Call] = []
        by_src: dict[str, list] = {n: [] for n in comps}
        for u, v, call in edges:
            by_src[u].append((u, v, call))
        for u in order:
            node = self.nodes[self.index[u]]
            ordered = [e for e in by_src[u] if e[2].on != "miss"] + [e for e in by_src[u] if e[2].on == "miss"]
            for _, v, call in ordered:
                prob = []
                for c in classes:
                    if call.requests is not None and c not in call.requests:
                        prob.append(0.0)
                        continue
                    p = call.probability
                    if call.on == "miss":
                        p *= miss[u].get(c, 1.0)
                    prob.append(p)
                lat = (call.latency.mean, call.latency.variance) if call.latency is not None else (0.0, 0.0)
                if spec.regions is not None:  # the round trips across regions (independent of the latency)
                    m, var = call_rtt_moments(spec, u, v, kinds[v].routes_internally, classes=call.requests)
                    lat = (lat[0] + m, lat[1] + var)
                r = call.retries
                ci = len(self.calls)
                mode = "group" if node.broker else call.mode
                if not kinds[u].request_waits_for_calls and not node.broker:
                    mode = "async"
                k = _Call(ci, self.index[u], self.index[v], mode, prob, lat, call.timeout)
                if r is not None:
                    k.attempts = r.attempts
                    k.retry_on = frozenset(r.on)
                    k.pauses = _backoff_means(r)
                    k.budget = r.budget.ratio if r.budget is not None else None
                self.calls.append(k)
                {"call": node.sync, "forward": node.fwd, "async": node.asyncs,
                 "group": node.groups}[mode].append(k)
                if call.circuit_breaker is not None or call.hedge is not None or call.fallback is not None:
                    what = [w for w, x in (("circuit breaker", call.circuit_breaker), ("hedging", call.hedge),
                                           ("fallback", call.fallback)) if x is not None]
                    self.warnings.append(f"{u} -> {v}: {' and '.join(what)} not modelled")
                if call.resilient and call.mode == "async":
                    self.warnings.append(f"{u} -> {v}: an async call with resilience settings is "
                                         "taken as async (no wait, one attempt)")

        # ---- pools whose every visit holds a worker of a caller: at most that many visits
        self.sources = self._sources()

        # ---- what makes rates depend on times (then the passes are iterated)
        self.simple = not any(
            k.timeout is not None or k.attempts > 1 for k in self.calls) and not any(
            st.queue is not None for nd in self.nodes for st in nd.stations) and not any(
            nd.backlog is not None for nd in self.nodes if nd.broker) and not any(
            getattr(nd.spec, "rate_limit", None) is not None for nd in self.nodes)
        if spec.faults:
            self.warnings.append(f"{len(spec.faults)} fault(s) not modelled: the model is the steady "
                                 "state without them")
        self.warnings += overload_notes(spec)
        if any(getattr(nd.spec, "ttl", None) for nd in self.nodes):
            self.warnings.append("cache ttl ignored (Che's approximation for a plain LRU)")
        wl = spec.workload
        self.closed = wl.users is not None
        self.dispersion: tuple[float, float] | None = None  # bursty arrivals: I(r) = a + b r
        if not self.closed:
            prof = rate_profile(wl, 1.0, arch.base_dir, spec.simulation.warmup + spec.simulation.duration)
            self.base_rate = prof[1] if prof is not None else wl.base_rate
            if prof is not None:
                self.warnings.append(f"{wl.profile.kind} profile: the model is the steady state at its "
                                     "peak rate")
            if wl.bursty:
                # the index of dispersion of request counts is linear in the rate r:
                # E[X^2] / E[X] + c r (c = 0 without an MMPP)
                assert wl.arrivals is not None
                i0 = wl.arrivals.index_of_dispersion(0.0)
                self.dispersion = (i0, wl.arrivals.index_of_dispersion(1.0) - i0)
                what = " and ".join(w for w, x in (("an MMPP", wl.arrivals.mmpp), ("batches", wl.arrivals.batch))
                                    if x is not None)
                self.warnings.append(
                    f"bursty arrivals ({what}): the model takes the arrival process's asymptotic index of "
                    "dispersion of counts as each pool's arrival SCV (thinned by the pool's share of the "
                    "arrivals) in the Allen-Cunneen wait, a heavy-traffic approximation: away from "
                    "saturation it can be far off either way (it leaves out the wait behind the earlier "
                    "requests of one batch): the simulation is the reference")
        else:
            self.base_rate = math.nan
            self.think = wl.think_time.mean
        self.uses_least = any(
            (p in ("least_connections", "power_of_two_choices")) and self.nodes[self.index[n]].spec.instances > 1
            for n, ps in policies.items() for p in ps)

    def _sources(self) -> dict[tuple[int, int], tuple[int, float, tuple[int, ...], bool]]:
        """Per pool (node, station) of a component whose visits all come from synchronous
        calls of callers with worker limits: ``(the callers' workers, which can all be here at
        once, the time such a worker spends between two visits here (its own service and the
        network, over the pool's share of the visits), the callers, whether the pool takes
        every visit of the component and no write copies)``. The time at the component's
        other pools and the copies of writes (made without a caller's worker) are left out."""
        nc = len(self.classes)
        incoming: dict[int, list[_Call]] = {nd.index: [] for nd in self.nodes}
        for k in self.calls:
            incoming[k.dst].append(k)
        out: dict[tuple[int, int], tuple[int, float]] = {}
        for nd in self.nodes:
            m = nd.index
            ks = incoming[m]
            if m == self.entry or not ks or any(k.mode != "call" for k in ks):
                continue
            callers = {k.src for k in ks}
            if any(self.nodes[u].broker or not self.nodes[u].stations
                   or any(st.workers is None for st in self.nodes[u].stations) for u in callers):
                continue
            workers = {u: sum(st.workers * st.count for st in self.nodes[u].stations) for u in callers}
            n_src = sum(workers.values())
            think = 0.0
            for u in callers:
                f = [self.flows[self.nodes[u].name][self.classes[c]].rate for c in range(nc)]
                tot = sum(f)
                own = sum(fc * self.nodes[u].svc[c][0] for c, fc in enumerate(f)) / tot if tot > 0 else 0.0
                lat = sum(k.lat[0] for k in ks if k.src == u) / max(1, sum(1 for k in ks if k.src == u))
                think += workers[u] * (own + lat)
            think /= n_src
            f = [self.flows[nd.name][self.classes[c]].rate for c in range(nc)]
            tot = sum(f)
            if not tot > 0 or n_src > MAX_SOURCES:
                continue
            share = [0.0] * len(nd.stations)
            copied = set()
            for c in range(nc):
                for r in nd.routes[c]:
                    share[r.station] += f[c] / tot * r.share / nd.stations[r.station].count
                    copied.update(r.copies)
            for i, x in enumerate(share):
                if x > 0 and nd.stations[i].workers is not None:
                    # every caller's worker can be at this pool, and comes back to it after
                    # ``think / x`` on average; the callers' limit only for a pool that takes
                    # every visit, with no write copies (which need no caller's worker)
                    whole = x > 0.999 and i not in copied and nd.stations[i].count == 1
                    out[(m, i)] = (n_src, think / x, tuple(sorted(callers)), whole)
        return out


# =========================================================================== the passes


def _call_stats(k: _Call, c: int, resp: tuple[float, float], fail: tuple[float, float, float]
                ) -> tuple[float, float, float, tuple[float, float, float]]:
    """One call of class ``c``, all its attempts: ``(expected attempts, mean time, variance of
    the time, P(rejected, timeout, failed) of its final outcome)``."""
    ym, yv = k.lat[0] + resp[0], k.lat[1] + resp[1]
    am, av, p_to = _capped(ym, yv, k.timeout)
    rej, to, oth = fail
    a_to = p_to + (1.0 - p_to) * to
    a_rej = (1.0 - p_to) * rej
    a_oth = (1.0 - p_to) * oth
    a_ok = max(0.0, 1.0 - a_to - a_rej - a_oth)
    if k.attempts <= 1:
        return 1.0, am, av, (a_rej, a_to, a_oth)
    on = k.retry_on
    cats = (a_rej, a_to, a_oth)
    retryable = ("rejected" in on, "timeout" in on, "failed" in on)
    fr = sum(x for x, r in zip(cats, retryable, strict=True) if r)
    fn = sum(cats) - fr
    en = en2 = pause = 0.0
    pw = 1.0  # fr ** (n - 1)
    for n in range(1, k.attempts + 1):
        en += pw
        en2 += (2 * n - 1) * pw
        if n < k.attempts:
            pause += pw * fr * k.pauses[n - 1]
        pw *= fr
    if k.budget is not None and en - 1.0 > k.budget:
        scale = k.budget / (en - 1.0)
        en, en2, pause = 1.0 + k.budget, 1.0 + scale * (en2 - 1.0), pause * scale
    p_ok = min(1.0, a_ok * en)
    final_n = min(fn * en, 1.0 - p_ok)
    final_r = max(0.0, 1.0 - p_ok - final_n)
    out = []
    for x, r in zip(cats, retryable, strict=True):
        if r:
            out.append(final_r * x / fr if fr > 0 else 0.0)
        else:
            out.append(final_n * x / fn if fn > 0 else 0.0)
    mean = en * am + pause
    var = en * av + max(en2 - en * en, 0.0) * am * am
    return en, mean, var, (out[0], out[1], out[2])


def _part(calls: list[_Call], c: int, stats: dict[int, tuple], parallel: bool
          ) -> tuple[float, float, tuple[float, float, float], float]:
    """The calls of one list made by a visit of class ``c``: ``(mean time, variance, P(failure
    by cause), P(all succeeded))``; in turn (a failure skips the rest) or in parallel (the
    slowest branch decides)."""
    mean = var = 0.0
    rej = to = oth = 0.0
    ok = 1.0
    branches = []
    for k in calls:
        q = k.prob[c]
        if not q > 0:
            continue
        _en, xm, xv, cats = stats[k.index]
        f = sum(cats)
        qk = q if parallel else q * ok
        rej += qk * cats[0]
        to += qk * cats[1]
        oth += qk * cats[2]
        if parallel:
            branches.append((q * xm, q * xv + q * (1.0 - q) * xm * xm) if math.isfinite(xm) else (math.inf, 0.0))
        elif math.isinf(xm):
            mean = math.inf
        else:
            mean += qk * xm
            var += qk * xv + qk * (1.0 - qk) * xm * xm
        ok *= 1.0 - q * f
    if parallel and branches:
        mean, var = _max_moments(branches)
    total = rej + to + oth
    if total > 1.0 - ok and total > 0:  # the causes, scaled to the chance of a failure
        s = (1.0 - ok) / total
        rej, to, oth = rej * s, to * s, oth * s
    return mean, var, (rej, to, oth), ok


def _rates(net: _Net, lam: list[float], inp: dict) -> tuple[list, list, list, dict]:
    """Visits per second of each class at each component, from the entry down, given the
    blocking, failure and attempt figures of the previous pass."""
    nc = len(net.classes)
    visits = [[0.0] * nc for _ in net.nodes]
    pulled = [[0.0] * nc for _ in net.nodes]
    shed = [0.0] * len(net.nodes)
    group_rate: dict[int, list[float]] = {k.index: [0.0] * nc for nd in net.nodes for k in nd.groups}
    visits[net.entry] = list(lam)
    pb, calls, gpb = inp["pb"], inp["calls"], inp["gpb"]
    for nd in net.nodes:
        n = nd.index
        total = sum(visits[n])
        if not total > 0:
            continue
        shed[n] = nd.kind.shed_share(nd.spec, total)
        for c in range(nc):
            v = visits[n][c]
            if not v > 0:
                continue
            pv = pulled[n][c]
            adm = sum(r.share * (1.0 - pb[n][r.station]) for r in nd.routes[c]) if nd.routes[c] else 1.0
            a = ((v - pv) * adm + pv) * (1.0 - shed[n])
            ok = 1.0
            for k in nd.sync:
                q = k.prob[c]
                if q > 0:
                    en, f = calls[k.index][c]
                    visits[k.dst][c] += a * q * (1.0 if nd.parallel else ok) * en
                    ok *= 1.0 - q * f
            for k in nd.fwd:
                q = k.prob[c]
                if q > 0:
                    en, f = calls[k.index][c]
                    visits[k.dst][c] += a * ok * q * en
                    ok *= 1.0 - q * f
            for k in nd.asyncs:
                q = k.prob[c]
                if q > 0:
                    visits[k.dst][c] += a * q
            for k in nd.groups:
                q = k.prob[c]
                if q > 0:
                    group_rate[k.index][c] += a * q
                    taken = a * q * (1.0 - gpb.get(k.index, 0.0))
                    visits[k.dst][c] += taken
                    pulled[k.dst][c] += taken
    return visits, pulled, shed, group_rate


def _times(net: _Net, visits: list, pulled: list, shed: list, group_rate: dict, inp: dict,
           wait_scale: float, overrides: dict | None, ext_rate: float = 0.0) -> _State:
    """Stations, holding and response times, from the leaves up, at the given visit rates
    (``ext_rate``: the workload's arrivals per second, for bursty arrivals)."""
    nc = len(net.classes)
    nn = len(net.nodes)
    hold = [[(0.0, 0.0)] * nc for _ in range(nn)]
    resp = [[(0.0, 0.0)] * nc for _ in range(nn)]
    ok_resp = [[(0.0, 0.0)] * nc for _ in range(nn)]
    time_in = [[0.0] * nc for _ in range(nn)]
    fail = [[(0.0, 0.0, 0.0)] * nc for _ in range(nn)]
    stations: list[list[tuple]] = [[] for _ in range(nn)]
    loads: list[list[list[tuple[float, float, float]]]] = [[] for _ in range(nn)]
    call_out: dict[int, list[tuple[float, float]]] = {}
    groups: dict[int, tuple] = {}
    unstable = False
    pb_prev = inp["pb"]
    for nd in reversed(net.nodes):
        n = nd.index
        stats: dict[int, tuple] = {}
        parts = []
        for c in range(nc):
            if not (visits[n][c] > 0 or nd.reach[c]):
                parts.append(None)
                continue
            for k in (*nd.sync, *nd.fwd, *nd.groups):
                if k.prob[c] > 0:
                    s = _call_stats(k, c, resp[k.dst][c], fail[k.dst][c])
                    stats.setdefault(k.index, [None] * nc)
                    stats[k.index][c] = s
            cs = {i: v[c] for i, v in stats.items() if v[c] is not None}
            sm, sv, _exp = nd.svc[c]
            pm, pv, pcats, pok = _part(nd.sync, c, cs, nd.parallel)
            fm, fv, fcats, fok = _part(nd.fwd, c, cs, False)
            hm = sm + pm if math.isfinite(pm) else math.inf
            hv = sv + pv if math.isfinite(pm) else 0.0
            hold[n][c] = (hm, hv)
            parts.append((pm, pcats, pok, fm, fv, fcats, fok))
        for i, v in stats.items():
            call_out[i] = [(s[0], sum(s[3])) if s is not None else (1.0, 0.0) for s in v]

        # ---- the stations' loads: visits (holding time) and copies (service time)
        loads[n] = [[] for _ in nd.stations]
        keep = 1.0 - shed[n]
        for c in range(nc):
            v = visits[n][c]
            if not v > 0:
                continue
            hm, hv = hold[n][c]
            h2 = hv + hm * hm if math.isfinite(hm) else math.inf
            sm, sv, _exp = nd.svc[c]
            s2 = sv + sm * sm
            for r in nd.routes[c]:
                st = nd.stations[r.station]
                loads[n][r.station].append((v * keep * r.share / st.count, hm, h2))
                if r.copies:
                    done = v * keep * r.share * (1.0 - pb_prev[n][r.station])
                    for j in r.copies:
                        loads[n][j].append((done / nd.stations[j].count, sm, s2))
        res = []
        queued = any(visits[n][c] > pulled[n][c] for c in range(nc)) or any(
            r.copies for rs in nd.routes for r in rs)
        for i, st in enumerate(nd.stations):
            entries = loads[n][i]
            lam = sum(e[0] for e in entries)
            if lam > 0:
                m1 = sum(e[0] * e[1] for e in entries if e[0] > 0) / lam
                m2 = sum(e[0] * e[2] for e in entries if e[0] > 0) / lam
            else:
                m1 = m2 = 0.0
            if net.dispersion is not None and lam > 0 and ext_rate > 0:
                st = _bursty_station(st, lam / ext_rate, net.dispersion, ext_rate)
            rho, pb, pw, w1, w2, bad, limit = _station_wait(st, lam, m1, m2, net.sources.get((n, i)))
            if not queued:  # every visit is a consumer's, taken by a free worker: no wait here
                pb = pw = w1 = w2 = 0.0
                bad = False
            if overrides is not None and (n, i) in overrides:
                w1, pw = overrides[(n, i)]
                w2 = 2.0 * w1 * w1 / pw if pw > 0 else 0.0
            elif wait_scale != 1.0:
                w1, w2 = w1 * wait_scale, w2 * wait_scale * wait_scale
            unstable = unstable or bad
            res.append((rho, pb, pw, w1, w2, bad, lam, m1, limit))
        stations[n] = res

        # ---- consumer groups of a queue: a backlog served by every consumer worker
        group_rej = [1.0] * nc
        for k in nd.groups:
            dst = net.nodes[k.dst]
            workers = dst.spec.instances * (dst.spec.worker_limit or 1)
            st = Station(workers, nd.backlog)
            lam = sum(group_rate[k.index])
            m1 = m2 = 0.0
            for c in range(nc):
                x = group_rate[k.index][c]
                if x > 0:
                    s = stats[k.index][c]
                    m1 += x * s[1]
                    m2 += x * (s[2] + s[1] * s[1]) if math.isfinite(s[1]) else math.inf
            if lam > 0:
                m1, m2 = m1 / lam, m2 / lam
            g = _station_wait(st, lam, m1, m2)[:6]
            unstable = unstable or g[5]
            groups[k.index] = (*g, lam, m1)
            for c in range(nc):
                group_rej[c] *= 1.0 - k.prob[c] * g[1]

        # ---- what callers see, per class
        for c in range(nc):
            if parts[c] is None:
                continue
            pm, pcats, pok, fm, fv, fcats, fok = parts[c]
            hm, hv = hold[n][c]
            sm, sv, _exp = nd.svc[c]
            v = visits[n][c]
            np_share = (v - pulled[n][c]) / v if v > 0 else 1.0
            w_tot = m_tot = s_tot = t_tot = 0.0
            for r in nd.routes[c]:
                rho, pb, pw, w1, w2, bad = res[r.station][:6]
                wr = r.share * (1.0 - pb) * keep
                if not wr > 0:
                    continue
                ew1, ew2 = (np_share * w1, np_share * w2) if np_share > 0 else (0.0, 0.0)
                tm = ew1 + hm
                tv = max(ew2 - ew1 * ew1, 0.0) + hv if math.isfinite(tm) else 0.0
                if r.copies and r.sync:
                    items = []
                    lm, lv = r.leg
                    for j in r.copies:
                        cw1, cw2 = res[j][3], res[j][4]
                        items.append((cw1 + sm + lm, max(cw2 - cw1 * cw1, 0.0) + sv + lv) if math.isfinite(cw1)
                                     else (math.inf, 0.0))
                    if r.need:  # a quorum op: every copy in parallel (with its legs), the need-th answer
                        km, kv = _kth_moments([(tm + lm, tv + lv), *items], r.need)
                        cm, cv = km - tm, max(kv - tv, 0.0)
                    else:
                        cm, cv = _max_moments(items)
                else:
                    cm = cv = 0.0
                # forwards run only after a success, as a tail of the request
                gm = pok * fm if math.isfinite(fm) else math.inf
                gv = (pok * (fv + fm * fm) - gm * gm) if math.isfinite(fm) else 0.0
                rm = tm + cm + gm
                rv = tv + cv + max(gv, 0.0)
                w_tot += wr
                t_tot += wr * tm
                if math.isinf(rm):
                    m_tot = s_tot = math.inf
                else:
                    m_tot += wr * rm
                    s_tot += wr * (rv + rm * rm)
            if not nd.routes[c]:  # no station: the visit takes no time
                w_tot = keep
            admitted = w_tot
            if admitted > 0 and math.isfinite(m_tot):
                mean = m_tot
                resp[n][c] = (mean, max(s_tot - mean * mean, 0.0))
                om = m_tot / admitted
                ok_resp[n][c] = (om, max(s_tot / admitted - om * om, 0.0))
                time_in[n][c] = t_tot / admitted
            elif admitted > 0:
                resp[n][c] = ok_resp[n][c] = (math.inf, 0.0)
                time_in[n][c] = t_tot / admitted
            rejected = 1.0 - admitted
            if nd.broker:
                rejected += admitted * (1.0 - group_rej[c])
                admitted -= admitted * (1.0 - group_rej[c])
            # of the admitted visits: the synchronous part, then the forwards if it succeeded
            frej = pcats[0] + pok * fcats[0]
            fto = pcats[1] + pok * fcats[1]
            foth = pcats[2] + pok * fcats[2]
            fail[n][c] = (min(1.0, rejected + admitted * frej), admitted * fto, admitted * foth)
    return _State(visits, pulled, shed, stations, loads, hold, resp, ok_resp, time_in, fail,
                  call_out, groups, unstable)


def _solve(net: _Net, lam: list[float], wait_scale: float = 1.0, overrides: dict | None = None,
           max_iter: int = _MAX_ITER, tol: float = 1e-10, start: np.ndarray | None = None) -> _State:
    """The model at entry rates ``lam`` (per class): the two passes, repeated to a fixed point
    when rates depend on times (blocking, timeouts, retries, admission control).

    The fixed point is of the figures the rates depend on (blocking probabilities, attempts
    and failure probabilities of the calls, backlog blocking), from an empty system; the
    iteration is accelerated by Anderson mixing (memory 5) and kept within the figures'
    ranges; when that stalls, each figure takes its own damped step, halved whenever it
    overshoots and grown while it does not."""
    layout = _Layout(net)
    x = layout.start() if start is None else start
    state = None
    xs: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    best = math.inf
    stall = 0
    omega = None  # per-figure step sizes once Anderson mixing has stalled
    f_prev = None
    for it in range(1, max_iter + 1):
        inp = layout.unpack(x)
        visits, pulled, shed, group_rate = _rates(net, lam, inp)
        state = _times(net, visits, pulled, shed, group_rate, inp, wait_scale, overrides, sum(lam))
        state.iterations = it
        if net.simple:
            return state
        g = layout.pack_state(state, inp)
        f = np.where(layout.live, g - x, 0.0)
        res = float(np.max(np.abs(f) / layout.scale)) if len(f) else 0.0
        state.x = x
        if res < tol:
            return state
        if omega is not None:
            # steps that keep their sign grow, steps that overshoot (the sign flips) halve:
            # a steep map (blocking that jumps with the holding time) then converges too
            if f_prev is not None:
                flip = np.sign(f) != np.sign(f_prev)
                omega = np.where(flip, omega * 0.5, np.minimum(omega * 1.3, 1.0))
            f_prev = f
            x = layout.clip(x + omega * f)
            continue
        if res < best * 0.999:
            best, stall = res, 0
        else:
            stall += 1
        if stall >= 4:
            omega = np.full(len(x), 0.5)
            f_prev = f
            x = layout.clip(x + omega * f)
            continue
        xs.append(x)
        gs.append(g)
        if len(xs) > 6:
            xs.pop(0)
            gs.pop(0)
        nxt = g
        if len(xs) >= 2:
            fs = [gi - xi for gi, xi in zip(gs, xs, strict=True)]
            df = np.stack([b - a for a, b in zip(fs, fs[1:], strict=False)], axis=1)
            dg = np.stack([b - a for a, b in zip(gs, gs[1:], strict=False)], axis=1)
            try:
                gamma = np.linalg.lstsq(df, fs[-1], rcond=None)[0]
                nxt = gs[-1] - dg @ gamma
            except np.linalg.LinAlgError:
                nxt = g
            if not np.all(np.isfinite(nxt)):
                nxt, xs, gs = g, [], []
        x = layout.clip(nxt)
    assert state is not None
    state.converged = False
    return state


class _Layout:
    """The figures the rates depend on, as one vector for the fixed-point iteration."""

    def __init__(self, net: _Net):
        self.net = net
        nc = len(net.classes)
        self.n_pb = [len(nd.stations) for nd in net.nodes]
        self.call_ids = [k.index for k in net.calls]
        self.group_ids = [k.index for nd in net.nodes for k in nd.groups]
        self.nc = nc
        n = sum(self.n_pb) + 2 * nc * len(self.call_ids) + len(self.group_ids)
        lo = np.zeros(n)
        hi = np.ones(n)
        scale = np.ones(n)
        # a pool's blocking changes rates only through the calls and write copies its visits
        # make: other pools' blocking follows from the rates and needs no iteration
        live = np.ones(n, dtype=bool)
        o = 0
        for nd, m in zip(net.nodes, self.n_pb, strict=True):
            feeds = bool(nd.sync or nd.fwd or nd.asyncs or nd.groups) or any(
                r.copies for rs in nd.routes for r in rs)
            live[o:o + m] = feeds
            o += m
        self.live = live
        o = sum(self.n_pb)
        for k in net.calls:
            for _c in range(nc):
                lo[o], hi[o], scale[o] = 1.0, float(k.attempts), max(1.0, float(k.attempts))
                o += 2
        self.lo, self.hi, self.scale = lo, hi, scale

    def start(self) -> np.ndarray:
        return self.clip(np.zeros(len(self.lo)))

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(x, self.lo), self.hi)

    def unpack(self, x: np.ndarray) -> dict:
        vals = x.tolist()
        o = 0
        pb = []
        for m in self.n_pb:
            pb.append(vals[o:o + m])
            o += m
        calls = {}
        for ci in self.call_ids:
            calls[ci] = [(vals[o + 2 * c], vals[o + 2 * c + 1]) for c in range(self.nc)]
            o += 2 * self.nc
        gpb = {gi: vals[o + j] for j, gi in enumerate(self.group_ids)}
        return {"pb": pb, "calls": calls, "gpb": gpb}

    def pack_state(self, state: _State, inp: dict) -> np.ndarray:
        out: list[float] = []
        for sts in state.stations:
            out += [r[1] for r in sts]
        for ci in self.call_ids:
            for e, f in state.calls.get(ci, inp["calls"][ci]):
                out += [e, f]
        out += [state.groups[gi][1] if gi in state.groups else 0.0 for gi in self.group_ids]
        return np.array(out, dtype=float)


# =========================================================================== closed loops

#: exact MVA is used up to this much work (users x workers summed over the stations)
MVA_MAX_WORK = 200_000


def _product_form(net: _Net) -> bool:
    """Whether the closed network is product form (BCMP), so that exact MVA applies: one
    request class; every pool with a worker limit serves exponential times, makes no
    synchronous call and has an unbounded queue; no timeouts, retries, admission control,
    parallel fan-out, async calls, queues or replicated writes (those add work outside the
    users' cycle or hold two resources at once). Pools without a worker limit are delays
    (any distribution), and so are network latencies and the think time."""
    if len(net.classes) != 1:
        return False
    for nd in net.nodes:
        if not nd.reach[0]:
            continue
        if nd.broker or nd.asyncs or nd.groups or nd.parallel:
            return False
        if getattr(nd.spec, "rate_limit", None) is not None:
            return False
        if any(r.copies for r in nd.routes[0]):
            return False
        limited = any(st.workers is not None for st in nd.stations)
        sm, _sv, exp = nd.svc[0]
        if limited and (any(k.prob[0] > 0 for k in nd.sync) or not (exp or sm == 0)):
            return False
        if any(st.queue is not None for st in nd.stations if st.workers is not None):
            return False
        for k in (*nd.sync, *nd.fwd):
            if k.prob[0] > 0 and (k.timeout is not None or k.attempts > 1):
                return False
    return True


def _exact_mva(net: _Net, users: int) -> tuple[float, dict]:
    """Exact mean-value analysis (Reiser and Lavenberg 1980) of the product-form closed
    network, with the exact recursion for multi-server stations (it needs the probabilities
    of 0..c-1 busy workers). Returns the throughput and, per pool, ``(mean wait per visit,
    P(a visit waits))`` (arrival theorem: an arrival sees the network with N - 1 users)."""
    unit = _solve(net, [1.0])  # visits per request; queueing is not needed for them
    z = net.think
    groups = []  # (node, station, demand per request at one pool, workers, pools, visits, S)
    for nd in net.nodes:
        n = nd.index
        sm = nd.svc[0][0]
        for i, st in enumerate(nd.stations):
            lam = unit.stations[n][i][6]  # visits per request to one pool
            if not lam > 0:
                continue
            if st.workers is None:  # a delay: its own service (its calls are visits elsewhere)
                z += st.count * lam * sm
            else:
                groups.append((n, i, lam * sm, st.workers, st.count, lam, sm))
        for k in (*nd.sync, *nd.fwd):
            z += unit.visits[n][0] * k.prob[0] * k.lat[0]
    q = [0.0] * len(groups)
    p = [[1.0] + [0.0] * (g[3] - 1) for g in groups]  # P(j busy | n - 1 users), j < c
    seen = p
    r: list[float] = [0.0] * len(groups)
    x = 0.0
    for pop in range(1, users + 1):
        for gi, (_n, _i, d, c, _m, _lam, _s) in enumerate(groups):
            if c == 1:
                r[gi] = d * (1.0 + q[gi])
            else:
                pj = p[gi]
                r[gi] = d / c * (1.0 + q[gi] + sum((c - 1 - j) * pj[j] for j in range(c - 1)))
        x = pop / (z + sum(g[4] * ri for g, ri in zip(groups, r, strict=True)))
        seen = p
        p = []
        for gi, (_n, _i, d, c, _m, _lam, _s) in enumerate(groups):
            q[gi] = x * r[gi]
            old = seen[gi]
            new = [0.0] * c
            for j in range(1, c):
                new[j] = x * d / j * old[j - 1]
            new[0] = max(0.0, 1.0 - (x * d + sum((c - j) * new[j] for j in range(1, c))) / c)
            p.append(new)
    out = {}
    for gi, (n, i, _d, _c, _m, lam, s) in enumerate(groups):
        out[(n, i)] = (max(r[gi] / lam - s, 0.0), max(0.0, 1.0 - sum(seen[gi])))
    return x, out


def _mean_response(net: _Net, state: _State) -> float:
    """The entry's mean response over every request (rejected ones at 0), by class weight."""
    return sum(w * state.resp[net.entry][c][0] for c, w in enumerate(net.weights))


def _closed(net: _Net, users: int) -> tuple[_State, float, str, float]:
    """The closed loop with ``users`` users: ``(state, throughput, method, extra wait)``. The
    extra wait is the time requests queue, beyond the model's response time, where the law
    ``X (Z + R) = N`` has no solution below the point where the callers' workers run out:
    there the users wait for those workers (``N / X - Z - R``)."""
    if _product_form(net) and users * sum(
            (st.workers or 0) for nd in net.nodes for st in nd.stations) <= MVA_MAX_WORK:
        x, out = _exact_mva(net, users)
        state = _solve(net, [x * w for w in net.weights], overrides=out)
        return state, x, "closed loop by exact MVA (product-form network)", 0.0
    scale = (users - 1) / users
    z = net.think

    def excess(x: float) -> tuple[float, _State]:
        st = _solve(net, [x * w for w in net.weights], wait_scale=scale)
        r = _mean_response(net, st)
        return (math.inf if st.unstable or math.isinf(r) else x * (z + r) - users), st

    r0 = _mean_response(net, _solve(net, [1e-9 * w for w in net.weights], wait_scale=0.0))
    lo, hi = 0.0, users / (z + r0)
    f_lo, f_hi = -float(users), 0.0
    f_hi, st_hi = excess(hi)
    if f_hi <= 0:
        return st_hi, hi, _CLOSED_FIXED, 0.0
    best = None
    side = 0
    for _ in range(200):
        if math.isfinite(f_hi) and f_hi > f_lo:  # regula falsi (Illinois), else bisection
            x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            if not lo < x < hi:
                x = 0.5 * (lo + hi)
        else:
            x = 0.5 * (lo + hi)
        f, st = excess(x)
        if f <= 0:
            lo, f_lo, best = x, f, st
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = x, f
            if side == 1:
                f_lo *= 0.5
            side = 1
        if hi - lo <= 1e-12 * hi or abs(f) <= 1e-10 * users:
            break
    if best is None:
        f_lo, best = excess(lo)
    extra = max(0.0, -f_lo / lo) if lo > 0 and f_lo < -1e-6 * users else 0.0
    return best, lo, _CLOSED_FIXED, extra


_CLOSED_FIXED = ("closed loop by a fixed point of the response-time law X = N / (Z + R(X)), "
                 "waits scaled by (N - 1) / N (Schweitzer)")


# =========================================================================== saturation


def _saturated(net: _Net, rate: float, start: np.ndarray | None = None) -> tuple[bool, _State]:
    # a verdict needs less precision than a report: blocking and failure shares to 1e-7
    st = _solve(net, [rate * w for w in net.weights], tol=1e-7, start=start)
    return st.unstable or st.max_util(net)[0] >= 1.0, st


def _saturation_rate(net: _Net, start: float) -> tuple[float, _State | None]:
    """The entry rate at which the first pool reaches utilisation 1 (consumer backlogs and
    callers' worker limits included), with the model solved at each step: a bracket from the
    static estimate, in steps of 10%, then regula falsi (Illinois) on the highest utilisation
    minus 1, with bisection where that jumps (a fixed point that stops existing, as in a retry
    storm). Returns the rate and the state just below it."""
    probe = 1e-6 * start if start > 0 else 1e-6
    tiny = _solve(net, [probe * w for w in net.weights])
    u, _ = tiny.max_util(net)
    if not u > 0:
        return math.inf, None

    def excess(rate: float, warm: _State | None) -> tuple[bool, float, _State]:
        sat, st = _saturated(net, rate, None if warm is None or not warm.converged else warm.x)
        util = st.max_util(net)[0]
        return sat, (util - 1.0 if math.isfinite(util) and not st.unstable else math.inf), st

    hi = probe / u  # the static estimate: queueing mostly brings saturation closer
    sat, f_hi, st_hi = excess(hi, None)
    st_lo = None
    if sat:  # down in steps of 10% to a rate that keeps up
        lo = hi
        for _ in range(200):
            lo /= 1.1
            sat, f_lo, st = excess(lo, None)
            if not sat:
                st_lo = st
                break
            hi, f_hi = lo, f_lo
        else:
            return 0.0, None
    else:  # blocking upstream can push it beyond: up in steps of 10% (or never)
        lo, f_lo, st_lo = hi, f_hi, st_hi
        for _ in range(200):
            hi = lo * 1.1
            sat, f_hi, st = excess(hi, st_lo)
            if sat:
                break
            lo, f_lo, st_lo = hi, f_hi, st
        else:
            return math.inf, None
    rel = 1e-7 if net.simple else _REL
    side = 0
    while hi / lo - 1.0 > rel:
        if math.isfinite(f_hi) and f_hi > f_lo:
            mid = lo - f_lo * (hi - lo) / (f_hi - f_lo)
            if not lo < mid < hi or side == 2 or side == -2:  # stuck on one side: bisect
                mid = math.sqrt(lo * hi)
                side = 0
        else:
            mid = math.sqrt(lo * hi)
        sat, f_mid, st_mid = excess(mid, st_lo)
        if sat:
            hi, f_hi = mid, f_mid
            side = side + 1 if side > 0 else 1
            if side == 2:
                f_lo *= 0.5  # Illinois
        else:
            lo, f_lo, st_lo = mid, f_mid, st_mid
            side = side - 1 if side < 0 else -1
            if side == -2:
                f_hi *= 0.5
        if not sat and -f_mid < rel * 1e-2:  # within a hundredth of the precision of 1
            break
    return math.sqrt(lo * hi) if hi / lo - 1.0 <= rel else lo, st_lo


# =========================================================================== percentiles


def _class_parts(net: _Net, state: _State, n: int, c: int) -> tuple[float, list[tuple[float, tuple]]]:
    """The time in component ``n`` of a class-``c`` visit (wait and holding time) as a
    mixture: per route, no wait with probability 1 - P(wait), else the wait of those who wait
    plus the holding time. Returns the admitted visit rate and the parts (weights summing
    to 1): exact for an M/M/c pool (an exponential holding time and an exponential wait),
    a gamma fit of the moments otherwise."""
    nd = net.nodes[n]
    v = state.visits[n][c]
    res = state.stations[n]
    hm, hv = state.hold[n][c]
    sm, _sv, exp = nd.svc[c]
    if math.isinf(hm):
        return v, [(1.0, ("det", math.inf))]
    plain = exp and sm > 0 and not any(k.prob[c] > 0 for k in nd.sync)
    h = ("exp", 1.0 / sm) if plain else _fit(hm, hv)
    np_share = (v - state.pulled[n][c]) / v if v > 0 else 1.0
    w_no = w_yes = cm = c2 = 0.0
    exp_wait = True
    first = None
    for r in nd.routes[c]:
        rho, pb, pw, w1, w2, bad = res[r.station][:6]
        wr = r.share * (1.0 - pb)
        if not wr > 0:
            continue
        pwr = pw * np_share
        w_no += wr * (1.0 - pwr)
        if pwr > 0:
            if math.isinf(w1):
                return v, [(1.0, ("det", math.inf))]
            w_yes += wr * pwr
            m_c, s_c = w1 / pw, w2 / pw  # the wait of those who wait: mean, second moment
            cm += wr * pwr * m_c
            c2 += wr * pwr * s_c
            exp_wait = exp_wait and abs(s_c - 2.0 * m_c * m_c) <= 1e-9 * s_c and (
                first is None or abs(first - m_c) <= 1e-12 * m_c)
            first = m_c if first is None else first
    total = w_no + w_yes
    if not total > 0:
        return 0.0, []
    parts = [(w_no / total, h)]
    if w_yes > 0:
        cm, c2 = cm / w_yes, c2 / w_yes
        if h[0] == "exp" and exp_wait:
            wait = ("hypo", h[1], 1.0 / cm)
        else:
            hmm, hvv = _moments(h)
            wait = _fit(hmm + cm, hvv + max(c2 - cm * cm, 0.0))
        parts.append((w_yes / total, wait))
    return v * total, parts


def _p99(parts: list[tuple[float, tuple]]) -> float:
    return _mixture_quantile(parts, P99) if parts else math.nan


# =========================================================================== the report

TABLE_FORMATS = {"kind": "str", "arrival_rps": "num", "workers": "int", "utilization": "util",
                 "mean_wait_ms": "ms", "mean_hold_ms": "ms", "mean_response_ms": "ms",
                 "p99_ms": "ms", "rejected": "pct", "saturates_at": "x", "note": "str"}
CLASS_FORMATS = {"arrival_rps": "num", "throughput_rps": "num", "availability": "pct",
                 "mean_ms": "ms", "p99_ms": "ms"}


@dataclass
class ModelReport:
    """The queueing model of one design at one load multiplier (:func:`analyze`).

    ``table`` has one row per component: ``kind``, ``arrival_rps`` (visits per second,
    retries included), ``workers``, ``utilization`` (offered work over workers; for a
    datastore its busiest replica), ``mean_wait_ms`` (for a worker), ``mean_hold_ms`` (the
    time a visit holds its worker), ``mean_response_ms`` (wait and holding: the time in the
    component and its synchronous calls), ``p99_ms`` (of that time), ``rejected`` (the share
    of visits turned away by a full queue or admission control), ``saturates_at`` (the load
    multiplier at which it reaches utilisation 1) and ``note``. ``classes`` has per request
    class ``arrival_rps``, ``throughput_rps``, ``availability``, ``mean_ms`` and ``p99_ms``
    end to end. ``saturation_load`` is the load multiplier at which the first component
    reaches utilisation 1 (for a closed loop, the users multiplier at which the asymptotic
    bounds cross), ``bottleneck`` that component; ``stable`` says whether every queue is
    below utilisation 1 at ``load``.
    """

    design: str
    load: float
    table: pd.DataFrame
    classes: pd.DataFrame
    mean_ms: float
    p99_ms: float
    throughput_rps: float
    availability: float
    bottleneck: str | None
    saturation_load: float
    stable: bool
    method: str
    closed: bool = False
    users: int | None = None
    warnings: list[str] = field(default_factory=list)
    hit_ratios: dict[str, float] = field(default_factory=dict)
    iterations: int = 0

    def __str__(self) -> str:
        return format_model(self)

    def _repr_html_(self) -> str:
        """The model in a notebook: the table per component, end to end, the bottleneck."""
        parts = [html_table(self.table, TABLE_FORMATS, "component",
                            caption=f"{self.design}: queueing model at {self.load:g}x load "
                                    "(approximate)"),
                 html_table(self.classes, CLASS_FORMATS, "class", caption="end to end"),
                 f"<p>{html.escape(_summary_line(self))}</p>",
                 f"<p>{html.escape(_bottleneck_line(self))}</p>",
                 f"<p>method: {html.escape(self.method)}</p>"]
        parts += [f"<p>warning: {html.escape(w)}</p>" for w in self.warnings]
        return "<div>\n" + "\n".join(parts) + "\n</div>"

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready: infinities and missing values as ``None``)."""
        def plain(v: Any) -> Any:
            if isinstance(v, (float, np.floating)):
                return float(v) if math.isfinite(v) else None
            if isinstance(v, (np.integer,)):
                return int(v)
            return v

        def rows(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
            return {str(i): {k: plain(x) for k, x in r.items()} for i, r in df.iterrows()}

        return {"design": self.design, "load": self.load, "closed": self.closed, "users": self.users,
                "mean_ms": plain(self.mean_ms), "p99_ms": plain(self.p99_ms),
                "throughput_rps": plain(self.throughput_rps), "availability": plain(self.availability),
                "bottleneck": self.bottleneck, "saturation_load": plain(self.saturation_load),
                "stable": self.stable, "method": self.method, "warnings": list(self.warnings),
                "hit_ratios": {k: plain(v) for k, v in self.hit_ratios.items()},
                "components": rows(self.table), "classes": rows(self.classes)}


def _summary_line(rep: ModelReport) -> str:
    if not rep.stable:
        return (f"End to end: unstable at {rep.load:g}x (a queue grows without bound); "
                f"throughput {fmt(rep.throughput_rps)} rps")
    return (f"End to end: mean {fmt(rep.mean_ms, 'ms')} ms, p99 {fmt(rep.p99_ms, 'ms')} ms, "
            f"throughput {fmt(rep.throughput_rps)} rps, availability {fmt(rep.availability, 'pct')}")


def _bottleneck_line(rep: ModelReport) -> str:
    if rep.bottleneck is None:
        if rep.table["workers"].notna().any():
            return "Bottleneck: none (no component reaches utilisation 1 at any load)"
        return "Bottleneck: none (no component has a worker limit)"
    what = "users" if rep.closed else "load"
    return f"Bottleneck: {rep.bottleneck}, saturates at {fmt(rep.saturation_load, 'x')} {what}"


def format_model(rep: ModelReport, heading: bool = True) -> str:
    """The model as text: the section ``simarch validate`` prints after the static analysis."""
    lines = []
    if heading:
        lines.append(f"Queueing model at {rep.load:g}x load (approximate; method: {SHORT_METHOD}, "
                     "see below)")
    formats = {k: ("str" if k in _INF_COLS else v) for k, v in TABLE_FORMATS.items()}
    lines.append(table(_inf_as_text(rep.table), formats, "component"))
    lines.append("")
    lines.append(_summary_line(rep))
    if len(rep.classes) > 1:
        lines.append(table(rep.classes, CLASS_FORMATS, "class"))
    lines.append(_bottleneck_line(rep))
    lines.append(f"Method: {rep.method}")
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


_INF_COLS = ("utilization", "mean_wait_ms", "mean_hold_ms", "mean_response_ms", "p99_ms")


def _inf_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the columns that can be infinite formatted, ``inf`` as such."""
    out = df.copy()
    for col in _INF_COLS:
        kind_ = TABLE_FORMATS[col]
        out[col] = [("inf" if isinstance(v, float) and math.isinf(v) else
                     "0" if kind_ == "ms" and isinstance(v, float) and 0 <= v < 5e-4 else fmt(v, kind_))
                    for v in df[col]]
    return out


# =========================================================================== analyze


def analyze(arch: Architecture | str | Any, load: float | str = 1.0) -> ModelReport:
    """Solve the queueing model of a design at a load multiplier, in milliseconds.

    ``arch`` is an :class:`~simarch.model.architecture.Architecture`, a spec path or a spec
    mapping; ``load`` multiplies the workload as in :func:`simarch.simulate` (``10``,
    ``"10x"``): the arrival rate of an open workload (the peak of a rate profile) or the
    number of users of a closed loop. Returns a :class:`ModelReport`: per component the
    utilisation, the mean wait, holding and response times, an approximate p99 and the load
    at which it saturates; end to end the mean and p99 latency (per class in ``classes``),
    the throughput, the bottleneck and the load multiplier at which the design saturates.

    The model is approximate (``docs/background/queueing-model.md`` gives the method and
    its measured accuracy); faults, circuit breakers, hedging and fallbacks are not modelled.
    """
    arch = load_arch(arch)
    with argument("load"):
        load = parse_multiplier(load)
    net = _Net(arch)
    warnings = list(net.warnings)
    method = METHOD
    users = None
    extra = 0.0
    if net.closed:
        users = max(1, int(round(net.spec.workload.users * load)))
        state, x, how, extra = _closed(net, users)
        method += "; " + how
        if extra > 0:
            warnings.append(f"the users wait {fmt(1e3 * extra, 'ms')} ms on average for workers of "
                            "a saturated caller, on top of the response times in the table")
        r0 = _mean_response(net, _solve(net, [1e-9 * w for w in net.weights], wait_scale=0.0))
        x_sat, st_lo = _saturation_rate(net, x)
        sat_factor = (net.think + r0) / net.spec.workload.users  # users multiplier per rate
        saturation = x_sat * sat_factor
        lo_rate = x_sat if st_lo is None else sum(st_lo.visits[net.entry])
    else:
        rate = net.base_rate * load
        state = _solve(net, [rate * w for w in net.weights])
        x_sat, st_lo = _saturation_rate(net, max(rate, 1e-300))
        sat_factor = 1.0 / net.base_rate if net.base_rate > 0 else math.inf
        saturation = x_sat * sat_factor
        lo_rate = x_sat if st_lo is None else sum(st_lo.visits[net.entry])
    if net.uses_least:
        method += ("; least connections and the power of two choices as one pooled queue "
                   "(optimistic for few workers per instance)")
    if not state.converged:
        warnings.append("the fixed point did not converge: figures are the last iterate")

    # ---- per component
    nc = len(net.classes)
    rows = []
    for nd in net.nodes:
        n = nd.index
        cs = nd.spec
        workers, _u, note = nd.kind.utilization(cs, nd.name, net.flows[nd.name], 0.0, net.classes,
                                                net.spec.workload)
        note = nd.kind.capacity_note(cs, net.hit_ratio.get(nd.name), note)
        arrival = sum(state.visits[n])
        res = state.stations[n]
        served = sum(r[6] * nd.stations[i].count * (1.0 - r[1]) for i, r in enumerate(res))
        wait = (sum(r[6] * nd.stations[i].count * (1.0 - r[1]) * r[3] for i, r in enumerate(res)
                    if r[6] > 0) / served) if served > 0 else 0.0  # per visit served, as simulated
        p_wait = (sum(r[6] * nd.stations[i].count * (1.0 - r[1]) * r[2] for i, r in enumerate(res)
                      if r[6] > 0) / served) if served > 0 else 0.0
        groups = [(k, state.groups[k.index]) for k in nd.groups if k.index in state.groups]
        if nd.broker and groups:
            g_lam = sum(g[6] for _, g in groups)
            wait = sum(g[6] * g[3] for _, g in groups) / g_lam if g_lam > 0 else 0.0
            note = (note + "; " if note else "") + "wait: consumers' backlog"
        adm = [sum(r.share * (1.0 - res[r.station][1]) for r in nd.routes[c]) * (1.0 - state.shed[n])
               for c in range(nc)]
        weight = [state.visits[n][c] * adm[c] for c in range(nc)]
        wsum = sum(weight)
        resp_ms = sum(weight[c] * state.time_in[n][c] for c in range(nc)) / wsum if wsum > 0 else math.nan
        hold_ms = sum(weight[c] * state.hold[n][c][0] for c in range(nc)) / wsum if wsum > 0 else math.nan
        rejected = 1.0 - wsum / arrival if arrival > 0 else 0.0
        if nd.broker and arrival > 0:
            rej = [state.fail[n][c][0] for c in range(nc)]
            rejected = sum(state.visits[n][c] * rej[c] for c in range(nc)) / arrival
        parts = []
        for c in range(nc):
            if weight[c] > 0:
                v, ps = _class_parts(net, state, n, c)
                parts += [(v * w, d) for w, d in ps]
        util = max((r[0] for r in res if not math.isnan(r[0])), default=math.nan)
        u_lo = st_lo.node_util(net, n) if st_lo is not None else math.nan
        if math.isnan(u_lo) or not u_lo > 0 or math.isinf(saturation):
            sat_n = math.inf
        else:
            sat_n = lo_rate / u_lo * sat_factor
        rows.append({
            "component": nd.name, "kind": cs.kind, "arrival_rps": arrival,
            "workers": workers, "utilization": util,
            "mean_wait_ms": 1e3 * wait, "wait_probability": p_wait, "mean_hold_ms": 1e3 * hold_ms,
            "mean_response_ms": 1e3 * resp_ms, "p99_ms": 1e3 * _p99(parts) if parts else math.nan,
            "rejected": rejected, "saturates_at": sat_n, "note": note})
    table_ = pd.DataFrame(rows).set_index("component")

    # ---- end to end
    e = net.entry
    crows = []
    all_parts = []
    thr_total = 0.0
    mean_acc = 0.0
    for c, name in enumerate(net.classes):
        arr = state.visits[e][c]
        f = sum(state.fail[e][c])
        thr = arr * (1.0 - f)
        om, ov = state.ok_resp[e][c]
        nd = net.nodes[e]
        simple_path = not any(k.prob[c] > 0 for k in (*nd.sync, *nd.fwd)) and not any(
            r.copies and r.sync for r in nd.routes[c])
        if extra > 0:  # users waiting for a saturated caller's workers
            om += extra
        if simple_path and extra == 0:
            _v, parts = _class_parts(net, state, e, c)
        else:
            parts = [(1.0, _fit(om, ov))] if math.isfinite(om) else [(1.0, ("det", math.inf))]
        p99 = _p99(parts)
        all_parts += [(thr * w, d) for w, d in parts]
        thr_total += thr
        mean_acc += thr * om
        crows.append({"class": name, "arrival_rps": arr, "throughput_rps": thr,
                      "availability": 1.0 - f, "mean_ms": 1e3 * om, "p99_ms": 1e3 * p99})
    classes_ = pd.DataFrame(crows).set_index("class")
    arrivals = sum(state.visits[e])
    mean_ms = 1e3 * mean_acc / thr_total if thr_total > 0 else math.nan
    p99_ms = 1e3 * _p99(all_parts) if thr_total > 0 else math.nan
    availability = thr_total / arrivals if arrivals > 0 else math.nan

    finite = table_["saturates_at"]
    bottleneck = None
    if st_lo is not None and math.isfinite(saturation):
        _u, where = st_lo.max_util(net)
        bottleneck = net.nodes[where].name if where is not None else None
    if bottleneck is not None:
        table_.loc[bottleneck, "saturates_at"] = saturation
    stable = not state.unstable
    for name, row in table_.iterrows():
        u = row["utilization"]
        if isinstance(u, float) and u >= 1.0:
            warnings.append(f"{name} would be saturated: utilisation {fmt(u, 'util')} at {load:g}x "
                            f"(saturates at {fmt(finite[name], 'x')})")
        if row["rejected"] > 1e-3:
            warnings.append(f"{name} turns away {fmt(row['rejected'], 'pct')} of its visits")
    return ModelReport(arch.name, load, table_, classes_, mean_ms, p99_ms, thr_total, availability,
                       bottleneck, saturation, stable, method, net.closed, users, warnings,
                       dict(net.hit_ratio), state.iterations)
