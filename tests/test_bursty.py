"""Bursty arrivals (``workload.arrivals``): a Markov-modulated Poisson process (MMPP) and batch
arrivals, checked against theory.

Method (as in ``tests/test_theory.py``): each case is R independent replications (seeds
``seed + i``), each started empty, a warm-up discarded, then a measured window; one estimate
per replication, so ``SE = std(estimates, ddof=1) / sqrt(R)``; a check passes when
``|mean - theory| <= 4 SE``, and 4 SE must be below a stated fraction of the theory (so that
the check is sharp enough to matter).

* MMPP/M/1: the mean response time against the matrix-geometric solution of the
  quasi-birth-death process (:func:`mmpp_m1_mean_response`, written here).
* The MMPP's long-run arrival rate and the index of dispersion of counts in windows of 2 s
  and 20 s against the MMPP's formulas (:func:`idc_window`).
* M^X/M/1 with geometric batches: the mean response time against the closed form
  ``L = rho (E[X^2] / E[X] + 1) / (2 (1 - rho))``, ``W = L / lambda``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.linalg

import simarch
from simarch import SpecError
from simarch.analysis.queueing import analyze
from simarch.model.architecture import load as load_arch
from simarch.model.spec import BatchSizeSpec, MmppSpec, WorkloadSpec
from simarch.run.budget import estimate
from simarch.run.early_stop import _arrivals_to_come
from simarch.run.simulation import Simulation

K_SE = 4.0

# ----------------------------------------------------------------------------- theory


def mmpp_generator(sojourns) -> np.ndarray:
    """Q of the modulating chain: states visited in order, exponential sojourns."""
    k = len(sojourns)
    q = np.zeros((k, k))
    for i, s in enumerate(sojourns):
        q[i, i] = -1.0 / s
        q[i, (i + 1) % k] = 1.0 / s
    return q


def mmpp_m1_mean_response(lams, sojourns, mu: float) -> float:
    """Mean response time of the MMPP/M/1 queue (FIFO) by the matrix-geometric method.

    The number in system and the MMPP's phase form a QBD with blocks A0 = Lambda (an arrival:
    level up), A1 = Q - Lambda - mu I (within a level), A2 = mu I (a departure: level down);
    level 0 has B1 = Q - Lambda. R is the minimal non-negative solution of
    A0 + R A1 + R^2 A2 = 0, found by the iteration R <- -(A0 + R^2 A2) A1^-1 from R = 0;
    pi_n = pi_0 R^n with pi_0 (B1 + R A2) = 0 and pi_0 (I - R)^-1 1 = 1. Then
    L = pi_0 R (I - R)^-2 1 and, by Little's law, W = L / lambda_bar."""
    lam = np.asarray(lams, dtype=float)
    k = len(lam)
    q = mmpp_generator(sojourns)
    big = np.diag(lam)
    eye = np.eye(k)
    a0, a1, a2 = big, q - big - mu * eye, mu * eye
    a1_inv = np.linalg.inv(a1)
    r = np.zeros((k, k))
    for _ in range(1_000_000):
        nxt = -(a0 + r @ r @ a2) @ a1_inv
        if np.max(np.abs(nxt - r)) < 1e-15:
            r = nxt
            break
        r = nxt
    else:  # pragma: no cover
        raise AssertionError("R did not converge")
    inv = np.linalg.inv(eye - r)
    m = np.vstack([(q - big + r @ a2).T, inv @ np.ones(k)])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    pi0 = np.linalg.lstsq(m, rhs, rcond=None)[0]
    n_mean = float(pi0 @ r @ inv @ inv @ np.ones(k))
    pi = np.asarray(sojourns, dtype=float) / sum(sojourns)
    return n_mean / float(pi @ lam)


def idc_window(lams, sojourns, t: float) -> float:
    """Var N(t) / E N(t) of a stationary MMPP's counts in a window of length t:
    1 + 2 / (lambda_bar t) (pi o lambda) (t D - D^2 + D^2 e^{Qt}) lambda, with the deviation
    matrix D = (1 pi - Q)^-1 - 1 pi (from Var N(t) = lambda_bar t + 2 int_0^t (t - u) c(u) du,
    c(u) = (pi o lambda) (e^{Qu} - 1 pi) lambda the covariance of the rate u apart)."""
    lam = np.asarray(lams, dtype=float)
    q = mmpp_generator(sojourns)
    pi = np.asarray(sojourns, dtype=float) / sum(sojourns)
    one_pi = np.outer(np.ones(len(pi)), pi)
    d = np.linalg.inv(one_pi - q) - one_pi
    inner = t * d - d @ d + d @ d @ scipy.linalg.expm(q * t)
    return 1.0 + 2.0 / (float(pi @ lam) * t) * float((pi * lam) @ inner @ lam)


