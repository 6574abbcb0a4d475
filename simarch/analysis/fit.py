"""Calibration from real latency data: service-time distributions per service and operation,
and the call graph, proposed as a spec fragment to paste into a design.

:func:`fit` reads OTLP/JSON spans or a CSV of durations (see :mod:`simarch.analysis.spans`),
takes the exclusive time of every visit as a sample of its service's service time, and fits
each (service, operation) group that has at least ``min_samples`` (20) samples:

* **lognormal**, **gamma** and **Weibull** by maximum likelihood, location fixed at 0. The
  standard errors are closed forms: lognormal SE(mu) = sigma/sqrt(n), SE(sigma) =
  sigma/sqrt(2n); gamma and Weibull the inverse of their Fisher information at the estimate.
* a **mixture of two lognormals** (bimodal latency: a cache hit and a miss, a fast and a slow
  path) by expectation-maximisation on the logarithms, from several starting splits; its
  standard errors are the inverse of the observed Fisher information, a numerical Hessian of
  the log-likelihood. Fitted from 100 samples on.
* the **empirical** distribution: ``empirical_points`` (200) equally spaced quantiles.

For each: the parameters and their standard errors, the log-likelihood, AIC = 2k - 2 ln L,
the Kolmogorov-Smirnov distance and p-value against the data (the p-value treats the fitted
parameters as known, so it is lenient), and the relative errors of the model's p50, p99 and
p99.9 against the data's.

**The selection rule.** The proposal is the family of lowest AIC among lognormal, gamma and
Weibull; the mixture replaces it when it lowers the AIC by more than 10 more. That proposal
is kept when it fits: its KS p-value is at least 0.01, or the data are so many that KS
rejects small differences and the fit is close in practice (KS distance at most 0.02, p50
within 5% and p99 within 10% of the data's). Otherwise nothing fits and the proposal is the
empirical distribution. Samples that all have the same value (within one part in a million)
give a constant. A service's operations get a distribution each when the data say they
differ (a two-sample KS test of an operation against the service's other operations at
p < 0.01), one for all of them otherwise.

Exclusive time is service time only when the visit did not wait: at high utilisation it
includes queueing for a worker. Calibrate from traces taken at low load.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..errors import SimarchError, SpecError, excerpt
from ..model.dists import DISTRIBUTION_NAMES, Distribution, parse_distribution
from ..model.spec import NAME_RE
from ..model.units import format_duration
from ..model.yamlio import yaml_load
from .spans import (
    STATUS_ERROR,
    analyse_spans,
    call_graph,
    durations_from_frame,
    read_durations_csv,
    read_otlp,
    spans_from_otlp,
)

__all__ = [
    "ALL",
    "FAMILIES",
    "Candidate",
    "Fit",
    "Proposal",
    "choose",
    "fit",
    "fit_sample",
]

MIN_SAMPLES = 20  # below this a group is reported, not fitted
MIN_MIXTURE_SAMPLES = 100  # five parameters need more data than two
MIXTURE_MARGIN = 10.0  # AIC units the mixture must gain over the best single family
KS_ALPHA = 0.01
CLOSE_KS = 0.02  # KS distance, p50 and p99 errors of a fit that is close in practice
CLOSE_P50 = 0.05
CLOSE_P99 = 0.10
EMPIRICAL_POINTS = 200
QUANTILES = (0.5, 0.99, 0.999)
ZERO_SHARE = 0.01  # zeros above this share are kept, as a mixture with a constant 0
SPLIT_ALPHA = 0.01
ALL = "(all)"  # the operation name of a service's pooled group

#: The candidate families, in the order they are reported.
FAMILIES = ("lognormal", "gamma", "weibull", "mixture", "empirical")
PARAMETRIC = ("lognormal", "gamma", "weibull")
_Z99 = 2.3263478740408408
_EULER = 0.5772156649015329


# --------------------------------------------------------------------------- formatting


def _sig(x: float, digits: int = 5) -> str:
    """``x`` with ``digits`` significant digits, without an exponent (YAML reads '1e-05' as text)."""
    return np.format_float_positional(float(x), precision=digits, unique=False, fractional=False,
                                      trim="-")


def _number(x: float, digits: int = 5) -> float:
    return float(_sig(x, digits))


def _duration(seconds: float, digits: int = 5) -> str:
    """A duration string that reads back as the rounded value: '4.1234ms', '250us', '1.5s'."""
    if seconds >= 1:
        value, unit = seconds, "s"
    elif seconds >= 1e-3:
        value, unit = seconds * 1e3, "ms"
    else:
        value, unit = seconds * 1e6, "us"
    text = _sig(value, digits)
    if len(text) > 40:  # 1e-30 s and the like: seconds, in full
        text, unit = _sig(seconds, digits), ""
    return text + unit


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True, eq=False)
class Candidate:
    """One family fitted to one sample.

    ``params`` and ``se`` map parameter names to estimates and standard errors (durations in
    seconds: lognormal ``mu``, ``sigma`` of ln(seconds); gamma and Weibull ``shape``,
    ``scale``; the mixture ``weight`` of its first component and ``mu1``, ``sigma1``, ``mu2``,
    ``sigma2``, the first component the one of lower median; empirical ``points``).
    ``errors`` maps 0.5, 0.99 and 0.999 to the relative error of the model's quantile against
    the data's. ``spec`` is the distribution in spec syntax, rounded to five significant
    digits, and ``distribution`` is ``parse_distribution(spec)``.
    """

    family: str
    params: dict[str, float]
    se: dict[str, float]
    loglik: float
    aic: float
    ks: float
    ks_p: float
    errors: dict[float, float]
    spec: Any
    distribution: Distribution
    note: str = ""

    def describe(self) -> str:
        """A short description: ``lognormal median 4.1ms sigma 0.5``."""
        p = self.params
        if self.family == "lognormal":
            return f"lognormal median {format_duration(math.exp(p['mu']))} sigma {p['sigma']:.3g}"
        if self.family in ("gamma", "weibull"):
            return f"{self.family} shape {p['shape']:.3g} scale {format_duration(p['scale'])}"
        if self.family == "mixture":
            return (f"mixture {p['weight']:.0%} median {format_duration(math.exp(p['mu1']))} + "
                    f"{1 - p['weight']:.0%} median {format_duration(math.exp(p['mu2']))}")
        if self.family == "empirical":
            return f"empirical {int(p['points'])} quantiles"
        if self.family == "constant":
            return f"constant {format_duration(p['value'])}"
        return self.family


def _goodness(x: np.ndarray, cdf: Any, ppf: Any) -> tuple[float, float, dict[float, float]]:
    with np.errstate(all="ignore"):
        res = stats.kstest(x, cdf)
    data_q = np.quantile(x, QUANTILES)
    model_q = np.array([ppf(q) for q in QUANTILES], dtype=float)
    errors = {q: float((m - d) / d) if d > 0 else math.nan
              for q, m, d in zip(QUANTILES, model_q, data_q, strict=True)}
    return float(res.statistic), float(res.pvalue), errors


def _candidate(family: str, x: np.ndarray, params: dict[str, float], se: dict[str, float],
               loglik: float, spec: Any, cdf: Any, ppf: Any, k: int, note: str = "") -> Candidate:
    ks, ks_p, errors = _goodness(x, cdf, ppf)
    aic = 2 * k - 2 * loglik if math.isfinite(loglik) else math.nan
    return Candidate(family, params, se, float(loglik), float(aic), ks, ks_p, errors, spec,
                     parse_distribution(spec), note)


def _lognormal(x: np.ndarray) -> Candidate:
    n = x.size
    y = np.log(x)
    mu, sigma = float(y.mean()), float(y.std())
    se = {"mu": sigma / math.sqrt(n), "sigma": sigma / math.sqrt(2 * n)}
    frozen = stats.lognorm(sigma, scale=math.exp(mu))
    loglik = float(frozen.logpdf(x).sum())
    spec = {"lognormal": {"median": _duration(math.exp(mu)),
                          "p99": _duration(math.exp(mu + _Z99 * sigma))}}
    return _candidate("lognormal", x, {"mu": mu, "sigma": sigma}, se, loglik, spec, frozen.cdf,
                      frozen.ppf, 2)


def _gamma(x: np.ndarray) -> Candidate:
    """Maximum likelihood: ln(shape) - digamma(shape) = ln(mean) - mean(ln x), scale = mean/shape."""
    n = x.size
    mean = float(x.mean())
    s = math.log(mean) - float(np.log(x).mean())
    s = max(s, 1e-12)
    shape = optimize.brentq(lambda a: math.log(a) - special.digamma(a) - s, 1e-8, 1e12,
                            xtol=1e-14, rtol=1e-14, maxiter=500)
    scale = mean / shape
    info = n * np.array([[special.polygamma(1, shape), 1 / scale], [1 / scale, shape / scale**2]])
    return _shape_scale("gamma", x, shape, scale, _inverse(info), stats.gamma(shape, scale=scale))


def _weibull(x: np.ndarray) -> Candidate:
    """Maximum likelihood: the shape k solves sum(x^k ln x)/sum(x^k) - 1/k = mean(ln x), and
    scale = mean(x^k)^(1/k); computed on x over its geometric mean, so x^k stays finite."""
    n = x.size
    y = np.log(x)
    g = float(y.mean())
    u = y - g  # ln(x / geometric mean)

    def score(k: float) -> float:
        t = k * u
        w = np.exp(t - t.max())
        return float((w * u).sum() / w.sum()) - 1 / k

    lo, hi = 1e-3, 1.0
    while score(hi) < 0 and hi < 1e6:
        hi *= 2
    shape = optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
    t = shape * u
    scale = math.exp(g + (t.max() + math.log(np.exp(t - t.max()).mean())) / shape)
    # expected Fisher information of (shape, scale)
    a = (math.pi**2 / 6 + (1 - _EULER) ** 2) / shape**2
    b = -(1 - _EULER) / scale
    c = shape**2 / scale**2
    return _shape_scale("weibull", x, shape, scale, _inverse(n * np.array([[a, b], [b, c]])),
                        stats.weibull_min(shape, scale=scale))


def _shape_scale(family: str, x: np.ndarray, shape: float, scale: float, cov: np.ndarray,
                 frozen: Any) -> Candidate:
    """The candidate of a (shape, scale) family fitted to ``x``, from its covariance matrix
    and its frozen scipy distribution."""
    se = {"shape": _sqrt(cov[0, 0]), "scale": _sqrt(cov[1, 1])}
    loglik = float(frozen.logpdf(x).sum())
    spec = {family: {"shape": _number(shape), "scale": _duration(scale)}}
    return _candidate(family, x, {"shape": shape, "scale": scale}, se, loglik, spec, frozen.cdf,
                      frozen.ppf, 2)


def _inverse(m: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(m)
    except np.linalg.LinAlgError:
        return np.full_like(m, math.nan)


def _sqrt(v: float) -> float:
    return math.sqrt(v) if v >= 0 else math.nan


# --------------------------------------------------------------------------- the mixture

_EM_STARTS = (0.1, 0.25, 0.5, 0.75, 0.9)
_EM_SUBSAMPLE = 20_000


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _norm_logpdf(y: np.ndarray, m: float, s: float) -> np.ndarray:
    z = (y - m) / s
    return -0.5 * z * z - (math.log(s) + _HALF_LOG_2PI)


def _mix_loglik(y: np.ndarray, w: float, m1: float, s1: float, m2: float, s2: float) -> float:
    """Log-likelihood of ln x under the mixture of two normals (that of x is this - sum(ln x))."""
    if not (0 < w < 1 and s1 > 0 and s2 > 0):
        return -math.inf
    a = math.log(w) + _norm_logpdf(y, m1, s1)
    b = math.log1p(-w) + _norm_logpdf(y, m2, s2)
    return float(np.logaddexp(a, b).sum())


def _em(y: np.ndarray, theta: tuple[float, ...], iterations: int, floor: float) -> tuple[float, ...]:
    w, m1, s1, m2, s2 = theta
    last = -math.inf
    for _ in range(iterations):
        a = math.log(w) + _norm_logpdf(y, m1, s1)
        b = math.log1p(-w) + _norm_logpdf(y, m2, s2)
        total = np.logaddexp(a, b)
        ll = float(total.sum())
        r = np.exp(a - total)  # responsibility of component 1
        n1 = float(r.sum())
        n2 = y.size - n1
        if n1 < 2 or n2 < 2:
            return (w, m1, s1, m2, s2)
        w = n1 / y.size
        m1 = float((r * y).sum() / n1)
        m2 = float(((1 - r) * y).sum() / n2)
        s1 = max(math.sqrt(float((r * (y - m1) ** 2).sum() / n1)), floor)
        s2 = max(math.sqrt(float(((1 - r) * (y - m2) ** 2).sum() / n2)), floor)
        if ll - last < 1e-8 * y.size:
            break
        last = ll
    return (w, m1, s1, m2, s2)


def _hessian(f: Any, theta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``theta``."""
    k = theta.size
    h = np.empty((k, k))
    f0 = f(theta)
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = steps[i]
        h[i, i] = (f(theta + ei) - 2 * f0 + f(theta - ei)) / steps[i] ** 2
        for j in range(i + 1, k):
            ej = np.zeros(k)
            ej[j] = steps[j]
            h[i, j] = h[j, i] = (f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej)
                                 + f(theta - ei - ej)) / (4 * steps[i] * steps[j])
    return h


