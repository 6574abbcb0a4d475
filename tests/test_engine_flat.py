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
from simarch.model.status import N_STATUS
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


# ----------------------------------------------------------------------------- load index


def test_the_load_index_follows_every_change_of_load():
    """Random arrivals and departures on 40 pools: after each change every level holds
    exactly the pools of that load, and ``least`` returns a least-loaded pool."""
    from simarch.runtime.pools import LoadIndex, Pool

    rng = np.random.default_rng(7)
    pools = [Pool(f"p{i}", 3, math.inf) for i in range(40)]
    index = LoadIndex(pools)
    for step in range(20_000):
        p = pools[int(rng.integers(40))]
        if p.load and rng.random() < 0.5:
            p.load -= 1
            index.down(p)
        else:
            p.load += 1
            index.up(p)
        if step % 97 == 0 or step < 200:
            for level, members in enumerate(index.levels):
                assert all(m.load == level for m in members)
                assert all(m.slot == i for i, m in enumerate(members))
            assert sum(len(m) for m in index.levels) == 40
            low = min(q.load for q in pools)
            assert index.low == low
            assert index.least(step).load == low
            allowed = set(pools[::3])
            assert index.least_of(step, allowed).load == min(q.load for q in allowed)


@pytest.mark.parametrize("health_check", [False, True])
def test_least_connections_on_a_large_tier_always_picks_a_least_loaded_live_instance(health_check):
    """64 instances behind a least-connections balancer (the indexed pick), two of them
    crashed for a while: every pick is an instance in rotation with the fewest requests."""
    spec = {
        "name": "big-tier",
        "workload": {"rate": 400, "entry": "lb"},
        "components": {
            "lb": {"kind": "load_balancer", "policy": "least_connections",
                   **({"health_check": {"interval": "1s", "unhealthy_after": 2}} if health_check else {})},
            "api": {"kind": "service", "instances": 64, "workers": 1, "service_time": {"exponential": "150ms"}},
        },
        "calls": [{"from": "lb", "to": "api"}],
        "faults": [{"kind": "crash", "target": "api", "instances": 2, "at": "5s", "duration": "10s"}],
    }
    sim = Simulation(simarch.load(spec), load=1.0, duration=30, warmup=0, seed=11)
    lb = sim.components["lb"]
    api = sim.components["api"]
    call = lb.calls[0][0]
    cells = dict(zip(call.pick.__code__.co_freevars, (c.cell_contents for c in call.pick.__closure__),
                     strict=True))
    rotation = cells["live_set"] if health_check else set(api.pools)  # what the balancer sees
    assert "index" in cells  # the indexed pick, not the scan
    picks = []

    def checked():
        p = call.pick()
        assert p in rotation
        assert p.load == min(q.load for q in rotation), "not a least-loaded instance"
        picks.append((sim.env.now, p))
        return p
    lb.calls[0][0] = call._replace(pick=checked)
    r = sim.run()
    assert len(picks) > 10_000 and len({id(p) for _, p in picks}) == 64
    dead = set(api.pools[:2])
    to_dead = [t for t, p in picks if p in dead and 8.5 <= t < 15]
    if health_check:  # out of rotation 2 failed checks (<= 3 s) after the crash at 5 s
        assert not to_dead
    else:  # a dead instance answers at once, so it looks least loaded: it draws traffic
        assert len(to_dead) > 100
        assert r.summary().loc["all", "availability"] < 0.95


@pytest.mark.parametrize("n_classes", [3, 60])
def test_record_codes_fit_any_number_of_classes(n_classes):
    """Record codes take one byte while class x status fits in one, two bytes beyond: the
    classes and outcomes read back are the same either way."""
    spec = {"name": "many", "workload": {"rate": 200, "requests": {f"c{i}": {"weight": 1} for i in range(n_classes)}},
            "components": {"s": {"kind": "service", "workers": 4, "queue": 2, "service_time": "15ms"}}}
    sim = Simulation(simarch.load(spec), load=1.0, duration=60, warmup=0, seed=2)
    r = sim.run()
    assert sim.code.typecode == ("B" if n_classes * N_STATUS <= 256 else "H")
    counts = np.bincount(r.cls, minlength=n_classes)
    assert len(counts) == n_classes and counts.min() > 0  # every class, the last one included
    assert counts.sum() == len(r.latency)
    assert set(np.unique(r.status)) <= {0, 1}  # ok, and rejected by the bounded queue
    assert (r.status == 1).any()