def check(label: str, estimates, theory: float, max_rel_tol: float) -> None:
    x = np.asarray(estimates, dtype=float)
    r = len(x)
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(r))
    z = (mean - theory) / se
    print(f"{label:<44} sim={mean:.6g} theory={theory:.6g} SE={se:.3g} z={z:+.2f} (R={r})")
    assert se > 0
    assert K_SE * se <= max_rel_tol * abs(theory), (
        f"{label}: 4 SE = {K_SE * se:.3g} exceeds {max_rel_tol:.0%} of theory {theory:.4g}")
    assert abs(mean - theory) <= K_SE * se, (
        f"{label}: simulated {mean:.6g} vs theory {theory:.6g}: {z:+.2f} SE (SE {se:.3g}, R={r}; "
        f"tolerance 4 SE)")


# ----------------------------------------------------------------------------- designs

# MMPP/M/1: E[S] = 1 s (mu = 1), state rates 0.4 mu and 1.6 mu with mean sojourns 6 s and 2 s
# (shares 3/4 and 1/4): mean rate 0.7, rho = 0.7; the burst state overloads the server.
MU = 1.0
LAMS = (0.4, 1.6)
SOJOURNS = (6.0, 2.0)
MEAN_RATE = 0.7
MMPP_REPS, MMPP_T, MMPP_WARM = 30, 40_000.0, 200.0  # 30 x 40,000 s -> ~840k requests
# M^X/M/1: geometric batches of mean 3 (E[X^2] = 15), E[S] = 1 s, 0.7 requests/s: rho = 0.7.
BATCH_MEAN, BATCH_RATE = 3.0, 0.7
BATCH_REPS, BATCH_T, BATCH_WARM = 30, 40_000.0, 200.0  # 30 x 40,000 s -> ~840k requests


def mmpp_workload(rate: float = MEAN_RATE, **extra) -> dict:
    states = [{"rate": lam / MEAN_RATE, "mean_sojourn": s} for lam, s in zip(LAMS, SOJOURNS, strict=True)]
    return {"rate": rate, "arrivals": {"mmpp": {"states": states}}, **extra}


def one_station(workload: dict, service: str = "1s") -> simarch.Architecture:
    return (simarch.Architecture("bursty", workload=workload)
            .add("s", kind="service", workers=1, service_time={"exponential": service}))


@functools.cache
def mmpp_runs() -> tuple[simarch.Result, ...]:
    arch = one_station(mmpp_workload())
    return tuple(simarch.simulate(arch, duration=MMPP_T, warmup=MMPP_WARM, seed=12_000 + i, hops=False)
                 for i in range(MMPP_REPS))


@functools.cache
def batch_runs() -> tuple[simarch.Result, ...]:
    arch = one_station({"rate": BATCH_RATE, "arrivals": {"batch": {"size": {"geometric": BATCH_MEAN}}}})
    return tuple(simarch.simulate(arch, duration=BATCH_T, warmup=BATCH_WARM, seed=13_000 + i, hops=False)
                 for i in range(BATCH_REPS))


# ----------------------------------------------------------------------------- the solver itself


def test_qbd_solver_reduces_to_mm1():
    """With equal state rates the MMPP is Poisson: the QBD solver gives M/M/1's 1 / (mu - lambda)."""
    assert mmpp_m1_mean_response([0.7, 0.7], [6.0, 2.0], 1.0) == pytest.approx(1 / 0.3, rel=1e-9)
    # and the asymptotic index of dispersion of the spec matches the two-state closed form
    # 1 + 2 (l1 - l2)^2 r1 r2 / ((r1 + r2)^2 (l1 r2 + l2 r1))
    spec = MmppSpec.model_validate(mmpp_workload()["arrivals"]["mmpp"])
    r1, r2 = 1 / SOJOURNS[0], 1 / SOJOURNS[1]
    (l1, l2) = LAMS
    closed = 1 + 2 * (l1 - l2) ** 2 * r1 * r2 / ((r1 + r2) ** 2 * (l1 * r2 + l2 * r1))
    assert spec.index_of_dispersion(MEAN_RATE) == pytest.approx(closed, rel=1e-9)
    assert idc_window(LAMS, SOJOURNS, 1e4) == pytest.approx(closed, rel=1e-3)