def _mixture(x: np.ndarray) -> Candidate | None:
    y = np.log(x)
    n = y.size
    floor = max(1e-3 * float(y.std()), 1e-9)
    order = np.sort(y)
    # the starts run on a subsample of a large sample; the best is then polished on all of it
    sub = order if n <= _EM_SUBSAMPLE else order[np.linspace(0, n - 1, _EM_SUBSAMPLE).astype(int)]
    best, best_ll = None, -math.inf
    for q in _EM_STARTS:
        cut = int(q * sub.size)
        lo, hi = sub[:cut], sub[cut:]
        if lo.size < 2 or hi.size < 2:
            continue
        theta = (q, float(lo.mean()), max(float(lo.std()), floor), float(hi.mean()),
                 max(float(hi.std()), floor))
        theta = _em(sub, theta, 60, floor)
        ll = _mix_loglik(sub, *theta)
        if ll > best_ll and 0.001 < theta[0] < 0.999:
            best, best_ll = theta, ll
    if best is None:
        return None
    w, m1, s1, m2, s2 = _em(y, best, 1000, floor)
    if m1 > m2:
        w, m1, s1, m2, s2 = 1 - w, m2, s2, m1, s1
    if not 0.001 < w < 0.999:
        return None
    theta = np.array([w, m1, s1, m2, s2])
    loglik = _mix_loglik(y, *theta) - float(y.sum())
    steps = 1e-4 * np.array([min(w, 1 - w), s1, s1, s2, s2])
    with np.errstate(all="ignore"):
        hess = _hessian(lambda t: -_mix_loglik(y, *t), theta, steps)
        cov = _inverse(hess)
    names = ("weight", "mu1", "sigma1", "mu2", "sigma2")
    params = dict(zip(names, map(float, theta), strict=True))
    se = {k: _sqrt(cov[i, i]) for i, k in enumerate(names)}
    note = "" if all(math.isfinite(v) for v in se.values()) else \
        "the information matrix is not positive definite: no standard errors"
    weight = _number(w, 4)

    def component(mu: float, sigma: float) -> dict:
        return {"lognormal": {"median": _duration(math.exp(mu)),
                              "p99": _duration(math.exp(mu + _Z99 * sigma))}}

    spec = {"mixture": [{"weight": weight, "dist": component(m1, s1)},
                        {"weight": _number(1 - weight, 4), "dist": component(m2, s2)}]}

    def cdf(v: Any) -> Any:
        with np.errstate(divide="ignore"):
            lv = np.log(v)
        return w * stats.norm.cdf(lv, m1, s1) + (1 - w) * stats.norm.cdf(lv, m2, s2)

    def ppf(p: float) -> float:
        lo = min(m1 - 12 * s1, m2 - 12 * s2)
        hi = max(m1 + 12 * s1, m2 + 12 * s2)
        f = lambda t: w * stats.norm.cdf(t, m1, s1) + (1 - w) * stats.norm.cdf(t, m2, s2) - p  # noqa: E731
        return math.exp(optimize.brentq(f, lo, hi, xtol=1e-12))

    return _candidate("mixture", x, params, se, loglik, spec, cdf, ppf, 5, note)


