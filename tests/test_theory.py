"""Statistical validation of the engine against exact queueing-theory results.

Method
------
Every case is simulated as R independent replications (distinct seeds, so independent random
streams), each started empty and run for a warm-up that is discarded and then a measured
window. From each replication we take one estimate (a mean, a percentile, a fraction, a
utilisation); the estimates are i.i.d., so the standard error of their average is

    SE = std(estimates, ddof=1) / sqrt(R).

This is honest about the autocorrelation of latencies inside a run: that correlation only
inflates the spread between replications, which the SE above measures directly. Each check
passes when |mean - theory| <= 4 SE. With R = 30 the statistic (mean - theory) / SE is
t-distributed with 29 degrees of freedom, so a correct engine fails one given check with
probability ~4e-4. The seeds are fixed, so results are reproducible.

To make sure a check is not vacuous (a large SE would let anything pass), every check also
requires the 4 SE tolerance to be smaller than a stated fraction of the theoretical value.

Utilisations are kept at rho = 0.5-0.65 so that the relaxation time of each queue (about
1 / (mu (1 - sqrt(rho))^2) ~ 20 s for the single-server cases below) is far below the warm-up
(200-500 s) and the measured window (>= 5,000 s).

Every result produced here also goes through :func:`assert_littles_law`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

import simarch
from simarch.model.status import Status

pytestmark = pytest.mark.slow  # long statistical runs against queueing theory

K_SE = 4.0  # tolerance in standard errors

# ----------------------------------------------------------------------------- theory


def erlang_b(c: int, a: float) -> float:
    """Erlang B: blocking probability of M/G/c/c with offered load a = lambda E[S]."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability that an arrival waits in M/M/c (a = lambda / mu < c)."""
    rho = a / c
    assert rho < 1
    b = erlang_b(c, a)
    return b / (1.0 - rho * (1.0 - b))


