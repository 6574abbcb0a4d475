"""The request path runs flat: deep chains, the events a request costs, no reference cycles.

* Chains of 1,000 hops, forward and synchronous, run within Python's default recursion
  limit, and with constant service times their latency is exactly the sum of the hops.
* Long chains match queueing theory: a tandem of K M/M/1 stations (Jackson: a customer's
  sojourns at the stations are independent, each Exp(mu - lambda)) and a synchronous call
  chain whose stations never queue (its latency is the sum of the K service times).
* A request schedules only events that do modelling work: on an M/M/1 station, one arrival,
  one service and, for the requests that wait (a share rho of them), one hand-over.
* The request path makes no reference cycles, so pausing the collector during a run (see
  ``simarch.run.simulation.paused_gc``) cannot let memory grow with the run's length.
"""

from __future__ import annotations

import gc
import math
import sys

import numpy as np
import pytest

import simarch
from simarch.run.simulation import Simulation

K_SE = 4.0  # tolerance in standard errors (two-sided, p ~ 6e-5 per check)


def _chain(k: int, mode: str, rate: float, service: dict, workers: int) -> simarch.Architecture:
    a = simarch.Architecture(f"chain-{mode}-{k}", workload={"rate": rate})
    names = [f"s{i}" for i in range(k)]
    for name in names:
        a.add(name, kind="service", workers=workers, service_time=service)
    for src, dst in zip(names, names[1:], strict=False):
        a.call(src, dst, mode=mode)
    return a


@pytest.mark.parametrize("mode", ["forward", "call"])
def test_a_chain_of_1000_hops_runs_and_adds_up_exactly(mode):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        # 1 ms per hop, 2 requests per second, workers to spare: nobody ever waits
        arch = _chain(1000, mode, 2.0, {"constant": "1ms"}, workers=100)
        r = simarch.simulate(arch, duration=10, warmup=0, seed=3)
    finally:
        sys.setrecursionlimit(limit)
    s = r.summary().loc["all"]
    assert s["completed"] >= 10 and s["ok"] == s["completed"]
    # 1,000 additions of 1 ms to the clock: exact to float rounding (~1e-13 s)
    np.testing.assert_allclose(r.latency, 1.0, rtol=0, atol=1e-9)


def _mean_check(label: str, estimates: list[float], theory: float, max_rel: float) -> None:
    x = np.asarray(estimates)
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    print(f"{label}: sim={mean:.6g} theory={theory:.6g} SE={se:.3g} tol={K_SE * se:.3g} (R={len(x)})")
    assert 0 < K_SE * se <= max_rel * theory, "the check would not be sharp enough to matter"
    assert abs(mean - theory) <= K_SE * se, f"{label}: {mean:.6g} vs {theory:.6g} ({(mean - theory) / se:+.2f} SE)"


@pytest.mark.slow
def test_a_30_station_tandem_matches_jackson():
    # lambda = 500/s, mu = 1000/s at each of K = 30 stations (rho = 0.5): mean response
    # K / (mu - lambda) = 60 ms. R = 10 replications of 40 s (~20k requests, 600k visits
    # each); the SE of the mean of the 10 replication means is about 0.2 ms, so 4 SE is
    # ~1.5% of the theory (the check requires 4 SE <= 5%).
    k, lam, mu = 30, 500.0, 1000.0
    arch = _chain(k, "forward", lam, {"exponential": f"{1e3 / mu}ms"}, workers=1)
    means = [float(simarch.simulate(arch, duration=40, warmup=2, seed=100 + i).latency.mean())
             for i in range(10)]
    _mean_check("tandem K=30 mean response (s)", means, k / (mu - lam), 0.05)


@pytest.mark.slow
def test_a_30_deep_call_chain_is_the_sum_of_its_service_times():
    # No station ever queues (100 workers each, at most ~2 requests in flight), so the
    # latency is a sum of K = 30 exponential service times of mean 1 ms: Erlang(30), mean
    # 30 ms, sd sqrt(30) ms. R = 10 replications of 20 s at 100/s (~2,000 requests each):
    # SE of the mean ~ 5.5 ms / sqrt(2000) / sqrt(10) ~ 0.04 ms (0.05 ms seen), 4 SE < 1%.
    k = 30
    arch = _chain(k, "call", 100.0, {"exponential": "1ms"}, workers=100)
    runs = [simarch.simulate(arch, duration=20, warmup=1, seed=200 + i) for i in range(10)]
    _mean_check("call chain K=30 mean latency (s)", [float(r.latency.mean()) for r in runs], k * 1e-3, 0.02)
    # every hop holds its worker for the whole rest of the chain: s0 is busy a whole request
    for r in runs:
        c = r.components()
        assert c.loc["s0", "mean_latency_ms"] == pytest.approx(r.latency.mean() * 1e3, rel=1e-6)


def test_an_mm1_request_costs_an_arrival_a_service_and_a_hand_over_when_it_waits():
    # lambda = 0.6, mu = 1 (rho = 0.6): a request waits with probability rho (PASTA), so
    # events per request = 2 + rho. N ~ 120k requests; the waiting share's batch-means SE is
    # below 0.01, so 0.04 is a safe bound that still catches one spare event per request.
    lam = 0.6
    arch = (simarch.Architecture("mm1", workload={"rate": lam})
            .add("s", kind="service", workers=1, service_time={"exponential": "1s"}))
    sim = Simulation(simarch.load(arch), load=1.0, duration=200_000, warmup=0, seed=5)
    sim.run()
    per_request = sim.events_scheduled() / sum(sim.arrivals)
    print(f"events per request {per_request:.4f}, theory {2 + lam:.4f}")
    assert abs(per_request - (2 + lam)) < 0.04


@pytest.mark.parametrize("path", ["architectures/cached_sharded.yaml", "tests/golden/specs/resilience_mix.yaml",
                                  "tests/golden/specs/closed_queue.yaml", "architectures/async_writes.yaml"])
def test_the_request_path_makes_no_reference_cycles(path):
    """Cyclic garbage left by a run does not grow with the run's length (what a long run
    leaves is its own object graph, the same size for 5 s or 40 s)."""
    arch = simarch.load(path)
    simarch.simulate(arch, duration=1, warmup=0, seed=1)  # imports, caches
    found = []
    for duration in (5, 40):
        gc.collect()
        gc.disable()
        try:
            simarch.simulate(arch, duration=duration, warmup=0, seed=1)
            found.append(gc.collect())
        finally:
            gc.enable()
    assert found[1] <= 1.2 * found[0] + 200, f"cyclic garbage grows with the run: {found}"