# --------------------------------------------------------------------------- empirical, constant


def _empirical(x: np.ndarray, points: int) -> Candidate:
    m = min(points, x.size)
    qs = np.quantile(x, (np.arange(m) + 0.5) / m) if x.size > m else np.sort(x)
    spec = {"empirical": [_duration(v, 4) for v in qs]}
    values = np.sort(np.array(parse_distribution(spec).values))

    def cdf(v: Any) -> Any:
        return np.searchsorted(values, v, side="right") / values.size

    def ppf(p: float) -> float:
        return float(np.quantile(values, p, method="inverted_cdf"))

    return _candidate("empirical", x, {"points": float(values.size)}, {}, math.nan, spec, cdf, ppf,
                      0)


def _constant(x: np.ndarray) -> Candidate:
    value = float(np.median(x))
    spec = _duration(value) if value > 0 else 0
    dist = parse_distribution(spec)
    data_q = np.quantile(x, QUANTILES)
    errors = {q: float((dist.mean - d) / d) if d > 0 else 0.0
              for q, d in zip(QUANTILES, data_q, strict=True)}
    ks = float(np.max(np.abs((x <= dist.mean).mean() - 1.0))) if x.size else 0.0
    return Candidate("constant", {"value": value}, {}, math.nan, math.nan, ks, 1.0, errors, spec,
                     dist)