def mmc_wait(lam: float, mu: float, c: int) -> float:
    """Mean waiting time in queue of M/M/c: C(c, a) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_response_ccdf(t: float, lam: float, mu: float, c: int) -> float:
    """P(R > t) in M/M/c (FIFO). R = W_q + S with S ~ Exp(mu) independent of W_q, and
    W_q = 0 with probability 1 - C, else Exp(theta) with theta = c mu - lambda."""
    pw = erlang_c(c, lam / mu)
    theta = c * mu - lam
    if math.isclose(theta, mu):
        conv = (1.0 + mu * t) * math.exp(-mu * t)
    else:
        conv = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1.0 - pw) * math.exp(-mu * t) + pw * conv


def pk_wait(lam: float, m1: float, m2: float) -> float:
    """Pollaczek-Khinchine mean wait of M/G/1: lambda E[S^2] / (2 (1 - rho))."""
    rho = lam * m1
    assert rho < 1
    return lam * m2 / (2.0 * (1.0 - rho))


def mm1_response_quantile(lam: float, mu: float, q: float) -> float:
    """M/M/1 (FIFO) response time is Exp(mu - lambda): its q-quantile."""
    return -math.log1p(-q) / (mu - lam)


def hypoexp_ccdf(t: float, rates: Sequence[float]) -> float:
    """P(X_1 + ... + X_n > t) for independent X_i ~ Exp(rates[i]), distinct rates."""
    total = 0.0
    for i, ri in enumerate(rates):
        coef = 1.0
        for j, rj in enumerate(rates):
            if j != i:
                coef *= rj / (rj - ri)
        total += coef * math.exp(-ri * t)
    return total


def hypoexp_quantile(q: float, rates: Sequence[float]) -> float:
    lo, hi = 0.0, 1.0
    while hypoexp_ccdf(hi, rates) > 1.0 - q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hypoexp_ccdf(mid, rates) > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def second_moment(mean: float, cv: float) -> float:
    """E[S^2] = Var + mean^2 = mean^2 (1 + cv^2)."""
    return mean * mean * (1.0 + cv * cv)


# ----------------------------------------------------------------------------- checks


LITTLE_REL_TOL = 0.02


def assert_littles_law(result: simarch.Result) -> None:
    """L (time-average number in the system over the window) against lambda W, within 2% of L.

    Little's law is a sample-path identity; over a finite window [w, e) of length T only the
    requests straddling a boundary break it. Writing A for the arrivals in the window, F for
    those that finished, U = A \\ F (``in_flight``), P for the requests present at w that
    arrived before it, and a_i, R_i for arrival time and latency:

        T L        = sum_F R_i + sum_U (e - a_i) + sum_P (time spent inside the window)
        T lambda W = |A| / |F| * sum_F R_i = sum_F R_i + |U| W

    so T (L - lambda W) = sum_U (e - a_i) + sum_P (...) - |U| W: two edge terms and a known
    correction. In steady state each edge term has mean lambda E[R^2] / 2 (the time average of
    the total residual, resp. elapsed, time of the requests in the system; renewal-reward), so
    the expected relative error is of order lambda E[R^2] / (T L) = E[R^2] / (T W).

    The edge terms are heavy-tailed, though: a congestion episode straddling w leaves many
    requests with long residual times (in a 120-replication trial of the lognormal M/G/1 case
    the worst run had sum_P = 466 request-seconds, 32 times lambda E[R^2], i.e. 0.55% of T L).
    A bound built from the observed maximum latency is therefore not reliable, and we use a
    relative tolerance of 2%, with the precondition that the expected edge effect
    lambda E[R^2] / T (E[R^2] estimated by the sample second moment) is below a tenth of it.
    Every run of this file satisfies it with room (lambda E[R^2] / (T L) = 0.01-0.08%, the
    observed |L - lambda W| / L <= 0.3%), so the tolerance is >= 25 times the mean edge effect
    and ~4 times the worst one seen in the trial above.
    """
    ll = result.littles_law()
    T = result.duration
    lat = result.latency
    L, lw = ll["L"], ll["lambda_W"]
    tol = LITTLE_REL_TOL * L
    edge = ll["lambda"] * float(np.mean(lat * lat)) / T
    assert edge <= 0.1 * tol, (
        f"run too short for a {LITTLE_REL_TOL:.0%} Little's law check: expected edge effect "
        f"{edge:.3g} vs tolerance {tol:.3g}")
    assert abs(L - lw) <= tol, (
        f"Little's law violated: L={L:.6g}, lambda*W={lw:.6g}, |diff|={abs(L - lw):.3g} > "
        f"tol={tol:.3g} (T={T:g}s, in_flight={int(result.summary().loc['all', 'in_flight'])})")


@dataclass
class Check:
    mean: float
    se: float
    theory: float
    n: int

    @property
    def z(self) -> float:
        return (self.mean - self.theory) / self.se


def check(label: str, estimates: Sequence[float], theory: float, max_rel_tol: float) -> Check:
    """Per-replication ``estimates`` average to ``theory`` within K_SE standard errors, and
    K_SE * SE is below ``max_rel_tol`` * |theory| (the check is sharp enough to matter)."""
    x = np.asarray(estimates, dtype=float)
    assert np.all(np.isfinite(x)), f"{label}: non-finite estimates {x}"
    r = len(x)
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(r))
    c = Check(mean, se, theory, r)
    print(f"{label:<48} sim={mean:.6g} theory={theory:.6g} SE={se:.3g} "
          f"tol={K_SE * se:.3g} z={c.z:+.2f} (R={r})")
    assert se > 0, f"{label}: zero spread between replications ({x})"
    assert K_SE * se <= max_rel_tol * abs(theory), (
        f"{label}: 4 SE = {K_SE * se:.3g} exceeds {max_rel_tol:.0%} of theory {theory:.4g}; "
        "more replications are needed for a meaningful check")
    assert abs(mean - theory) <= K_SE * se, (
        f"{label}: simulated {mean:.6g} vs theory {theory:.6g}: difference "
        f"{mean - theory:+.4g} = {c.z:+.2f} SE (SE {se:.3g}, R={r})")
    return c


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    build: Callable[[], simarch.Architecture]
    reps: int
    duration: float  # measured window, seconds
    warmup: float
    seed: int  # replication i uses seed + i


def _exp(mean: float) -> dict:
    return {"exponential": f"{mean}s"}


def _gamma(mean: float, cv: float) -> dict:
    return {"gamma": {"mean": f"{mean}s", "cv": cv}}


def _lognormal(mean: float, cv: float) -> dict:
    return {"lognormal": {"mean": f"{mean}s", "cv": cv}}


def _station(name: str, rate: float, service: dict, workers: int = 1, **kw) -> simarch.Architecture:
    return (simarch.Architecture(name, workload={"rate": rate})
            .add("s", kind="service", workers=workers, service_time=service, **kw))


# M/M/1: lambda = 0.6/s, E[S] = 1 s, rho = 0.6, W = 2.5 s. 30 x 30,000 s -> ~540k requests.
MM1_LAM, MM1_MU = 0.6, 1.0
# M/M/4: lambda = 2.6/s, E[S] = 1 s, rho = 0.65. 30 x 8,000 s -> ~624k requests.
MMC_LAM, MMC_MU, MMC_C = 2.6, 1.0, 4
# M/D/1: lambda = 0.6/s, S = 1 s. 30 x 20,000 s -> ~360k requests.
MD1_LAM, MD1_S = 0.6, 1.0
# M/G/1 gamma, cv 0.5: lambda = 0.65/s, E[S] = 1 s, rho = 0.65. 30 x 30,000 s -> ~585k.
GAM_LAM, GAM_S, GAM_CV = 0.65, 1.0, 0.5
# M/G/1 lognormal, cv 1.5 (E[S^2] = 3.25 E[S]^2, heavier tail): rho = 0.5, longer runs.
# 30 x 60,000 s -> ~900k requests.
LN_LAM, LN_S, LN_CV = 0.5, 1.0, 1.5
# Tandem of three M/M/1 stations, lambda = 0.5/s, E[S] = 1, 1.25, 0.8 s (rho 0.5, 0.625,
# 0.4). 30 x 25,000 s -> ~375k requests, 1.1M station visits.
TAN_LAM, TAN_S = 0.5, (1.0, 1.25, 0.8)
# Erlang loss M/M/4/4 and M/G/4/4 (lognormal cv 1.5: blocking is insensitive to the service
# distribution beyond its mean): lambda = 3/s, E[S] = 1 s, a = 3. 30 x 5,000 s -> 450k each.
LOSS_LAM, LOSS_S, LOSS_C, LOSS_CV = 3.0, 1.0, 4, 1.5
# Synchronous call: front (c = 12 workers, E[S] = 1 s exp) holds its worker while it calls a
# back M/M/1 (E[S] = 0.5 s); lambda = 1/s. 30 x 10,000 s -> 300k requests, 600k visits.
CALL_LAM, CALL_SF, CALL_SB, CALL_C = 1.0, 1.0, 0.5, 12


def _tandem() -> simarch.Architecture:
    a = simarch.Architecture("tandem", workload={"rate": TAN_LAM})
    names = [f"st{i}" for i in range(len(TAN_S))]
    for name, s in zip(names, TAN_S, strict=True):
        a.add(name, kind="service", workers=1, service_time=_exp(s))
    for src, dst in zip(names, names[1:], strict=False):
        a.call(src, dst, mode="forward")
    return a


def _sync_call() -> simarch.Architecture:
    return (simarch.Architecture("sync", workload={"rate": CALL_LAM})
            .add("front", kind="service", workers=CALL_C, service_time=_exp(CALL_SF))
            .add("back", kind="service", workers=1, service_time=_exp(CALL_SB))
            .call("front", "back"))


CASES: dict[str, Case] = {
    "mm1": Case(lambda: _station("mm1", MM1_LAM, _exp(1 / MM1_MU)), 30, 30_000, 500, 1_000),
    "mmc": Case(lambda: _station("mmc", MMC_LAM, _exp(1 / MMC_MU), MMC_C), 30, 8_000, 500, 2_000),
    "md1": Case(lambda: _station("md1", MD1_LAM, {"constant": f"{MD1_S}s"}), 30, 20_000, 500, 3_000),
    "mg1_gamma": Case(lambda: _station("gamma", GAM_LAM, _gamma(GAM_S, GAM_CV)),
                      30, 30_000, 500, 4_000),
    "mg1_lognormal": Case(lambda: _station("lognormal", LN_LAM, _lognormal(LN_S, LN_CV)),
                          30, 60_000, 500, 5_000),
    "tandem": Case(_tandem, 30, 25_000, 500, 6_000),
    "loss_exp": Case(lambda: _station("loss", LOSS_LAM, _exp(LOSS_S), LOSS_C, queue=0),
                     30, 5_000, 200, 7_000),
    "loss_lognormal": Case(lambda: _station("loss-ln", LOSS_LAM, _lognormal(LOSS_S, LOSS_CV),
                                            LOSS_C, queue=0),
                           30, 5_000, 200, 8_000),
    "sync_call": Case(_sync_call, 30, 10_000, 500, 9_000),
}


@functools.cache
def runs(name: str) -> tuple[simarch.Result, ...]:
    """The replications of one case, simulated once per test session; each one is checked
    against Little's law as it is produced."""
    case = CASES[name]
    arch = case.build()
    out = []
    for i in range(case.reps):
        res = simarch.simulate(arch, duration=case.duration, warmup=case.warmup, seed=case.seed + i)
        assert_littles_law(res)
        out.append(res)
    return tuple(out)


