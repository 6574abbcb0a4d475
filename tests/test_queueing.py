"""The queueing model (``simarch.analyze``): exact where queueing theory is exact, and close to
the simulation on the examples.

The exact cases (M/M/1, M/M/c, Jackson tandems, a synchronous call, closed networks by MVA,
M/M/c/K) compare with reference formulas written here, independently of the module's own
helpers, to a relative tolerance of 1e-9 (1e-7 for a saturation load, which the model finds
by bisection to 1e-7). The comparison with the simulation is ``slow``: it simulates every
example at 1x, 5x and its knee (see ``experiments/model_accuracy.py``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import sys
import time
from pathlib import Path

import pytest

import simarch
from simarch import SpecError
from simarch.analysis import queueing as q

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "architectures").glob("*.yaml"))
# the model is the steady state of a fixed tier: the autoscaled example is checked against
# the M/M/k/setup chain in tests/test_autoscale.py (tests/test_examples.py keeps the list)
CHANGING = {"autoscaled_diurnal"}
REL = 1e-9


def exp(mean: float) -> dict:
    return {"exponential": f"{mean}s"}


def station(rate: float, mean: float, workers: int = 1, **kw) -> simarch.Architecture:
    return (simarch.Architecture("station", workload={"rate": rate})
            .add("s", kind="service", workers=workers, service_time=exp(mean), **kw))


# ----------------------------------------------------------------------------- references


def ref_erlang_c(c: int, a: float) -> float:
    """P(wait) in M/M/c from the defining sums (not the recursion the model uses)."""
    top = a**c / math.factorial(c) / (1.0 - a / c)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def ref_mmc_ccdf(t: float, lam: float, mu: float, c: int) -> float:
    """P(R > t) in M/M/c (FIFO): R = W + S, W = 0 w.p. 1 - C, else Exp(c mu - lambda)."""
    pw = ref_erlang_c(c, lam / mu)
    th = c * mu - lam
    if math.isclose(th, mu):
        conv = (1.0 + mu * t) * math.exp(-mu * t)
    else:
        conv = (th * math.exp(-mu * t) - mu * math.exp(-th * t)) / (th - mu)
    return (1.0 - pw) * math.exp(-mu * t) + pw * conv


def ref_quantile(ccdf, q_: float) -> float:
    lo, hi = 0.0, 1.0
    while ccdf(hi) > 1.0 - q_:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if ccdf(mid) > 1.0 - q_:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def ref_mmck(c: int, k: int, lam: float, mu: float) -> tuple[float, float]:
    """M/M/c/K by its stationary distribution: (blocking, mean wait of admitted arrivals)."""
    a = lam / mu
    p = [a**n / math.factorial(n) if n <= c else a**c / math.factorial(c) * (a / c) ** (n - c)
         for n in range(k + 1)]
    z = sum(p)
    p = [x / z for x in p]
    lq = sum((n - c) * p[n] for n in range(c, k + 1))
    return p[k], lq / (lam * (1.0 - p[k]))


def ref_mva(demands: list[float], think: float, users: int) -> tuple[float, list[float]]:
    """Exact MVA for single-server stations and a think time: X(N), R_k(N)."""
    qk = [0.0] * len(demands)
    x, r = 0.0, list(demands)
    for n in range(1, users + 1):
        r = [d * (1.0 + qi) for d, qi in zip(demands, qk, strict=True)]
        x = n / (think + sum(r))
        qk = [x * ri for ri in r]
    return x, r


def ref_closed_multiserver(d: list[float], c: list[int], think: float, users: int
                           ) -> tuple[float, list[float]]:
    """A closed product-form network by brute force: the normalising constant over every
    state (users thinking, at each station), station k with c_k servers of demand d_k."""
    weights = {}
    for ns in itertools.product(range(users + 1), repeat=len(d)):
        if sum(ns) > users:
            continue
        w = think ** (users - sum(ns)) / math.factorial(users - sum(ns))
        for dk, ck, nk in zip(d, c, ns, strict=True):
            w *= dk**nk / math.prod(min(j, ck) for j in range(1, nk + 1))
        weights[ns] = w
    z = sum(weights.values())
    thinking = sum((users - sum(ns)) * w for ns, w in weights.items()) / z
    x = thinking / think
    return x, [sum(ns[k] * w for ns, w in weights.items()) / z / x for k in range(len(d))]


# ----------------------------------------------------------------------------- open, exact


def test_mm1_is_exact():
    lam, mu = 0.6, 1.0
    rep = simarch.analyze(station(lam, 1.0 / mu))
    row = rep.table.loc["s"]
    assert row["utilization"] == pytest.approx(lam / mu, rel=REL)
    assert row["mean_wait_ms"] == pytest.approx(1e3 * lam / (mu * (mu - lam)), rel=REL)
    assert row["mean_response_ms"] == pytest.approx(1e3 / (mu - lam), rel=REL)
    assert row["p99_ms"] == pytest.approx(1e3 * math.log(100) / (mu - lam), rel=REL)
    assert rep.mean_ms == pytest.approx(1e3 / (mu - lam), rel=REL)
    assert rep.p99_ms == pytest.approx(1e3 * math.log(100) / (mu - lam), rel=REL)
    assert rep.saturation_load == pytest.approx(mu / lam, rel=1e-7)
    assert rep.bottleneck == "s" and rep.stable and rep.throughput_rps == pytest.approx(lam)


@pytest.mark.parametrize("c", [2, 4, 8, 16, 64])
def test_mmc_erlang_c_is_exact(c):
    mu, rho = 2.0, 0.75
    lam = rho * c * mu
    row = simarch.analyze(station(lam, 1.0 / mu, workers=c)).table.loc["s"]
    pw = ref_erlang_c(c, lam / mu)
    assert q.erlang_c(c, lam / mu) == pytest.approx(pw, rel=REL)
    assert row["mean_wait_ms"] == pytest.approx(1e3 * pw / (c * mu - lam), rel=REL)
    assert row["mean_response_ms"] == pytest.approx(1e3 * (pw / (c * mu - lam) + 1.0 / mu), rel=REL)
    # the p99 of the Erlang C mixture: no wait w.p. 1 - C, else exponential, plus the service
    p99 = ref_quantile(lambda t: ref_mmc_ccdf(t, lam, mu, c), 0.99)
    assert row["p99_ms"] == pytest.approx(1e3 * p99, rel=1e-8)


def test_jackson_tandem_is_exact():
    """M/M/1 -> M/M/1 -> M/M/3 by forward calls: the sum of independent stations (Jackson)."""
    lam = 0.5
    a = (simarch.Architecture("tandem", workload={"rate": lam})
         .add("a", kind="service", workers=1, service_time=exp(1.0))
         .add("b", kind="service", workers=1, service_time=exp(1.25))
         .add("c", kind="service", workers=3, service_time=exp(4.0))
         .call("a", "b", mode="forward").call("b", "c", mode="forward"))
    rep = simarch.analyze(a)
    mmc = ref_erlang_c(3, lam * 4.0) / (3 / 4.0 - lam) + 4.0
    expected = {"a": 1.0 / (1.0 - lam), "b": 1.0 / (0.8 - lam), "c": mmc}
    for name, r in expected.items():
        assert rep.table.loc[name, "mean_response_ms"] == pytest.approx(1e3 * r, rel=REL)
    assert rep.mean_ms == pytest.approx(1e3 * sum(expected.values()), rel=REL)
    # the bottleneck is the M/M/3 stage (rho = 2/3): saturation at 1.5x
    assert rep.bottleneck == "c" and rep.saturation_load == pytest.approx(1.5, rel=1e-7)


def test_synchronous_call_holds_the_callers_worker():
    """A front with 12 workers holds one through a call to an M/M/1 back: its utilisation is
    lambda (S_front + R_back) / c, R_back = 1 / (mu - lambda). The model also stops the back's
    queue at the front's 12 workers (no more visits can be there at once), which takes 0.15%
    off R_back here."""
    lam, sf, sb, c = 1.0, 1.0, 0.5, 12
    a = (simarch.Architecture("sync", workload={"rate": lam})
         .add("front", kind="service", workers=c, service_time=exp(sf))
         .add("back", kind="service", workers=1, service_time=exp(sb))
         .call("front", "back"))
    rep = simarch.analyze(a)
    r_back = rep.table.loc["back", "mean_response_ms"] / 1e3
    assert r_back == pytest.approx(1.0 / (1.0 / sb - lam), rel=2e-3)
    assert rep.table.loc["front", "mean_hold_ms"] == pytest.approx(1e3 * (sf + r_back), rel=REL)
    assert rep.table.loc["front", "utilization"] == pytest.approx(lam * (sf + r_back) / c, rel=REL)


def test_nested_calls_saturate_where_the_callers_workers_run_out():
    """A front of 4 workers holds one through each call to a 1-worker back. Once they are all
    busy the 4 workers are a closed population cycling through their own service (a delay)
    and the back's queue, so the most the front can carry is X(4) of that closed network
    (exact MVA below): 212.5/s, that is 2.125x. The static estimate (the back's 250/s) is
    optimistic; an open model of the back (lambda (S_f + 1 / (mu_b - lambda)) = c: 173/s)
    pessimistic. The simulation is stable at 205/s and unstable at 220/s."""
    sf, sb, c = 0.01, 0.004, 4
    a = (simarch.Architecture("nested", workload={"rate": 100.0})
         .add("front", kind="service", workers=c, service_time=exp(sf))
         .add("back", kind="service", workers=1, service_time=exp(sb))
         .call("front", "back"))
    x, _ = ref_mva([sb], sf, c)
    rep = simarch.analyze(a)
    assert rep.bottleneck == "front"
    assert rep.saturation_load == pytest.approx(x / 100.0, rel=1e-6)
    assert simarch.capacity_report(a).saturation_load == pytest.approx(2.5)


@pytest.mark.parametrize("c,queue", [(1, 5), (4, 3), (3, 0), (8, 40)])
def test_mmck_blocking_is_exact(c, queue):
    lam, mu = 3.5, 1.0
    rep = simarch.analyze(station(lam, 1.0 / mu, workers=c, queue=queue))
    pb, wq = ref_mmck(c, c + queue, lam, mu)
    row = rep.table.loc["s"]
    assert row["rejected"] == pytest.approx(pb, rel=REL)
    assert row["mean_wait_ms"] == pytest.approx(1e3 * wq, rel=REL, abs=1e-12)
    assert rep.availability == pytest.approx(1.0 - pb, rel=REL)
    assert rep.throughput_rps == pytest.approx(lam * (1.0 - pb), rel=REL)


def test_allen_cunneen_scales_the_wait_by_the_service_variability():
    """M/D/1: the Pollaczek-Khinchine wait is half the M/M/1 wait, and (1 + 0) / 2 is exact."""
    lam, s = 0.6, 1.0
    a = (simarch.Architecture("md1", workload={"rate": lam})
         .add("s", kind="service", workers=1, service_time={"constant": f"{s}s"}))
    rho = lam * s
    assert simarch.analyze(a).table.loc["s", "mean_wait_ms"] == pytest.approx(
        1e3 * lam * s * s / (2 * (1 - rho)), rel=REL)


def test_a_timeout_caps_the_call():
    """A caller waits for at most the timeout: E[min(Y, T)] = m (1 - e^(-T/m)) for an
    exponential Y (an unlimited callee: its response is its service time)."""
    m, t = 0.2, 0.1
    a = (simarch.Architecture("timeout", workload={"rate": 1.0})
         .add("front", kind="service", workers=100, service_time={"constant": "10ms"})
         .add("slow", kind="cache", hit_ratio=0.0, service_time=exp(m))
         .call("front", "slow", timeout=f"{t}s"))
    rep = simarch.analyze(a)
    assert rep.table.loc["front", "mean_hold_ms"] == pytest.approx(
        1e3 * (0.01 + m * -math.expm1(-t / m)), rel=REL)
    assert rep.availability == pytest.approx(-math.expm1(-t / m), rel=REL)  # the others time out


def test_retries_are_extra_visits():
    """Retries of rejected calls to an Erlang loss station: the callee sees
    lambda (1 - f^a) / (1 - f) attempts, f its blocking probability (a fixed point)."""
    lam, attempts = 2.0, 3
    a = (simarch.Architecture("retries", workload={"rate": lam})
         .add("front", kind="service", workers=1000, service_time={"constant": "1ms"})
         .add("back", kind="service", workers=2, queue=0, service_time=exp(1.0))
         .call("front", "back", retries={"attempts": attempts, "backoff": "none"}))
    rep = simarch.analyze(a)
    f = rep.table.loc["back", "rejected"]
    visits = rep.table.loc["back", "arrival_rps"]
    assert visits == pytest.approx(lam * (1 - f**attempts) / (1 - f), rel=1e-8)
    # and f is Erlang B at the offered attempts
    load = visits * 1.0
    assert f == pytest.approx((load**2 / 2) / (1 + load + load**2 / 2), rel=1e-8)
    assert rep.availability == pytest.approx(1 - f**attempts, rel=1e-8)


def test_parallel_fanout_waits_for_the_slowest_branch():
    """Two exponential(1 s) branches: E[max] = 1.5 s; Clark's normal approximation is within 5%."""
    a = (simarch.Architecture("fanout", workload={"rate": 0.001})
         .add("api", kind="service", workers=1000, fanout="parallel")
         .add("x", kind="cache", hit_ratio=0.0, service_time=exp(1.0))
         .add("y", kind="cache", hit_ratio=0.0, service_time=exp(1.0))
         .call("api", "x").call("api", "y"))
    hold = simarch.analyze(a).table.loc["api", "mean_hold_ms"]
    assert hold == pytest.approx(1500.0, rel=0.05)


def test_caches_and_datastores_reuse_the_static_model():
    """Che's hit ratio and the shard placement of the static analysis, and what it implies."""
    arch = simarch.load(ROOT / "architectures" / "cached_sharded.yaml")
    rep = simarch.analyze(arch)
    static = simarch.capacity_report(arch)
    assert rep.hit_ratios["cache"] == pytest.approx(static.hit_ratios["cache"], rel=REL)
    for name in ("api", "cache", "db"):
        assert rep.table.loc[name, "arrival_rps"] == pytest.approx(
            static.table.loc[name, "arrival_rps"], rel=REL)
    # with no queueing to speak of at 1x, the hottest replica is the static analysis's
    assert rep.table.loc["db", "utilization"] == pytest.approx(static.table.loc["db", "utilization"],
                                                               rel=1e-9)


def test_sync_replication_waits_for_the_copies():
    def design(replication: str) -> simarch.Architecture:
        return (simarch.Architecture("repl", workload={"rate": 1.0, "requests": {"write": {}}})
                .add("db", kind="datastore", replicas=3, workers=8, replication=replication,
                     service_time=exp(0.01)))
    sync, asyn = simarch.analyze(design("sync")), simarch.analyze(design("async"))
    assert asyn.mean_ms == pytest.approx(10.0, rel=1e-6)
    assert sync.mean_ms > 1.3 * asyn.mean_ms  # the slower of two more exponential copies


def test_a_queue_returns_at_once_and_its_consumers_see_the_messages():
    arch = simarch.load(ROOT / "architectures" / "async_writes.yaml")
    rep = simarch.analyze(arch)
    t = rep.table
    assert t.loc["queue", "mean_response_ms"] == pytest.approx(0.5, rel=REL)
    assert t.loc["writers", "arrival_rps"] == pytest.approx(160.0, rel=REL)
    # writers hold a worker for their 2 ms and the write to the database
    assert t.loc["writers", "utilization"] == pytest.approx(
        160.0 * t.loc["writers", "mean_hold_ms"] / 1e3 / 8, rel=REL)
    assert rep.classes.loc["write", "mean_ms"] == pytest.approx(
        t.loc["api", "mean_hold_ms"] * 0 + 3.0 + 0.5, rel=1e-3)


# ----------------------------------------------------------------------------- closed loops


def closed(users: int, d_b_workers: int = 1) -> simarch.Architecture:
    return (simarch.Architecture("closed", workload={"users": users, "think_time": exp(2.0)})
            .add("a", kind="service", workers=1, service_time=exp(1.0))
            .add("b", kind="service", workers=d_b_workers, service_time=exp(1.5))
            .call("a", "b", mode="forward"))


@pytest.mark.parametrize("users", range(1, 21))
def test_closed_loop_is_exact_mva(users):
    rep = simarch.analyze(closed(users))
    x, (ra, rb) = ref_mva([1.0, 1.5], 2.0, users)
    assert "exact MVA" in rep.method
    assert rep.throughput_rps == pytest.approx(x, rel=REL)
    assert rep.table.loc["a", "mean_response_ms"] == pytest.approx(1e3 * ra, rel=REL)
    assert rep.table.loc["b", "mean_response_ms"] == pytest.approx(1e3 * rb, rel=REL)
    assert rep.mean_ms == pytest.approx(1e3 * (ra + rb), rel=REL)
    assert rep.table.loc["b", "utilization"] == pytest.approx(x * 1.5, rel=REL)


@pytest.mark.parametrize("users", [1, 2, 5, 9])
def test_closed_loop_with_a_multi_server_station_is_exact(users):
    rep = simarch.analyze(closed(users, d_b_workers=3))
    x, (ra, rb) = ref_closed_multiserver([1.0, 1.5], [1, 3], 2.0, users)
    assert rep.throughput_rps == pytest.approx(x, rel=REL)
    assert rep.table.loc["a", "mean_response_ms"] == pytest.approx(1e3 * ra, rel=REL)
    assert rep.table.loc["b", "mean_response_ms"] == pytest.approx(1e3 * rb, rel=REL)


def test_closed_loop_saturation_is_where_the_asymptotes_cross():
    # N* = (Z + D_a + D_b) / D_max = (2 + 1 + 1.5) / 1.5 = 3 users; the spec has 6 users
    rep = simarch.analyze(closed(6))
    assert rep.bottleneck == "b" and rep.saturation_load == pytest.approx(3.0 / 6, rel=1e-6)


def test_closed_loop_beyond_product_form_is_a_fixed_point():
    """Holding (a synchronous call from a limited pool) is not product form: the fixed point of
    X = N / (Z + R(X)) holds, and throughput stays within the asymptotic bounds."""
    a = (simarch.Architecture("hold", workload={"users": 40, "think_time": exp(0.05)})
         .add("web", kind="service", workers=8, service_time=exp(0.003))
         .add("db", kind="datastore", workers=2, service_time=exp(0.004))
         .call("web", "db"))
    rep = simarch.analyze(a)
    assert "fixed point" in rep.method
    assert rep.throughput_rps * (0.05 + rep.mean_ms / 1e3) == pytest.approx(40, rel=1e-6)
    assert rep.throughput_rps <= min(40 / (0.05 + 0.007), 2 / 0.004)


# ----------------------------------------------------------------------------- numbers


def test_gamma_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for shape in (0.02, 0.3, 1.0, 2.5, 17.0, 400.0, 5_000.0, 50_000.0):
        for p in (1e-4, 0.01, 0.5, 0.9, 0.99, 0.999):
            ref = stats.gamma.ppf(p, shape, scale=3.0)
            assert q.gamma_quantile(p, shape, 3.0) == pytest.approx(ref, rel=1e-9)
            assert q.gamma_cdf(ref, shape, 3.0) == pytest.approx(p, rel=1e-9, abs=1e-12)


def test_erlang_b_for_large_pools_matches_the_recursion_region():
    # above 2,000 servers Erlang B comes from the Poisson distribution
    for c, a in ((2001, 1900.0), (3000, 2990.0), (5000, 4000.0)):
        b = 1.0
        for k in range(1, c + 1):
            b = a * b / (k + a * b)
        assert q.erlang_b(c, a) == pytest.approx(b, rel=1e-6)


# ----------------------------------------------------------------------------- the API


def test_analyze_takes_paths_mappings_and_load_strings():
    path = ROOT / "architectures" / "single_server.yaml"
    by_path = simarch.analyze(path, "5x")
    by_map = simarch.analyze(simarch.load(path).to_dict(), 5)
    assert by_path.load == 5.0 and by_path.mean_ms == pytest.approx(by_map.mean_ms, rel=REL)
    with pytest.raises(SpecError) as err:
        simarch.analyze(path, load="zz")
    assert err.value.path == ("load",)


def test_report_columns_text_html_and_dict():
    rep = simarch.analyze(ROOT / "architectures" / "cached_sharded.yaml", 3)
    for col in ("kind", "arrival_rps", "workers", "utilization", "mean_wait_ms", "mean_response_ms",
                "p99_ms", "saturates_at", "note", "rejected", "mean_hold_ms"):
        assert col in rep.table.columns
    assert list(rep.classes.index) == ["read", "write"]
    for col in ("arrival_rps", "throughput_rps", "availability", "mean_ms", "p99_ms"):
        assert col in rep.classes.columns
    text = str(rep)
    assert text.startswith("Queueing model at 3x load (approximate; method:")
    assert "Bottleneck: api, saturates at" in text and "End to end: mean" in text
    assert "<table" in rep._repr_html_()
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["bottleneck"] == "api" and set(d["components"]) == {"lb", "api", "cache", "db"}
    assert 0 < rep.p99_ms and rep.mean_ms < rep.p99_ms


def test_an_overloaded_design_is_reported_unstable():
    rep = simarch.analyze(ROOT / "architectures" / "spof_single.yaml", "30x")  # unbounded queues
    assert not rep.stable and any("saturated" in w for w in rep.warnings)
    assert "unstable at 30x" in str(rep) and "inf" in str(rep)
    # a bounded queue turns the excess away instead: stable, with rejections
    rep = simarch.analyze(ROOT / "architectures" / "single_server.yaml", "20x")
    assert rep.stable and rep.table.loc["app", "rejected"] > 0.2
    assert rep.availability == pytest.approx(1 - rep.table.loc["app", "rejected"], rel=1e-6)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_is_fast_and_consistent(path):
    arch = simarch.load(path)
    simarch.analyze(arch)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        rep = simarch.analyze(arch)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5  # about 5-40 ms on a laptop core; generous for a busy machine
    static = simarch.capacity_report(arch)
    assert rep.stable
    # queueing only adds to holding times: saturation is not later than the static estimate
    # (but for the 1% that a bounded queue upstream turns away just below it)
    assert rep.saturation_load <= static.saturation_load * 1.01
    assert rep.mean_ms >= 0.999 * static.table.loc[arch.entry, "mean_hold_ms"]


def test_validate_prints_the_model_after_the_static_estimate():
    from cli_helpers import simarch_cli

    p = simarch_cli("validate", ROOT / "architectures" / "single_server.yaml", "--load", "5x")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.index("Static capacity analysis at 5x") < out.index("Queueing model at 5x load")
    assert "End to end: mean" in out and "Bottleneck: app" in out


# ----------------------------------------------------------------------------- against the simulation


def _accuracy_module():
    path = ROOT / "experiments" / "model_accuracy.py"
    spec = importlib.util.spec_from_file_location("model_accuracy", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["model_accuracy"] = mod
    spec.loader.exec_module(mod)
    return mod


ACCURACY_REPS = 3  # replications per point (the script's table uses 5 of 300 s)
ACCURACY_DURATION = 60.0  # measured seconds per replication


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES if p.stem not in CHANGING])
def test_model_against_the_simulation(name):
    """Every example (faults removed) at 1x, 5x and its knee, ACCURACY_REPS replications of
    ACCURACY_DURATION s each: where every component's utilisation is at most 0.8 (and the model
    is stable), the model's mean latency is within 10% of the simulation's mean (the other
    points have no target, so they are not simulated here; the script's table shows them); the model's
    saturation load is within 5% of the simulated one (measured by the script's ``--find``,
    hard-coded there). A miss is a failure: the known misses are listed, with their reason, in
    ``docs/background/queueing-model.md``."""
    acc = _accuracy_module()
    df = acc.accuracy_table([name], ACCURACY_REPS, ACCURACY_DURATION, targets_only=True)
    print(acc.markdown(df))
    checked = df[df["target"].notna()]
    assert len(checked), "nothing in scope"
    for _, row in checked.iterrows():
        assert abs(row["error"]) <= row["target"], (
            f"{name} {row['point']} {row['figure']}: model {row['model']:.4g}, simulation "
            f"{row['sim']:.4g} ± {row['ci']:.2g} ({100 * row['error']:+.1f}%)")