def fit_sample(values: Sequence[float] | np.ndarray, *,
               empirical_points: int = EMPIRICAL_POINTS) -> list[Candidate]:
    """Fit every candidate family to one sample of durations in seconds (all > 0): lognormal,
    gamma, Weibull, the two-lognormal mixture (from 100 values on) and the empirical
    quantiles; a sample whose values are all equal (within one part in a million) gets the
    constant alone. See the module docstring for the methods."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise SimarchError("fit_sample needs durations that are all finite and > 0")
    median = float(np.median(x))
    if float(x.max() - x.min()) <= 1e-6 * median:
        return [_constant(x)]
    out: list[Candidate] = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out.append(_lognormal(x))
        out.append(_gamma(x))
        out.append(_weibull(x))
        if x.size >= MIN_MIXTURE_SAMPLES:
            mixture = _mixture(x)
            if mixture is not None:
                out.append(mixture)
        out.append(_empirical(x, empirical_points))
    return out


def _fits(c: Candidate) -> bool:
    if c.ks_p >= KS_ALPHA:
        return True
    e50, e99 = abs(c.errors.get(0.5, math.inf)), abs(c.errors.get(0.99, math.inf))
    return c.ks <= CLOSE_KS and e50 <= CLOSE_P50 and e99 <= CLOSE_P99


def choose(candidates: Sequence[Candidate]) -> tuple[Candidate, Candidate | None, str]:
    """The proposal among ``candidates`` (from :func:`fit_sample`), the runner-up, and the
    reason, by the rule of the module docstring."""
    if len(candidates) == 1:
        return candidates[0], None, "all values are equal"
    single = sorted((c for c in candidates if c.family in PARAMETRIC and math.isfinite(c.aic)),
                    key=lambda c: c.aic)
    mixture = next((c for c in candidates if c.family == "mixture" and math.isfinite(c.aic)), None)
    empirical = next(c for c in candidates if c.family == "empirical")
    if not single:
        return empirical, None, "no parametric family could be fitted"
    best = single[0]
    runner = single[1] if len(single) > 1 else None
    reason = f"lowest AIC of {', '.join(PARAMETRIC)}"
    if mixture is not None and mixture.aic < best.aic - MIXTURE_MARGIN:
        runner, best = best, mixture
        reason = f"the mixture lowers the AIC by {runner.aic - mixture.aic:.1f} (> {MIXTURE_MARGIN:g})"
    if _fits(best):
        return best, runner, reason
    return empirical, best, (f"nothing fits: {best.family} has KS p = {best.ks_p:.2g} < {KS_ALPHA:g} "
                             f"(KS distance {best.ks:.3f})")


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True, eq=False)
class Proposal:
    """The proposed service time of one (service, operation) group (``operation`` is
    :data:`ALL` for all of a service's operations together).

    ``n`` counts the samples fitted, ``zeros`` the share of samples that were 0 (a visit that
    spent all its time in calls): above 1% they are kept, and ``distribution`` is a mixture of
    a constant 0 and the chosen fit. ``chosen`` and ``runner_up`` are :class:`Candidate`\\ s
    (``None`` when there were too few samples), ``reason`` why, ``candidates`` all of them.
    ``spec`` is what the fragment says, and ``distribution`` is ``parse_distribution(spec)``.
    """

    service: str
    operation: str
    n: int
    chosen: Candidate | None
    runner_up: Candidate | None
    reason: str
    candidates: tuple[Candidate, ...] = ()
    zeros: float = 0.0
    spec: Any = None
    distribution: Distribution | None = None

    @property
    def fitted(self) -> bool:
        return self.distribution is not None


def _propose(service: str, operation: str, x: np.ndarray, min_samples: int,
             empirical_points: int) -> Proposal:
    n_all = x.size
    positive = x[x > 0]
    zeros = 1 - positive.size / n_all if n_all else 0.0
    if n_all < min_samples:
        return Proposal(service, operation, n_all, None, None,
                        f"too few samples ({n_all} < {min_samples}): not fitted", zeros=zeros)
    if positive.size == 0:
        c = _constant(np.zeros(1))
        return Proposal(service, operation, n_all, c, None, "every visit took no time of its own",
                        (c,), 1.0, 0, parse_distribution(0))
    if positive.size < min_samples:
        return Proposal(service, operation, n_all, None, None,
                        f"too few samples above 0 ({positive.size} < {min_samples}): not fitted",
                        zeros=zeros)
    candidates = fit_sample(positive, empirical_points=empirical_points)
    chosen, runner, reason = choose(candidates)
    spec = chosen.spec
    if zeros >= ZERO_SHARE:
        z = _number(zeros, 4)
        spec = {"mixture": [{"weight": z, "dist": 0}, {"weight": _number(1 - z, 4), "dist": spec}]}
        reason += f"; {zeros:.1%} of the visits took no time, mixed in as a constant 0"
    elif zeros > 0:
        reason += f"; {n_all - positive.size} visit(s) that took no time left out"
    return Proposal(service, operation, positive.size, chosen, runner, reason, tuple(candidates),
                    zeros, spec, parse_distribution(spec))


# --------------------------------------------------------------------------- the Fit


_TABLE_COLUMNS = ["service", "operation", "n", "candidate", "params", "se", "loglik", "aic",
                  "delta_aic", "ks", "ks_p", "err_p50", "err_p99", "err_p999", "chosen", "note"]


@dataclass(eq=False)
class Fit:
    """What :func:`fit` found in latency data.

    * ``table``: a DataFrame with a row per (service, operation, candidate): ``n``,
      ``candidate``, ``params`` and ``se`` (dicts, seconds), ``loglik``, ``aic``,
      ``delta_aic`` (to the lowest AIC of the group), ``ks``, ``ks_p``, ``err_p50``,
      ``err_p99``, ``err_p999`` (relative quantile errors), ``chosen`` and ``note``; a group
      with too few samples has one row with its ``n`` and the note.
    * ``proposals``: dict ``(service, operation) -> Proposal``, with :data:`ALL` as the
      operation of a service's operations pooled.
    * ``service_times``: dict service -> the ``service_time`` the fragment gives it (spec
      syntax: one distribution, or a mapping per operation with a ``default``).
    * ``graph``: the inferred call graph, a networkx ``DiGraph`` (see
      :func:`simarch.analysis.spans.call_graph` for its attributes).
    * ``visits`` and ``calls``: the visits and calls found in the spans (empty for a CSV).
    * ``notes``: what was left out or guessed, one sentence each.
    * :meth:`fragment` (the YAML text) and :meth:`to_spec_fragment` (the same as a dict).
    """

    source: str
    format: str
    table: pd.DataFrame
    proposals: dict[tuple[str, str], Proposal]
    service_times: dict[str, Any]
    graph: nx.DiGraph
    visits: pd.DataFrame = field(default_factory=pd.DataFrame)
    calls: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    operations: str = "span"
    names: dict[str, str] = field(default_factory=dict)  # service -> its name in the fragment
    traces: int = 0
    samples: int = 0  # durations read (a CSV) or visits fitted (spans)

    @property
    def services(self) -> list[str]:
        """The services fitted, in the order of the call graph (callers first)."""
        return list(self.service_times)

    def summary(self) -> pd.DataFrame:
        """One row per group: ``service``, ``operation``, ``n``, ``chosen`` (a short
        description), ``ks``, ``ks_p``, ``err_p50``, ``err_p99``, ``err_p999``,
        ``runner_up`` (and its AIC above the chosen one, when both have one)."""
        rows = []
        for (svc, op), p in self.proposals.items():
            c = p.chosen
            if c is None:
                rows.append((svc, op, p.n, p.reason, *([math.nan] * 5), ""))
                continue
            runner = ""
            if p.runner_up is not None:
                runner = p.runner_up.family
                if math.isfinite(p.runner_up.aic) and math.isfinite(c.aic):
                    runner += f" (AIC +{p.runner_up.aic - c.aic:.1f})"
            text = c.describe() + (f" + {p.zeros:.0%} zeros" if p.zeros >= ZERO_SHARE else "")
            rows.append((svc, op, p.n, text, c.ks, c.ks_p, c.errors.get(0.5, math.nan),
                         c.errors.get(0.99, math.nan), c.errors.get(0.999, math.nan), runner))
        return pd.DataFrame(rows, columns=["service", "operation", "n", "chosen", "ks", "ks_p",
                                           "err_p50", "err_p99", "err_p999", "runner_up"])

    def to_spec_fragment(self) -> dict[str, Any]:
        """The proposed ``components`` (each ``kind: service`` with its ``service_time`` and,
        when its calls overlap, ``fanout: parallel``) and ``calls``, as a dict in spec syntax."""
        components: dict[str, Any] = {}
        for svc, st in self.service_times.items():
            comp: dict[str, Any] = {"kind": "service"}
            if self.graph.has_node(svc) and self.graph.nodes[svc].get("fanout") == "parallel":
                comp["fanout"] = "parallel"
            comp["service_time"] = st
            components[self.names[svc]] = comp
        out: dict[str, Any] = {"components": components}
        calls = [self._call(u, v, d) for u, v, d in self.graph.edges(data=True)
                 if u in self.service_times and v in self.service_times]
        if calls:
            out["calls"] = calls
        return out

    def _call(self, u: str, v: str, d: Mapping[str, Any]) -> dict[str, Any]:
        call: dict[str, Any] = {"from": self.names[u], "to": self.names[v]}
        if d.get("requests"):
            call["requests"] = [_key(op) for op in d["requests"]]
        p = d.get("probability", 1.0)
        if math.isfinite(p) and p < 0.9995:
            call["probability"] = _number(p, 4)
        if d.get("mode", "call") != "call":
            call["mode"] = d["mode"]
        return call

    def fragment(self) -> str:
        """The proposal as YAML text to paste into a spec: ``components`` with their service
        times, ``calls``, and comments giving each fit's sample size, goodness of fit and
        runner-up, and what the data said about the workload."""
        frag = self.to_spec_fragment()
        fitted = _count(len(self.service_times), "service") + " fitted"
        lines = [f"# simarch fit of {self.source}: " + (
            f"{self.traces:,} traces, {len(self.visits):,} visits, {fitted}"
            if self.format == "otlp" else f"{self.samples:,} durations, {fitted}"),
            "# Service times " + ("are the visits' exclusive times (their duration less the time "
                                  "in the calls they made):" if self.format == "otlp" else
                                  "are the durations in the file:"),
            "# they include any wait for a worker, so fit data taken at low load. Set workers,",
            "# instances and queues from the deployment."]
        lines.append("components:" if frag["components"] else
                     "# components: no service had enough samples to fit")
        for svc, comp in frag["components"].items():
            real = next(s for s, n in self.names.items() if n == svc)
            lines.append(f"  {_scalar(svc)}:" + (f"  # service.name {real!r}" if real != svc else ""))
            lines.append("    kind: service")
            if "fanout" in comp:
                share = self.graph.nodes[real].get("parallel_share", 1.0)
                lines.append(f"    fanout: parallel  # calls overlapped in {share:.0%} of its visits "
                             "that made two or more")
            st = comp["service_time"]
            if isinstance(st, dict) and not set(st) & set(DISTRIBUTION_NAMES):
                lines.append("    service_time:")
                for op, dist in st.items():
                    prop = self.proposals.get((real, ALL if op == "default" else self._op_of(real, op)))
                    lines += _value_lines(f"      {_scalar(op)}: ", dist, _comment(prop, op == "default"))
            else:
                lines += _value_lines("    service_time: ", st, _comment(self._service_prop(real)))
        for svc in self._unfitted():
            p = self.proposals.get((svc, ALL)) or self.proposals[(svc, self._only_op(svc))]
            lines.append(f"  # {self.names.get(svc, svc)}: {p.reason}")
        edges = list(self.graph.edges(data=True))
        if frag.get("calls"):
            lines.append("calls:")
        for u, v, d in edges:
            if u not in self.service_times or v not in self.service_times:
                missing = v if v not in self.service_times else u
                lines.append(f"  # - {_flow(self._call(u, v, d))}  # {self.names.get(missing, missing)}"
                             " has no fitted service time")
                continue
            notes = []
            per_caller = d["calls"] / (d["probability"] * d["eligible"]) if d["calls"] else 0.0
            if per_caller > 1.05:
                notes.append(f"{per_caller:.2f} calls a calling visit on average; simarch makes one")
            if d.get("parallel", 0) > 0 and "fanout" not in frag["components"][self.names[u]]:
                notes.append(f"overlapped other calls in {d['parallel']:.0%} of them")
            lines += _value_lines("  - ", self._call(u, v, d), "; ".join(notes))
        lines += self._workload_comment()
        return "\n".join(lines) + "\n"

    def _unfitted(self) -> list[str]:
        return [s for s in dict.fromkeys(s for s, _ in self.proposals) if s not in self.service_times]

    def _op_of(self, service: str, key: str) -> str:
        return next((op for (s, op) in self.proposals if s == service and op != ALL
                     and _key(op) == key), key)

    def _only_op(self, service: str) -> str:
        ops = [op for (s, op) in self.proposals if s == service and op != ALL]
        return ops[0] if len(ops) == 1 else ALL

    def _service_prop(self, service: str) -> Proposal | None:
        p = self.proposals.get((service, ALL))
        return p if p is not None and p.fitted else self.proposals.get((service, self._only_op(service)))

    def _workload_comment(self) -> list[str]:
        if self.visits.empty:
            return []
        roots = self.visits[self.visits["parent"] == ""]
        if roots.empty:
            return []
        entry = roots["service"].value_counts().index[0]
        ops = roots[roots["service"] == entry]["operation"].value_counts()
        share = ", ".join(f"{_key(op)}: {{weight: {_sig(c / len(roots), 3)}}}" for op, c in ops.items())
        span = (roots["start_ns"].max() - roots["start_ns"].min()) / 1e9
        rate = f"rate: {_sig((len(roots) - 1) / span, 3)}, " if span > 0 and len(roots) > 1 else ""
        return ["# The workload the data show (a sampled trace undercounts the rate):",
                f"# workload: {{{rate}entry: {_scalar(self.names.get(entry, entry))}, "
                f"requests: {{{share}}}}}"]

    def report(self) -> str:
        """The text ``simarch fit`` prints: the table of fits, the call graph, the notes."""
        head = (f"simarch fit of {self.source} ({'OTLP/JSON spans' if self.format == 'otlp' else 'CSV of durations'}): "
                + (f"{self.traces:,} traces, {len(self.visits):,} visits, "
                   if self.format == "otlp" else "")
                + _count(len(self.service_times), "service") + " fitted")
        lines = [head, ""]
        summary = self.summary()
        if not summary.empty:
            shown = summary.copy()
            for col in ("err_p50", "err_p99", "err_p999"):
                shown[col] = shown[col].map(lambda v: "" if not math.isfinite(v) else f"{v:+.1%}")
            shown["ks"] = shown["ks"].map(lambda v: "" if not math.isfinite(v) else f"{v:.3f}")
            shown["ks_p"] = shown["ks_p"].map(lambda v: "" if not math.isfinite(v) else f"{v:.2g}")
            shown = shown.rename(columns={"err_p50": "p50 err", "err_p99": "p99 err",
                                          "err_p999": "p99.9 err", "ks": "KS", "ks_p": "KS p",
                                          "runner_up": "runner-up"})
            lines.append(shown.to_string(index=False))
        if self.graph.number_of_edges():
            lines += ["", "Calls (per visit of the caller):"]
            for u, v, d in self.graph.edges(data=True):
                bits = [f"mean {d['mean']:.2f}", f"p {d['probability']:.2f}"]
                if d.get("requests"):
                    bits.append("only " + ", ".join(d["requests"]))
                if d.get("parallel", 0) > 0.5:
                    bits.append("parallel")
                if d.get("mode", "call") != "call":
                    bits.append(d["mode"])
                lines.append(f"  {u} -> {v}: " + ", ".join(bits))
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return f"Fit({self.source!r}, {len(self.service_times)} services, {self.graph.number_of_edges()} calls)"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _comment(p: Proposal | None, pooled: bool = False) -> str:
    if p is None or p.chosen is None:
        return ""
    c = p.chosen
    text = f"n={p.n}" + (" (all operations)" if pooled else "") + f", {c.family}"
    if math.isfinite(c.ks_p) and c.family != "constant":
        text += f", KS p={c.ks_p:.2g}"
    if p.runner_up is not None:
        text += f"; runner-up {p.runner_up.family}"
        if math.isfinite(p.runner_up.aic) and math.isfinite(c.aic):
            text += f" (AIC +{p.runner_up.aic - c.aic:.1f})"
    return text


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _sig(value, 12) if value != int(value) or abs(value) < 1e15 else repr(value)
    text = str(value)
    try:
        same = yaml_load(f"k: {text}") == {"k": text}
    except SpecError:
        same = False
    return text if same and "#" not in text and text.strip() == text else _quoted(text)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _value_lines(prefix: str, value: Any, comment: str, width: int = 100) -> list[str]:
    """``prefix`` + ``value`` in flow style, a comment after it; long values wrapped, their
    continuation lines indented under the prefix."""
    text = _flow(value)
    tail = f"  # {comment}" if comment else ""
    if len(prefix) + len(text) + len(tail) <= width or len(prefix) + len(text) <= width:
        return [prefix + text + tail]
    indent = " " * (len(prefix) - len(prefix.lstrip()) + 4)
    out, line = [], prefix
    for token in _tokens(text):
        if len(line) + len(token) > width and line.strip():
            out.append(line.rstrip())
            line = indent
        line += token
    out.append(line.rstrip())
    if comment:
        out.insert(0, f"{' ' * (len(prefix) - len(prefix.lstrip()))}# {comment}")
    return out


def _tokens(text: str) -> list[str]:
    """``text`` cut after each ', ' (the places a flow collection may be wrapped)."""
    parts = text.split(", ")
    return [p + ", " for p in parts[:-1]] + [parts[-1]]


def _key(op: str) -> str:
    """An operation name as a request-class key: letters, digits, '_' and '-'."""
    if NAME_RE.match(op) and op not in DISTRIBUTION_NAMES:
        return op
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", op).strip("_").lstrip("-") or "op"
    return name + "_" if name in DISTRIBUTION_NAMES else name


# --------------------------------------------------------------------------- fit()


def _detect(path: Path, fmt: str) -> str:
    if fmt not in ("auto", "otlp", "csv"):
        raise SpecError(f"must be otlp, csv or auto, got {excerpt(fmt)}", ("format",))
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "otlp"
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError:
        return "otlp"  # the reader says what is wrong with the file
    return "otlp" if head[:1] in (b"{", b"[") else "csv"


def _is_message(data: Any) -> bool:
    return hasattr(data, "DESCRIPTOR") and hasattr(data, "SerializeToString")


def fit(
    data: str | Path | pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]] | Any,
    *,
    format: Literal["auto", "otlp", "csv"] = "auto",  # noqa: A002 - the CLI's --format
    service: str | None = None,
    operations: Literal["span", "entry"] = "span",
    min_samples: int = MIN_SAMPLES,
    empirical_points: int = EMPIRICAL_POINTS,
) -> Fit:
    """Propose service-time distributions and the call graph from real latency data.

    ``data`` is a file path (OTLP/JSON spans, or a CSV of durations: ``format`` says which,
    ``"auto"`` guesses from the extension and the first character), parsed OTLP/JSON (a
    ``TracesData`` mapping or a list of them, or a protobuf ``TracesData`` message), a
    DataFrame of spans (the columns of :data:`simarch.analysis.spans.SPAN_COLUMNS`) or a
    DataFrame of durations (the columns of a CSV of durations). ``service`` keeps that service
    only (for a CSV without a service column: the name of its service). ``operations`` is
    ``"span"`` (an operation is a span's name; in simarch's own traces, the request class) or
    ``"entry"`` (the name of the visit the trace started with: the request's class as a
    simarch spec sees it, so the fragment's per-class keys are valid class names). Groups
    with fewer than ``min_samples`` samples are reported, not fitted; empirical distributions
    keep ``empirical_points`` quantiles.

    How each family is fitted and how the proposal is chosen: see the module docstring of
    :mod:`simarch.analysis.fit`. Raises :class:`~simarch.errors.SpecError` naming the file
    and what is wrong with it (an empty file, malformed JSON, a missing column, a duration
    that is not > 0).
    """
    if operations not in ("span", "entry"):
        raise SpecError(f"must be 'span' or 'entry', got {excerpt(operations)}", ("operations",))
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
        raise SpecError(f"must be a whole number >= 2, got {excerpt(min_samples)}", ("min_samples",))
    if isinstance(empirical_points, bool) or not isinstance(empirical_points, int) or \
            not 2 <= empirical_points <= 10_000:
        raise SpecError(f"must be a whole number from 2 to 10,000, got {excerpt(empirical_points)}",
                        ("empirical_points",))
    spans = durations = None
    if isinstance(data, str | Path):
        path = Path(data)
        source = str(data)
        kind = _detect(path, format)
        if kind == "csv":
            durations = read_durations_csv(path, service=service, source=source)
        else:
            spans = read_otlp(path, source=source)
    elif isinstance(data, pd.DataFrame):
        source = "DataFrame"
        if {"trace_id", "span_id", "start_ns", "end_ns"} <= set(data.columns):
            spans = data
        else:
            durations = durations_from_frame(data, service=service, source=source)
    elif _is_message(data):
        from google.protobuf import json_format

        source = type(data).__name__
        spans = spans_from_otlp(json_format.MessageToDict(data), source=source)
    elif isinstance(data, Mapping | list | tuple):
        source = "OTLP/JSON"
        spans = spans_from_otlp(list(data) if isinstance(data, tuple) else data, source=source)
    else:
        raise SpecError(f"expected a file path, a DataFrame or OTLP/JSON spans, got "
                        f"{type(data).__name__}", ("data",))
    if spans is not None:
        return _fit_spans(spans, source, service, operations, min_samples, empirical_points)
    assert durations is not None
    return _fit_durations(durations, source, service, min_samples, empirical_points)


def _fit_spans(spans: pd.DataFrame, source: str, service: str | None, operations: str,
               min_samples: int, empirical_points: int) -> Fit:
    visits, calls, notes = analyse_spans(spans)
    graph = call_graph(visits, calls, operations=operations)
    op_col = "operation" if operations == "span" else "entry_operation"
    errors = visits["status"] == STATUS_ERROR
    if errors.any():
        notes.append(f"{int(errors.sum())} visit(s) with an error status are left out of the "
                     "service times (they are in the call graph)")
    samples = visits[~errors]
    if service is not None:
        _check_service(service, visits["service"], source)
        keep = {service} | set(graph.predecessors(service)) | set(graph.successors(service)) \
            if graph.has_node(service) else {service}
        graph = graph.subgraph(keep).copy()
        graph.remove_edges_from([(u, v) for u, v in list(graph.edges) if service not in (u, v)])
        samples = samples[samples["service"] == service]
    self_calls = calls[calls["service"] == calls["parent_service"]]
    if len(self_calls):
        notes.append(f"{len(self_calls)} call(s) of a service to itself are left out of the call "
                     "graph (simarch has no self-calls)")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(u for u, _ in nx.find_cycle(graph))
        notes.append(f"the calls form a cycle ({cycle}): a simarch spec has none; remove a call "
                     "from the fragment")
    client_only = [n for n, d in graph.nodes(data=True) if d.get("observed") == "client"]
    if client_only:
        notes.append(f"{', '.join(client_only)}: seen only from the callers' client spans, so "
                     "their service times include the network")
    order = _graph_order(graph, list(dict.fromkeys(samples["service"])))
    groups = {svc: {str(op): g["exclusive_s"].to_numpy(dtype=float)
                    for op, g in samples[samples["service"] == svc].groupby(op_col, sort=True)}
              for svc in order}
    traces = int(visits["trace_id"].nunique()) if len(visits) else 0
    fit_ = _assemble(groups, source, "otlp", graph, min_samples, empirical_points, notes, operations)
    fit_.visits, fit_.calls, fit_.traces = visits, calls, traces
    for svc in graph.nodes:
        p = fit_._service_prop(svc) if svc in fit_.service_times else None
        graph.nodes[svc]["service_time"] = p.chosen.describe() if p is not None and p.chosen else ""
    return fit_


def _fit_durations(durations: pd.DataFrame, source: str, service: str | None, min_samples: int,
                   empirical_points: int) -> Fit:
    if service is not None:
        _check_service(service, durations["service"], source)
        durations = durations[durations["service"] == service]
    groups = {str(svc): {str(op): g["duration_s"].to_numpy(dtype=float)
                         for op, g in frame.groupby("operation", sort=True)}
              for svc, frame in durations.groupby("service", sort=False)}
    graph = nx.DiGraph()
    graph.add_nodes_from(groups)
    return _assemble(groups, source, "csv", graph, min_samples, empirical_points, [], "span")


def _check_service(service: str, present: pd.Series, source: str) -> None:
    names = list(dict.fromkeys(present))
    if service not in names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise SpecError(f"no service {excerpt(service)} in the data; its services: {shown}", (), source)


def _graph_order(graph: nx.DiGraph, services: list[str]) -> list[str]:
    if nx.is_directed_acyclic_graph(graph):
        topo = [n for n in nx.topological_sort(graph) if n in services]
        return topo + [s for s in services if s not in topo]
    return services


def _assemble(groups: dict[str, dict[str, np.ndarray]], source: str, fmt: str, graph: nx.DiGraph,
              min_samples: int, empirical_points: int, notes: list[str], operations: str) -> Fit:
    proposals: dict[tuple[str, str], Proposal] = {}
    service_times: dict[str, Any] = {}
    for svc, ops in groups.items():
        per_op = {op: _propose(svc, op, x, min_samples, empirical_points) for op, x in ops.items()}
        proposals.update({(svc, op): p for op, p in per_op.items()})
        if len(ops) == 1:
            (only,) = per_op.values()
            if only.fitted:
                service_times[svc] = only.spec
            continue
        pooled_x = np.concatenate(list(ops.values()))
        pooled = _propose(svc, ALL, pooled_x, min_samples, empirical_points)
        proposals[(svc, ALL)] = pooled
        fitted = [op for op, p in per_op.items() if p.fitted]
        if len(fitted) >= 2 and _operations_differ(ops, fitted):
            st = {_key(op): per_op[op].spec for op in fitted}
            if pooled.fitted:
                st["default"] = pooled.spec
            service_times[svc] = st
        elif pooled.fitted:
            service_times[svc] = pooled.spec
    names = _names(list(service_times) + [n for n in graph.nodes if n not in service_times])
    table = _table(proposals)
    samples = int(sum(x.size for ops in groups.values() for x in ops.values()))
    return Fit(source, fmt, table, proposals, service_times, graph, notes=notes,
               operations=operations, names=names, samples=samples)


def _operations_differ(ops: Mapping[str, np.ndarray], fitted: list[str]) -> bool:
    for op in fitted:
        rest = np.concatenate([x for o, x in ops.items() if o != op])
        if rest.size and stats.ks_2samp(ops[op], rest).pvalue < SPLIT_ALPHA:
            return True
    return False


def _names(services: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for svc in services:
        base = svc if NAME_RE.match(svc) else _key(svc)
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out[svc] = name
    return out


def _table(proposals: Mapping[tuple[str, str], Proposal]) -> pd.DataFrame:
    rows = []
    for (svc, op), p in proposals.items():
        if not p.candidates:
            rows.append({"service": svc, "operation": op, "n": p.n, "candidate": "", "params": {},
                         "se": {}, "chosen": False, "note": p.reason})
            continue
        aics = [c.aic for c in p.candidates if math.isfinite(c.aic)]
        low = min(aics) if aics else math.nan
        for c in p.candidates:
            rows.append({"service": svc, "operation": op, "n": p.n, "candidate": c.family,
                         "params": dict(c.params), "se": dict(c.se), "loglik": c.loglik,
                         "aic": c.aic, "delta_aic": c.aic - low, "ks": c.ks, "ks_p": c.ks_p,
                         "err_p50": c.errors.get(0.5), "err_p99": c.errors.get(0.99),
                         "err_p999": c.errors.get(0.999), "chosen": c is p.chosen,
                         "note": p.reason if c is p.chosen else c.note})
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    for col in ("loglik", "aic", "delta_aic", "ks", "ks_p", "err_p50", "err_p99", "err_p999"):
        table[col] = table[col].astype(float)
    table["n"] = table["n"].astype(int)
    table["chosen"] = table["chosen"].astype(bool)
    return table