def per_rep(name: str, f: Callable[[simarch.Result], float]) -> list[float]:
    return [f(r) for r in runs(name)]


def summ(r: simarch.Result, col: str) -> float:
    return float(r.summary().loc["all", col])


def comp(r: simarch.Result, component: str, col: str) -> float:
    return float(r.components().loc[component, col])


# ----------------------------------------------------------------------------- 1. M/M/1


def test_mm1_mean_response():
    """M/M/1, rho = 0.6: E[R] = 1 / (mu - lambda) = 2.5 s. R = 30 reps of ~18k requests; SE
    from the spread of the per-rep means; tolerance 4 SE (required < 3% of theory)."""
    theory = 1.0 / (MM1_MU - MM1_LAM)
    check("M/M/1 mean response (s)", per_rep("mm1", lambda r: summ(r, "mean_ms") / 1e3),
          theory, 0.03)
    assert all(np.all(r.status == Status.OK) for r in runs("mm1"))


@pytest.mark.parametrize("col,q,max_rel", [("p50_ms", 0.50, 0.03), ("p90_ms", 0.90, 0.04),
                                           ("p99_ms", 0.99, 0.06)])
def test_mm1_response_percentiles(col, q, max_rel):
    """M/M/1 response time ~ Exp(mu - lambda): the q-quantile is -ln(1 - q) / (mu - lambda).
    Estimate: each replication's sample percentile (``summary()``); R = 30, SE from the spread
    of the per-rep percentiles (which includes the within-run autocorrelation); 4 SE
    (required < 3-6% of theory)."""
    theory = mm1_response_quantile(MM1_LAM, MM1_MU, q)
    check(f"M/M/1 {col[:-3]} response (s)", per_rep("mm1", lambda r: summ(r, col) / 1e3),
          theory, max_rel)