# ----------------------------------------------------------------------------- statistical checks


@pytest.mark.slow
def test_mmpp_m1_mean_response_matrix_geometric():
    """MMPP/M/1 (rates 0.4 and 1.6 x mu, sojourns 6 s and 2 s, rho = 0.7): mean response
    against the matrix-geometric solution, W = 4.948 s (M/M/1 at the same rate: 3.333 s).
    N = 30 replications x 40,000 s (~28k requests each); SE from the replications'
    spread; tolerance 4 SE, required below 5% of theory."""
    theory = mmpp_m1_mean_response(LAMS, SOJOURNS, MU)
    est = [float(r.latency.mean()) for r in mmpp_runs()]
    check("MMPP/M/1 mean response (s)", est, theory, 0.05)
    se = float(np.std(est, ddof=1) / math.sqrt(len(est)))
    assert theory - 1 / (MU - MEAN_RATE) > 10 * se  # a Poisson answer would fail the check


@pytest.mark.slow
def test_mmpp_arrival_rate_and_dispersion():
    """The MMPP's arrivals (same runs, N = 30 x 40,000 s): the long-run rate against 0.7/s
    (4 SE, required < 2%), and the index of dispersion of counts in windows of 2 s and 20 s
    (Var / mean over the window's 20,000 and 2,000 windows, per replication) against
    :func:`idc_window` (1.518 and 2.070; asymptotically 2.157), 4 SE, required < 5% and 10%."""
    rates, idc = [], {2.0: [], 20.0: []}
    for r in mmpp_runs():
        t0, t1 = r.window
        start = r.start_all
        rates.append(len(start) / (t1 - t0))
        for w in idc:
            counts = np.bincount(((start - t0) // w).astype(int), minlength=int((t1 - t0) // w))
            counts = counts[: int((t1 - t0) // w)]
            idc[w].append(counts.var(ddof=1) / counts.mean())
    check("MMPP arrival rate (1/s)", rates, MEAN_RATE, 0.02)
    check("MMPP index of dispersion, 2 s windows", idc[2.0], idc_window(LAMS, SOJOURNS, 2.0), 0.05)
    check("MMPP index of dispersion, 20 s windows", idc[20.0], idc_window(LAMS, SOJOURNS, 20.0), 0.10)


@pytest.mark.slow
def test_batch_poisson_mxm1_mean_response():
    """M^X/M/1, geometric batches of mean 3 (E[X^2] = 15), 0.7 requests/s, E[S] = 1 s:
    L = rho (E[X^2]/E[X] + 1) / (2 (1 - rho)) = 7, W = L / lambda = 10 s (the request rate:
    batches come at 0.7 / 3 per second). N = 30 replications x 40,000 s (~28k requests each);
    SE from the replications; tolerance 4 SE, required below 5% of theory. The request rate
    is checked too (4 SE, < 2%)."""
    x1 = BATCH_MEAN
    p = 1 / x1
    x2 = (2 - p) / p**2
    rho = BATCH_RATE / MU
    theory = rho * (x2 / x1 + 1) / (2 * (1 - rho)) / BATCH_RATE
    runs = batch_runs()
    check("M^X/M/1 mean response (s)", [float(r.latency.mean()) for r in runs], theory, 0.05)
    check("M^X/M/1 request rate (1/s)",
          [len(r.start_all) / (r.window[1] - r.window[0]) for r in runs], BATCH_RATE, 0.02)


# ----------------------------------------------------------------------------- quick checks


def test_same_seed_same_numbers_other_seed_differs():
    arch = one_station(mmpp_workload(arrivals=None) | {"arrivals": {
        "mmpp": mmpp_workload()["arrivals"]["mmpp"], "batch": {"size": {"uniform": [1, 4]}}}})
    a = simarch.simulate(arch, duration=300, warmup=10, seed=7)
    b = simarch.simulate(arch, duration=300, warmup=10, seed=7)
    c = simarch.simulate(arch, duration=300, warmup=10, seed=8)
    assert np.array_equal(a.start, b.start) and np.array_equal(a.end, b.end)
    assert not (len(a.start) == len(c.start) and np.array_equal(a.start, c.start))
    # a batch arrives at one instant: several requests share each arrival time
    assert len(np.unique(a.start_all)) < len(a.start_all)


def test_profile_multiplies_the_mmpp():
    """A step profile to 3x at 10 s multiplies the MMPP's rate: 1,000/s mean before, 3,000/s
    after. The counts' SE from the MMPP's index of dispersion (Var N = I E N at the state
    time scale, windows of 10 s >> the sojourns of 0.1 s and 0.03 s); tolerance 4 SE."""
    states = [{"rate": 0.5, "mean_sojourn": "0.1s"}, {"rate": 3, "mean_sojourn": "0.025s"}]
    wl = {"rate": 1000, "profile": {"step": {"at": "10s", "to": 3}},
          "arrivals": {"mmpp": {"states": states}}}
    arch = (simarch.Architecture("p", workload=wl)
            .add("s", kind="service", workers=1000, service_time="1ms"))
    r = simarch.simulate(arch, duration=20, warmup=0, seed=3, hops=False)
    start = r.start_all
    spec = MmppSpec.model_validate(wl["arrivals"]["mmpp"])
    for lo, hi, rate in ((0.0, 10.0, 1000.0), (10.0, 20.0, 3000.0)):
        n = np.count_nonzero((start >= lo) & (start < hi))
        mean = rate * (hi - lo)
        se = math.sqrt(spec.index_of_dispersion(rate) * mean)
        assert abs(n - mean) <= K_SE * se, f"{n} arrivals in [{lo}, {hi}) vs {mean} (SE {se:.3g})"


def test_batch_size_moments():
    rng = np.random.default_rng(1)
    for body, mean, m2 in (({"geometric": 4}, 4.0, 28.0), (3, 3.0, 9.0),
                           ({"uniform": [1, 5]}, 3.0, 11.0),
                           ({"values": [1, 10], "weights": [3, 1]}, 3.25, 25.75)):
        size = BatchSizeSpec.model_validate(body)
        assert size.mean == pytest.approx(mean) and size.second_moment == pytest.approx(m2)
        x = size.draw(rng, 200_000)
        assert x.min() >= 1 and abs(x.mean() - mean) <= 5 * math.sqrt((m2 - mean**2) / x.size) + 1e-12


def test_index_of_dispersion_of_batches_and_load():
    wl = WorkloadSpec.model_validate({"rate": 10, "arrivals": {"batch": {"size": {"geometric": 4}}}})
    assert wl.index_of_dispersion() == pytest.approx(28 / 4)  # compound Poisson: E[X^2] / E[X]
    wl = WorkloadSpec.model_validate(mmpp_workload())
    i1, i10 = wl.index_of_dispersion(1.0), wl.index_of_dispersion(10.0)
    assert i10 - 1 == pytest.approx(10 * (i1 - 1))  # the MMPP's excess grows with the rate
    assert WorkloadSpec.model_validate({"rate": 5}).index_of_dispersion() == 1.0


def test_queueing_model_uses_the_dispersion():
    """The queueing model takes the index of dispersion as the arrival SCV: for one M/M/1-like
    pool that is Kingman's wait rho / (1 - rho) (I + 1) / 2 E[S]; and it says so."""
    rep = analyze(one_station({"rate": 0.7, "arrivals": {"batch": {"size": {"geometric": 3}}}}))
    wait = rep.table.loc["s", "mean_wait_ms"] / 1e3
    assert wait == pytest.approx(0.7 / 0.3 * (5 + 1) / 2, rel=1e-6)
    assert any("bursty arrivals" in w for w in rep.warnings)
    plain = analyze(one_station({"rate": 0.7}))
    assert not any("bursty" in w for w in plain.warnings)
    # round robin over two instances halves the excess: SCV 1/2 + (I - 1) / 2 = I / 2
    rr = analyze(simarch.Architecture("rr", workload={"rate": 1.4, "arrivals": {"batch": {"size": {"geometric": 3}}}})
                 .add("s", kind="service", instances=2, workers=1, service_time={"exponential": "1s"}))
    assert rr.table.loc["s", "mean_wait_ms"] / 1e3 == pytest.approx(0.7 / 0.3 * (5 / 2 + 1) / 2, rel=1e-6)


def test_work_estimate_counts_the_switches():
    base = one_station({"rate": 10})
    bursty = one_station(mmpp_workload(rate=10))
    w0, w1 = estimate(base, 1.0, 1000, 0), estimate(bursty, 1.0, 1000, 0)
    assert w1.requests == w0.requests  # the same long-run mean rate
    assert w1.events - w0.events == pytest.approx(1000 * 2 / 8.0)  # two switches per 8 s cycle


@pytest.mark.parametrize("workload,match", [
    (mmpp_workload() | {"arrivals": {"mmpp": {"states": [{"rate": "0.5x", "mean_sojourn": "10s"},
                                                         {"rate": "3x", "mean_sojourn": "2s"}]}}},
     r"workload\.arrivals\.mmpp: the state rates average 0\.9167x.*last state at 3\.5x"),
    ({"users": 10, "think_time": "1s", "arrivals": {"batch": {"size": 2}}},
     r"workload: 'arrivals' \(an MMPP, batches\) shapes an open-loop"),
    ({"rate": 1, "arrivals": {"mmpp": {"states": [{"rate": 1, "mean_sojourn": "1s"}]}}},
     r"workload\.arrivals\.mmpp\.states: an MMPP needs 2 to 16 states, got 1"),
    ({"rate": 1, "arrivals": {"mmpp": {"states": [{"rate": -1, "mean_sojourn": "1s"},
                                                  {"rate": 1, "mean_sojourn": "1s"}]}}},
     r"workload\.arrivals\.mmpp\.states\.0\.rate: .*multiplier"),
    ({"rate": 1, "arrivals": {"mmpp": {"states": [{"rate": 1, "mean_sojourn": "0s"},
                                                  {"rate": 1, "mean_sojourn": "1s"}]}}},
     r"workload\.arrivals\.mmpp\.states\.0\.mean_sojourn"),
    ({"rate": 1, "arrivals": {"batch": {"size": {"geometric": 0.5}}}},
     r"workload\.arrivals\.batch\.size\.geometric: .*>= 1"),
    ({"rate": 1, "arrivals": {"batch": {"size": {}}}}, r"workload\.arrivals\.batch\.size: give one batch size"),
    ({"rate": 1, "arrivals": {"batch": {"size": 0}}}, r"workload\.arrivals\.batch\.size\.constant: .*>= 1"),
    ({"rate": 1, "arrivals": {"batch": {"size": {"uniform": [3, 2]}}}}, r"'uniform' needs \[lo, hi\]"),
    ({"rate": 1, "arrivals": {"batch": {"size": {"geometric": 2, "weights": [1]}}}},
     r"'weights' go with 'values'"),
    ({"rate": 1, "arrivals": {"poisson": True}}, r"workload\.arrivals\.poisson: unknown field 'poisson' \(allowed: mmpp, batch\)"),
])
def test_spec_errors(workload, match):
    with pytest.raises(SpecError, match=match):
        one_station(workload).check()


def test_off_state_and_empty_arrivals():
    """A state may be off (rate 0: an on-off process); ``arrivals: {}`` is Poisson."""
    wl = WorkloadSpec.model_validate({"rate": 2, "arrivals": {"mmpp": {"states": [
        {"rate": 0, "mean_sojourn": "1s"}, {"rate": "2x", "mean_sojourn": "1s"}]}}})
    assert wl.arrivals is not None and wl.arrivals.mmpp is not None
    assert wl.arrivals.mmpp.multipliers == (0.0, 2.0)
    assert not WorkloadSpec.model_validate({"rate": 2, "arrivals": {}}).bursty
    r = simarch.simulate(one_station({"rate": 2, "arrivals": {}}), duration=10, warmup=0, seed=1)
    assert r.summary().loc["all", "requests"] > 0


def test_no_early_stop_bound_for_bursty_arrivals():
    """The knee search's early stop bounds the arrivals still to come as Poisson at the peak
    rate; bursty arrivals have no such bound, so the stop is not armed for them."""
    def sim(workload: dict) -> Simulation:
        return Simulation(load_arch(one_station(workload)), duration=10, warmup=0, seed=1)
    assert _arrivals_to_come(sim({"rate": 5})) is not None
    assert _arrivals_to_come(sim(mmpp_workload())) is None