@pytest.mark.parametrize("t", [0.5, 2.5, 7.5])
def test_mm1_response_cdf(t):
    """Empirical CDF of the M/M/1 response at a few points against 1 - exp(-(mu - lambda) t).
    Per-rep fraction of requests with R <= t; R = 30; SE from the spread between reps
    (a binomial SE would ignore the correlation of successive requests); 4 SE (< 3%)."""
    theory = 1.0 - math.exp(-(MM1_MU - MM1_LAM) * t)
    check(f"M/M/1 P(R <= {t}s)", per_rep("mm1", lambda r: float(np.mean(r.latency <= t))),
          theory, 0.03)


# ----------------------------------------------------------------------------- 2. M/M/c


def test_mmc_erlang_c_wait():
    """M/M/4, rho = 0.65: W_q = C(c, a) / (c mu - lambda) from the component's
    ``mean_wait_ms`` (time-weighted queue area / completions, i.e. Little's law on the wait
    room). R = 30 reps of ~20.8k requests; SE from reps; 4 SE (< 8% of theory)."""
    theory = mmc_wait(MMC_LAM, MMC_MU, MMC_C)
    check("M/M/4 mean wait W_q (s)", per_rep("mmc", lambda r: comp(r, "s", "mean_wait_ms") / 1e3),
          theory, 0.08)


def test_mmc_probability_of_waiting():
    """P(wait > 0) = Erlang C. In M/M/c, W_q given W_q > 0 is Exp(c mu - lambda), so
    P(wait > 0) = W_q (c mu - lambda) = (E[R] - 1/mu)(c mu - lambda), estimated per rep from
    the end-to-end mean latency. R = 30; SE from reps; 4 SE (< 8% of theory)."""
    theory = erlang_c(MMC_C, MMC_LAM / MMC_MU)
    theta = MMC_C * MMC_MU - MMC_LAM
    check("M/M/4 P(wait > 0) via mean response",
          per_rep("mmc", lambda r: (float(r.latency.mean()) - 1.0 / MMC_MU) * theta), theory, 0.08)


def test_mmc_mean_response():
    """M/M/4: E[R] = W_q + 1/mu. R = 30; SE from reps; 4 SE (< 2% of theory)."""
    theory = mmc_wait(MMC_LAM, MMC_MU, MMC_C) + 1.0 / MMC_MU
    check("M/M/4 mean response (s)", per_rep("mmc", lambda r: summ(r, "mean_ms") / 1e3),
          theory, 0.02)


@pytest.mark.parametrize("t", [1.0, 3.0, 6.0])
def test_mmc_response_tail(t):
    """M/M/4 response-time tail P(R > t) = (1 - C) e^{-mu t} + C P(S + X > t), X ~ Exp(c mu -
    lambda), which depends on P(wait > 0) separately from the mean. Per-rep fraction of
    requests with R > t; R = 30; SE from reps; 4 SE (< 15%: P(R > 6 s) is only ~0.45%)."""
    theory = mmc_response_ccdf(t, MMC_LAM, MMC_MU, MMC_C)
    check(f"M/M/4 P(R > {t}s)", per_rep("mmc", lambda r: float(np.mean(r.latency > t))),
          theory, 0.15)


# ----------------------------------------------------------------------------- 3. M/G/1


MG1 = {
    # case: (lambda, E[S], E[S^2], max relative tolerance)
    "md1": (MD1_LAM, MD1_S, second_moment(MD1_S, 0.0), 0.04),
    "mg1_gamma": (GAM_LAM, GAM_S, second_moment(GAM_S, GAM_CV), 0.06),
    "mg1_lognormal": (LN_LAM, LN_S, second_moment(LN_S, LN_CV), 0.08),
}


@pytest.mark.parametrize("name", list(MG1))
def test_mg1_pollaczek_khinchine_wait(name):
    """M/G/1 mean wait W_q = lambda E[S^2] / (2 (1 - rho)), from ``mean_wait_ms``.
    M/D/1 (rho 0.6), gamma cv 0.5 (rho 0.65), lognormal cv 1.5 (rho 0.5). R = 30 reps
    (12-30k requests each); SE from reps; 4 SE (required < 4%, 6%, 8% of theory)."""
    lam, m1, m2, max_rel = MG1[name]
    theory = pk_wait(lam, m1, m2)
    check(f"{name} W_q (s)", per_rep(name, lambda r: comp(r, "s", "mean_wait_ms") / 1e3),
          theory, max_rel)


@pytest.mark.parametrize("name", list(MG1))
def test_mg1_mean_response(name):
    """M/G/1 end-to-end mean response E[R] = W_q + E[S]. R = 30; SE from reps; 4 SE."""
    lam, m1, m2, max_rel = MG1[name]
    theory = pk_wait(lam, m1, m2) + m1
    check(f"{name} mean response (s)", per_rep(name, lambda r: summ(r, "mean_ms") / 1e3),
          theory, max_rel)


# ----------------------------------------------------------------------------- 4. tandem


def test_tandem_mean_response():
    """Jackson tandem of three M/M/1 (mode="forward"): E[R] = sum_i 1 / (mu_i - lambda).
    R = 30 reps of ~12.5k requests; SE from reps; 4 SE (< 3% of theory)."""
    theory = sum(1.0 / (1.0 / s - TAN_LAM) for s in TAN_S)
    check("tandem mean end-to-end response (s)",
          per_rep("tandem", lambda r: summ(r, "mean_ms") / 1e3), theory, 0.03)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_tandem_response_quantiles(q):
    """In a tandem of M/M/1 queues the sojourn times of one customer at the stations are
    independent exponentials (Reich), so the end-to-end response is hypoexponential with
    rates mu_i - lambda. Per-rep sample quantile; R = 30; SE from reps; 4 SE (< 6%)."""
    rates = [1.0 / s - TAN_LAM for s in TAN_S]
    theory = hypoexp_quantile(q, rates)
    check(f"tandem p{round(q * 100)} end-to-end (s)",
          per_rep("tandem", lambda r: float(np.percentile(r.latency, 100 * q))), theory, 0.06)


@pytest.mark.parametrize("i", range(len(TAN_S)))
def test_tandem_station(i):
    """Each tandem station is an M/M/1 with Poisson(lambda) input (Burke): utilisation
    lambda / mu_i, residence time 1 / (mu_i - lambda) (component ``mean_latency_ms``) and
    mean queue L_q = rho^2 / (1 - rho). R = 30; SE from reps; 4 SE."""
    name = f"st{i}"
    s = TAN_S[i]
    rho = TAN_LAM * s
    check(f"tandem {name} utilization", per_rep("tandem", lambda r: comp(r, name, "utilization")),
          rho, 0.02)
    check(f"tandem {name} residence (s)",
          per_rep("tandem", lambda r: comp(r, name, "mean_latency_ms") / 1e3),
          1.0 / (1.0 / s - TAN_LAM), 0.04)
    check(f"tandem {name} mean_queue", per_rep("tandem", lambda r: comp(r, name, "mean_queue")),
          rho * rho / (1.0 - rho), 0.08)


# ----------------------------------------------------------------------------- 5. Erlang B


@pytest.mark.parametrize("name", ["loss_exp", "loss_lognormal"])
def test_erlang_b_blocking(name):
    """M/G/c/c (workers = 4, queue = 0), a = 3: P(rejected) = Erlang B(4, 3) for exponential
    and, by insensitivity, lognormal cv 1.5 service. Per-rep fraction of status == 1
    (and 1 - availability); R = 30 reps of ~15k requests; SE from reps; 4 SE (< 4%)."""
    theory = erlang_b(LOSS_C, LOSS_LAM * LOSS_S)
    check(f"{name} P(rejected)", per_rep(name, lambda r: float(np.mean(r.status == Status.REJECTED))),
          theory, 0.04)
    for r in runs(name):
        s = r.summary().loc["all"]
        assert s["rejected"] == int(np.sum(r.status == Status.REJECTED))
        assert math.isclose(1.0 - s["availability"], float(np.mean(r.status == Status.REJECTED)), abs_tol=1e-12)
        assert comp(r, "s", "mean_queue") == 0.0
    check(f"{name} utilization", per_rep(name, lambda r: comp(r, "s", "utilization")),
          LOSS_LAM * LOSS_S * (1.0 - theory) / LOSS_C, 0.02)


# ----------------------------------------------------------------------------- 6. utilisation


# case: (component workers c, lambda, E[S], W_q theory)
UTIL = {
    "mm1": (1, MM1_LAM, 1 / MM1_MU, MM1_LAM / (MM1_MU * (MM1_MU - MM1_LAM))),
    "mmc": (MMC_C, MMC_LAM, 1 / MMC_MU, mmc_wait(MMC_LAM, MMC_MU, MMC_C)),
    "md1": (1, MD1_LAM, MD1_S, pk_wait(MD1_LAM, MD1_S, second_moment(MD1_S, 0.0))),
    "mg1_gamma": (1, GAM_LAM, GAM_S, pk_wait(GAM_LAM, GAM_S, second_moment(GAM_S, GAM_CV))),
    "mg1_lognormal": (1, LN_LAM, LN_S, pk_wait(LN_LAM, LN_S, second_moment(LN_S, LN_CV))),
}


@pytest.mark.parametrize("name", list(UTIL))
def test_utilization_and_queue_length(name):
    """``utilization`` = lambda E[S] / c and time-weighted ``mean_queue`` = L_q = lambda W_q
    (also ``mean_busy`` = lambda E[S]). R = 30 reps; SE from reps; 4 SE."""
    c, lam, es, wq = UTIL[name]
    check(f"{name} utilization", per_rep(name, lambda r: comp(r, "s", "utilization")),
          lam * es / c, 0.02)
    check(f"{name} mean_busy", per_rep(name, lambda r: comp(r, "s", "mean_busy")), lam * es, 0.02)
    check(f"{name} mean_queue L_q", per_rep(name, lambda r: comp(r, "s", "mean_queue")),
          lam * wq, 0.10)


# ----------------------------------------------------------------------------- 7. sync call


def _busy_tail(c: int) -> float:
    """P(N >= c) for N = Poisson(lambda E[S_front]) + Geometric(rho_back), the stationary number
    of busy front workers when they never run out (product form of an M/M/inf stage followed
    by an M/M/1 stage)."""
    m = CALL_LAM * CALL_SF
    rho_b = CALL_LAM * CALL_SB
    p_lt = 0.0
    for j in range(c):
        p_pois = math.exp(-m) * m**j / math.factorial(j)
        p_lt += p_pois * (1.0 - rho_b ** (c - j))  # P(Geo < c - j)
    return 1.0 - p_lt


def test_sync_call_holds_front_worker():
    """mode="call": the front holds its worker during the back call, so by Little's law its
    utilisation is lambda (E[S_front] + E[R_back]) / c. With c = 12 the front essentially never
    runs out of workers (P(all busy) < 1e-3, computed below), so the back sees Poisson arrivals
    and is M/M/1: E[R_back] = 1 / (mu_back - lambda). R = 30 reps of ~10k requests; SE from
    reps; 4 SE."""
    assert _busy_tail(CALL_C) < 1e-3
    r_back = 1.0 / (1.0 / CALL_SB - CALL_LAM)
    check("sync front utilization", per_rep("sync_call", lambda r: comp(r, "front", "utilization")),
          CALL_LAM * (CALL_SF + r_back) / CALL_C, 0.03)
    check("sync back utilization", per_rep("sync_call", lambda r: comp(r, "back", "utilization")),
          CALL_LAM * CALL_SB, 0.02)
    check("sync back residence (s)",
          per_rep("sync_call", lambda r: comp(r, "back", "mean_latency_ms") / 1e3), r_back, 0.04)
    check("sync end-to-end mean (s)", per_rep("sync_call", lambda r: summ(r, "mean_ms") / 1e3),
          CALL_SF + r_back, 0.03)


# ----------------------------------------------------------------------------- Little's law


@pytest.mark.parametrize("name", list(CASES))
def test_littles_law_every_run(name):
    """Little's law on each replication of each case (see :func:`assert_littles_law`); the
    check already ran when the results were produced, this makes it visible per case."""
    for r in runs(name):
        assert_littles_law(r)
