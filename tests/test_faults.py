"""Fault injection and resilience: crashes, random failures, health checks, retries and
budgets, circuit breakers, hedging, failover, partitions and loss, worker loss, slowdowns,
rate limits, cache flushes, fallbacks, single points of failure and determinism.

Deterministic cases are checked exactly (or to 1e-9 s). Statistical checks state N, how the
standard error (SE) is estimated, and use a tolerance of 4 SE. Expected values are derived
from theory inside each test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

import simarch
from simarch import Architecture
from simarch.model.status import FAILED, OK, REJECTED, TIMEOUT  # noqa: E402,F401


def with_faults(arch: Architecture, *faults: dict) -> Architecture:
    return arch.with_changes({"faults": list(faults)})


def mean_se(values) -> tuple[float, float]:
    """Mean of independent replications and its standard error."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def truncated_geometric(f: float, k: int) -> tuple[float, float]:
    """Mean and variance of the attempts a request makes when each attempt fails
    independently with probability ``f`` and at most ``k`` attempts are made."""
    n = np.arange(1, k + 1)
    p = f ** (n - 1) * (1 - f)
    p[-1] = f ** (k - 1)
    mean = float((n * p).sum())
    return mean, float((n * n * p).sum() - mean * mean)


def max_overlap(starts: np.ndarray, ends: np.ndarray) -> int:
    """The largest number of intervals [start, end) open at one time."""
    ev = sorted([(float(s), 1) for s in starts] + [(float(e), -1) for e in ends])
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


# ------------------------------------------------------------------ 1. fault timing


def _front_back(rate: float = 20, **call) -> Architecture:
    # ample workers: no request ever waits, so each one's fate depends only on the fault
    return (Architecture("fb", workload={"rate": rate}, slo={"availability": 0.99})
            .add("front", kind="service", workers=1000, service_time="10ms")
            .add("back", kind="service", workers=1000, service_time="10ms")
            .call("front", "back", **call))


@pytest.mark.parametrize("behaviour", ["fail", "hang"])
def test_crash_window_is_exact(behaviour):
    # back is down in [a, a+d). A request arriving at t reaches back at t+10ms and works there
    # until t+20ms. It fails iff back is down when it arrives there (t+0.01 in [a, a+d)),
    # or back crashes during its work (a in (t+0.01, t+0.02]): so exactly the requests with
    # t in [a-0.02, a+d-0.01) fail, every other one succeeds (in 20 ms).
    # fail: refused at once, latency = front's 10 ms; hang: the caller's 200 ms timeout ends
    # it (latency 210 ms, cause timeout). Work cut by the crash fails when it ends (20 ms).
    a, d, warm, dur = 40.0, 20.0, 10.0, 80.0
    arch = with_faults(_front_back(timeout="200ms"),
                       {"kind": "crash", "target": "back", "at": a, "duration": d,
                        "behaviour": behaviour})
    r = simarch.simulate(arch, duration=dur, warmup=warm, seed=1)
    t = r.start
    reach = t + 0.01
    dead_on_arrival = (reach >= a) & (reach < a + d)
    cut = (reach < a) & (reach + 0.01 > a)
    fine = ~(dead_on_arrival | cut)
    assert dead_on_arrival.sum() > 300 and fine.sum() > 1000
    # before and after: availability exactly 1
    assert (r.status[fine] == OK).all()
    np.testing.assert_allclose(r.latency[fine], 0.02, atol=1e-9)
    assert (r.status[(t < a - 0.02) | (t >= a + d)] == OK).all()
    # during: availability exactly 0, with the cause and latency of the behaviour
    if behaviour == "fail":
        assert (r.status[dead_on_arrival] == FAILED).all()
        np.testing.assert_allclose(r.latency[dead_on_arrival], 0.01, atol=1e-9)
    else:
        assert (r.status[dead_on_arrival] == TIMEOUT).all()
        np.testing.assert_allclose(r.latency[dead_on_arrival], 0.21, atol=1e-9)
    assert (r.status[cut] == FAILED).all()
    np.testing.assert_allclose(r.latency[cut], 0.02, atol=1e-9)
    # the fault is listed ...
    f = r.faults()
    assert len(f) == 1
    row = f.iloc[0]
    assert (row.fault, row.kind, row.target) == ("crash:back", "crash", "back")
    assert row.start_s == a and row.end_s == a + d
    # ... and marked in exactly the time-series windows it overlaps: [40, 45) ... [55, 60)
    ts = r.timeseries("5s")
    active = (ts.start_s < a + d) & (ts.end_s > a)
    assert active.sum() == 4
    assert (ts.fault_active == active).all()
    assert (ts.faults[active] == "crash:back").all() and (ts.faults[~active] == "").all()
    # windows before the fault, and after it once the timed-out stragglers are out, are clean
    clean = (ts.end_s <= a) | (ts.start_s >= a + d + 0.25)
    assert (ts.availability[clean] == 1.0).all()
    # the SLO verdict: error budget used = (1 - availability) / (1 - target)
    s = r.summary().loc["all"]
    expected = float((r.status == OK).mean())
    assert s["availability"] == pytest.approx(expected, abs=1e-12)
    slo = r.slo()
    assert slo.loc["availability", "error_budget_used"] == pytest.approx((1 - expected) / 0.01, rel=1e-9)
    assert not slo.loc["availability", "met"]


# ------------------------------------------------------------------ 2. random failures


@pytest.mark.slow
def test_random_failures_reach_mtbf_over_mtbf_plus_mttr():
    # One instance, exponential time to failure (mean 9 s) and to repair (mean 1 s): an
    # alternating renewal process, up a fraction A = 9/(9+1) = 0.9 of the time. Service time 0
    # and Poisson arrivals (PASTA): a request succeeds with probability A too.
    # N = 12 replications (seeds) of 1500 s (~150 failures, ~15 000 requests each); SE from
    # the spread of the replications; tolerance 4 SE.
    mtbf, mttr = 9.0, 1.0
    A = mtbf / (mtbf + mttr)
    arch = with_faults(Architecture("rnd", workload={"rate": 10}).add("s", kind="service", workers=100),
                       {"kind": "random", "target": "s", "mtbf": {"exponential": f"{mtbf}s"},
                        "mttr": {"exponential": f"{mttr}s"}})
    warm, dur = 20.0, 1500.0
    uptime, avail = [], []
    for seed in range(12):
        r = simarch.simulate(arch, duration=dur, warmup=warm, seed=seed)
        up = r.components().loc["s", "uptime"]
        uptime.append(up)
        avail.append(float((r.status == OK).mean()))
        # uptime is exactly 1 - (down time inside the window) / T, from the listed windows
        f = r.faults()
        assert (f.kind == "random").all() and len(f) > 100
        down = (np.minimum(f.end_s, warm + dur) - np.maximum(f.start_s, warm)).clip(lower=0).sum()
        assert up == pytest.approx(1 - down / dur, abs=1e-9)
        assert r.instances().loc[0, "uptime"] == pytest.approx(up, abs=1e-12)
    m_up, se_up = mean_se(uptime)
    m_av, se_av = mean_se(avail)
    assert abs(m_up - A) < 4 * se_up, (m_up, se_up, A)
    assert abs(m_av - A) < 4 * se_av, (m_av, se_av, A)


# ------------------------------------------------------------------ 3. health checks


@pytest.mark.slow
def test_health_checked_replicas_approach_parallel_redundancy():
    # Two replicas behind a load balancer (round robin, unhealthy_after = healthy_after = 1),
    # each failing independently (exponential MTBF 9 s, MTTR 1 s, A = 0.9). With instant
    # detection a request fails only when both are down: availability 1 - (1-A)^2 = 0.99.
    # A check interval I leaves a dead replica in rotation for D = min(U, R) after it fails
    # (U ~ uniform(0, I) the wait for the next check, R the repair time), during which half
    # of the requests go to it: to first order the loss is E[D] / (MTBF + MTTR), with
    # E[D] = MTTR - MTTR^2 (1 - exp(-I/MTTR)) / I -> I/2 as I -> 0.
    # N = 10 replications of 1500 s (~15 000 requests each) per interval, the same seeds for
    # both intervals (same failures); SE from the replications, and for the difference from
    # the paired differences. Tolerance 4 SE.
    mtbf, mttr = 9.0, 1.0
    A = mtbf / (mtbf + mttr)

    def design(interval: float) -> Architecture:
        arch = (Architecture("hc", workload={"rate": 10})
                .add("lb", kind="load_balancer", policy="round_robin",
                     health_check={"interval": interval, "unhealthy_after": 1, "healthy_after": 1})
                .add("api", kind="service", instances=2, workers=100)
                .call("lb", "api"))
        return with_faults(arch, {"kind": "random", "target": "api",
                                  "mtbf": {"exponential": f"{mtbf}s"}, "mttr": {"exponential": f"{mttr}s"}})

    def lag_loss(interval: float) -> float:
        e_d = mttr - mttr ** 2 * (1 - math.exp(-interval / mttr)) / interval
        return e_d / (mtbf + mttr)

    fast_i, slow_i = 0.02, 2.0
    fast, slow = [], []
    for seed in range(10):
        for interval, out in ((fast_i, fast), (slow_i, slow)):
            r = simarch.simulate(design(interval), duration=1500, warmup=20, seed=seed)
            out.append(float((r.status == OK).mean()))
            inst = r.instances()
            assert (inst[inst.component == "api"].uptime.between(0.8, 0.97)).all()
    parallel = 1 - (1 - A) ** 2
    m_fast, se_fast = mean_se(fast)
    # the detection lag at 20 ms is about one SE: the limit is reached within the noise
    assert lag_loss(fast_i) < 1.5 * se_fast
    assert abs(m_fast - parallel) < 4 * se_fast, (m_fast, se_fast, parallel)
    # a check interval comparable to the MTTR makes availability measurably worse
    diff, se_diff = mean_se(np.array(fast) - np.array(slow))
    assert diff > 4 * se_diff, (diff, se_diff)
    assert diff > 0.5 * lag_loss(slow_i)


@pytest.mark.parametrize("unhealthy_after", [1, 2])
def test_health_check_takes_a_dead_instance_out_after_n_failed_checks(unhealthy_after):
    # one of two instances crashes at a = 20 s for 10 s; checks every I = 1 s at some phase.
    # The k-th check after the crash falls in [a + (k-1) I, a + k I): the instance leaves the
    # rotation then, and until then every other request (round robin) goes to it and fails.
    # So failures lie in [a, a + u I), the last one within the final 0.1 s before the u-th check
    # (100/s: ~5 requests to the dead instance per 0.1 s), and none afterwards.
    a, d, interval = 20.0, 10.0, 1.0
    arch = (Architecture("hc1", workload={"rate": 100})
            .add("lb", kind="load_balancer",
                 health_check={"interval": f"{interval}s", "unhealthy_after": unhealthy_after,
                               "healthy_after": 1})
            .add("api", kind="service", instances=2, workers=100, service_time="1ms")
            .call("lb", "api"))
    arch = with_faults(arch, {"kind": "crash", "target": "api", "instances": 1, "at": a, "duration": d})
    r = simarch.simulate(arch, duration=30, warmup=10, seed=2)
    bad = np.sort(r.start[r.status != OK])
    assert (r.status[r.status != OK] == FAILED).all()
    assert bad[0] >= a - 0.001  # work cut by the crash: at most 1 ms before it
    assert a + (unhealthy_after - 1) * interval - 0.1 <= bad[-1] < a + unhealthy_after * interval
    # round robin: while it is in rotation, half the requests go to the dead instance
    during = (r.start >= a) & (r.start < bad[-1])
    assert abs((r.status[during] != OK).sum() - during.sum() / 2) <= 2


# ------------------------------------------------------------------ 4. retries


def _retry_design(f: float, retries: dict, rate: float = 100) -> Architecture:
    arch = (Architecture("retry", workload={"rate": rate})
            .add("front", kind="service", workers=1000)
            .add("back", kind="service", workers=1000, service_time="1ms")
            .call("front", "back", retries=retries))
    return with_faults(arch, {"kind": "errors", "target": "back", "probability": f})


@pytest.mark.parametrize("f, k", [(0.3, 3), (0.6, 4)])
def test_retries_attempts_and_success_probability(f, k):
    # Each attempt fails independently with probability f; at most k attempts: attempts per
    # request are truncated geometric, mean (1 - f^k)/(1 - f); success probability 1 - f^k.
    # N ~ 20 000 requests (100/s x 200 s); SE from the exact per-request variances
    # (attempts: sqrt(Var/N); success: binomial sqrt(p(1-p)/N)); tolerance 4 SE.
    r = simarch.simulate(_retry_design(f, {"attempts": k, "backoff": "none"}),
                         duration=200, warmup=5, seed=11)
    c = r.calls().iloc[0]
    assert c.edge == "front->back"
    n = int(c.first_attempts)
    assert n == pytest.approx(len(r.status), abs=5)
    mean, var = truncated_geometric(f, k)
    assert mean == pytest.approx((1 - f ** k) / (1 - f), rel=1e-12)
    attempts = (c.first_attempts + c.retries) / c.first_attempts
    assert abs(attempts - mean) < 4 * math.sqrt(var / n), (attempts, mean)
    p = 1 - f ** k
    ok = float((r.status == OK).mean())
    assert abs(ok - p) < 4 * math.sqrt(p * (1 - p) / len(r.status)), (ok, p)
    assert (r.status[r.status != OK] == FAILED).all()


def test_retry_budget_caps_retries_at_the_ratio():
    # f = 0.9, 3 attempts: without a budget a request would retry f + f^2 = 1.71 times. The
    # budget (ratio 0.1, burst 10) adds 0.1 token per first attempt and a retry spends 1, so
    # over the window retries = 0.1 x first attempts + (tokens at start - tokens at end),
    # and the token level stays in [0, burst]: |retries - 0.1 n| <= 10 (deterministic).
    ratio, burst = 0.1, 10
    r = simarch.simulate(_retry_design(0.9, {"attempts": 3, "backoff": "none",
                                             "budget": {"ratio": ratio, "burst": burst}}),
                         duration=200, warmup=5, seed=3)
    c = r.calls().iloc[0]
    n = int(c.first_attempts)
    assert n > 15000
    assert abs(c.retries - ratio * n) <= burst + 1, (c.retries, ratio * n)
    # a request whose first attempt fails (0.9 n of them) wants a retry; at most 0.1 n get one
    assert c.budget_denied > (0.9 - ratio) * n - 4 * math.sqrt(0.09 * n)


# ------------------------------------------------------------------ 5. circuit breaker


def test_circuit_breaker_state_transitions_match_a_reference_trace():
    # One user, think time 1 s, front 10 ms -> back 10 ms with a 200 ms timeout; back hangs
    # (crash, behaviour hang) in [20, 32). Breaker: failures 3, open_for 5 s, probes 1.
    # A reference model written from the breaker's definition predicts every request's start,
    # status and latency and every transition; the simulation must match it exactly.
    think, st, timeout = 1.0, 0.01, 0.2
    failures, open_for = 3, 5.0
    a, d = 20.0, 12.0
    arch = (Architecture("cb", workload={"users": 1, "think_time": f"{think}s"})
            .add("front", kind="service", service_time=f"{st}s")
            .add("back", kind="service", service_time=f"{st}s")
            .call("front", "back", timeout=f"{timeout}s",
                  circuit_breaker={"failures": failures, "open_for": f"{open_for}s", "probes": 1}))
    arch = with_faults(arch, {"kind": "crash", "target": "back", "at": a, "duration": d,
                              "behaviour": "hang"})
    end = 60.0
    r = simarch.simulate(arch, duration=end, warmup=0, seed=1)

    # reference model
    state, fails, opened_at = "closed", 0, 0.0
    trace, moves, refused = [], [], 0
    t = think
    while True:
        c = t + st  # the call to back
        if state == "open" and c - opened_at >= open_for:
            moves.append((c, "open", "half_open"))
            state = "half_open"
        if state == "open":
            refused += 1
            status, lat = FAILED, st
        else:
            if a <= c < a + d:
                status, lat = TIMEOUT, st + timeout  # hangs until the caller's timeout
            elif c < a < c + st:
                status, lat = FAILED, 2 * st  # crashed during its work
            else:
                status, lat = OK, 2 * st
            done = t + lat
            if state == "half_open":
                new = "closed" if status == OK else "open"
                moves.append((done, "half_open", new))
                state, fails = new, 0
                opened_at = done
            elif status == OK:
                fails = 0
            else:
                fails += 1
                if fails >= failures:
                    moves.append((done, "closed", "open"))
                    state, opened_at = "open", done
        if t + lat >= end:
            break
        trace.append((t, status, lat))
        t += lat + think
    exp = np.array(trace)
    order = np.argsort(r.start)
    np.testing.assert_allclose(r.start[order], exp[:, 0], atol=1e-9)
    np.testing.assert_array_equal(r.status[order], exp[:, 1].astype(int))
    np.testing.assert_allclose(r.latency[order], exp[:, 2], atol=1e-9)

    ev = r.events()
    assert (ev.what == "breaker").all() and (ev["where"] == "front->back").all()
    assert list(zip(ev["from"], ev["to"], strict=True)) == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "open"),
        ("open", "half_open"), ("half_open", "closed")]
    np.testing.assert_allclose(ev.time_s, [m[0] for m in moves if m[0] < end], atol=1e-9)
    # the breaker opens at the end of the 3rd consecutive failure
    bad = np.sort(r.start[r.status != OK])
    assert ev.time_s[0] == pytest.approx(bad[failures - 1] + st + timeout, abs=1e-9)
    # open -> half_open no sooner than open_for after opening (at the next call)
    assert open_for <= ev.time_s[1] - ev.time_s[0] < open_for + think + st + timeout
    assert open_for <= ev.time_s[3] - ev.time_s[2] < open_for + think + st + timeout
    # half_open -> open while back is still down; -> closed once it is back
    assert ev.time_s[2] < a + d <= ev.time_s[4]
    # refused calls fail fast: only the front's own 10 ms
    fast = (r.status == FAILED) & (np.abs(r.latency - st) < 1e-9)
    c = r.calls().iloc[0]
    assert c.breaker_rejected == refused == fast.sum() > 0
    assert c.breaker_state == "closed"


# ------------------------------------------------------------------ 6. hedging


@pytest.mark.slow
def test_hedging_after_p90_cuts_p99():
    # back: lognormal with median 10 ms and p99 100 ms, ample workers (no queueing). A hedge
    # is sent iff the first attempt is not answered by `after` (35 ms, ~p90): binomial with
    # q = P(S > after). With hedging, T = min(S1, after + S2) and P(T > t) = G(t) G(t - after)
    # for t > after (G the survival function): p99 solves G(t) G(t - after) = 0.01.
    # N = 5 replications x ~10 000 requests for each design (same seeds); p99 SE from the
    # replications; hedge count SE = sqrt(N q (1-q)) over all requests. Tolerance 4 SE.
    med, p99 = 0.010, 0.100
    sigma = math.log(p99 / med) / stats.norm.ppf(0.99)

    def surv(t: float) -> float:
        return 1.0 if t <= 0 else float(stats.norm.sf(math.log(t / med) / sigma))

    after = 0.035

    def design(hedge: bool) -> Architecture:
        kw = {"hedge": {"after": f"{after}s"}} if hedge else {}
        return (Architecture("hedge", workload={"rate": 50})
                .add("front", kind="service", workers=10000)
                .add("back", kind="service", workers=10000,
                     service_time={"lognormal": {"median": "10ms", "p99": "100ms"}})
                .call("front", "back", **kw))

    plain_p99, hedged_p99, diffs = [], [], []
    hedges = first = 0
    for seed in range(5):
        a = simarch.simulate(design(False), duration=200, warmup=5, seed=seed)
        b = simarch.simulate(design(True), duration=200, warmup=5, seed=seed)
        assert (a.status == OK).all() and (b.status == OK).all()
        pa, pb = np.percentile(a.latency, 99), np.percentile(b.latency, 99)
        plain_p99.append(pa)
        hedged_p99.append(pb)
        diffs.append(pa - pb)
        c = b.calls().iloc[0]
        hedges += int(c.hedges)
        first += int(c.first_attempts)
    m_plain, se_plain = mean_se(plain_p99)
    m_hedged, se_hedged = mean_se(hedged_p99)
    m_diff, se_diff = mean_se(diffs)
    theory_hedged = optimize.brentq(lambda t: surv(t) * surv(t - after) - 0.01, after + 1e-9, 1.0)
    assert abs(m_plain - p99) < 4 * se_plain, (m_plain, se_plain)
    assert abs(m_hedged - theory_hedged) < 4 * se_hedged, (m_hedged, se_hedged, theory_hedged)
    assert m_diff > 4 * se_diff
    q = surv(after)
    assert 0.08 < q < 0.12  # `after` is about the p90
    assert abs(hedges - first * q) < 4 * math.sqrt(first * q * (1 - q)), (hedges, first * q)


# ------------------------------------------------------------------ 7. datastore failover


def test_datastore_failover_window():
    # Shard 0 has 2 replicas; its primary crashes at a = 30 s for good; failover F = 5 s.
    # Writes (to the primary) fail exactly for arrivals in [a - 1 ms, a + F) (1 ms: work cut
    # by the crash) and succeed after, on the promoted replica. Reads go round robin over the
    # copies the cluster believes alive: until a + F every other read lands on the dead copy
    # and fails; after a + F the dead copy is out and every read succeeds.
    a, F, st = 30.0, 5.0, 0.001
    arch = (Architecture("ds", workload={"rate": 40, "requests": {"read": {}, "write": {}}})
            .add("api", kind="service", workers=1000)
            .add("db", kind="datastore", replicas=2, failover=f"{F}s", workers=1000,
                 service_time=f"{st}s")
            .call("api", "db"))
    arch = with_faults(arch, {"kind": "crash", "target": "db", "shard": 0, "replica": 0, "at": a})
    r = simarch.simulate(arch, duration=40, warmup=10, seed=1)
    write, read = r.cls == 1, r.cls == 0
    t = r.start
    w_bad = write & (t >= a - st) & (t < a + F)
    assert w_bad.sum() > 50
    assert (r.status[w_bad] == FAILED).all()
    assert (r.status[write & ~w_bad] == OK).all()
    assert (r.status[read & ((t < a - st) | (t >= a + F))] == OK).all()
    during = read & (t >= a) & (t < a + F)
    n = int(during.sum())
    failed = int((r.status[during] == FAILED).sum())
    assert n > 50 and abs(failed - n / 2) <= 1, (failed, n)
    ev = r.events()
    assert len(ev) == 1
    row = ev.iloc[0]
    assert (row.what, row["where"], row["from"], row["to"]) == (
        "failover", "db.shard0", "db.shard0.replica0", "db.shard0.replica1")
    assert row.time_s == pytest.approx(a + F, abs=1e-9)
    inst = r.instances().set_index("instance")
    assert inst.loc["db.shard0.replica0", "uptime"] == pytest.approx((a - 10) / 40, abs=1e-9)
    assert inst.loc["db.shard0.replica1", "uptime"] == 1.0


# ------------------------------------------------------------------ 8. partitions and loss


@pytest.mark.parametrize("behaviour", ["hang", "fail"])
def test_partition_hangs_or_fails_fast(behaviour):
    # front (5 ms) calls back (5 ms) with a 100 ms timeout; the link is cut in [20, 30).
    # Calls made in the window (t + 5 ms in [20, 30)) time out after 5 + 100 ms (hang) or fail
    # at once after 5 ms (fail); every other request succeeds in 10 ms.
    a, d = 20.0, 10.0
    arch = (Architecture("p", workload={"rate": 50})
            .add("front", kind="service", workers=1000, service_time="5ms")
            .add("back", kind="service", workers=1000, service_time="5ms")
            .call("front", "back", timeout="100ms"))
    arch = with_faults(arch, {"kind": "partition", "between": ["front", "back"], "at": a,
                              "duration": d, "behaviour": behaviour})
    r = simarch.simulate(arch, duration=30, warmup=10, seed=1)
    call = r.start + 0.005
    cut = (call >= a) & (call < a + d)
    assert cut.sum() > 300
    assert (r.status[~cut] == OK).all()
    np.testing.assert_allclose(r.latency[~cut], 0.010, atol=1e-9)
    if behaviour == "hang":
        assert (r.status[cut] == TIMEOUT).all()
        np.testing.assert_allclose(r.latency[cut], 0.105, atol=1e-9)
    else:
        assert (r.status[cut] == FAILED).all()
        np.testing.assert_allclose(r.latency[cut], 0.005, atol=1e-9)
    # the callee never sees the calls that were cut
    assert r.components().loc["back", "arrivals"] == pytest.approx((~cut).sum(), abs=2)


@pytest.mark.parametrize("behaviour", ["hang", "fail"])
def test_message_loss_fails_a_fraction_p(behaviour):
    # each call is lost independently with p = 0.2: the failed fraction is binomial.
    # N ~ 10 000 requests (50/s x 200 s); SE = sqrt(p(1-p)/N); tolerance 4 SE.
    p = 0.2
    arch = (Architecture("loss", workload={"rate": 50})
            .add("front", kind="service", workers=1000, service_time="5ms")
            .add("back", kind="service", workers=1000, service_time="5ms")
            .call("front", "back", timeout="100ms"))
    arch = with_faults(arch, {"kind": "loss", "between": ["front", "back"], "probability": p,
                              "behaviour": behaviour})
    r = simarch.simulate(arch, duration=200, warmup=5, seed=4)
    n = len(r.status)
    lost = r.status != OK
    assert (r.status[lost] == (TIMEOUT if behaviour == "hang" else FAILED)).all()
    frac = float(lost.mean())
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (frac, n)


# ------------------------------------------------------------------ 9. worker loss, slowdown


def test_worker_loss_halves_concurrency_and_throughput():
    # 20 closed-loop users (think 1 ms) saturate one instance with 4 workers (service 100 ms
    # constant): 4 busy, 40/s. Losing half the workers in [30, 50) leaves 2 busy and 20/s.
    # Work in progress at 30 s finishes (within 100 ms), then at most 2 run at once.
    st, a, d, warm, dur = 0.1, 30.0, 20.0, 10.0, 60.0
    base = (Architecture("wl", workload={"users": 20, "think_time": "1ms"})
            .add("s", kind="service", workers=4, service_time=f"{st}s"))
    r = simarch.simulate(with_faults(base, {"kind": "worker_loss", "target": "s", "fraction": 0.5,
                                            "at": a, "duration": d}),
                         duration=dur, warmup=warm, seed=1)
    assert (r.status == OK).all()
    e = r.end
    s = e - st  # a single FIFO tier: each request is served in the last 100 ms of its stay
    # (requests are recorded when they arrive after the warm-up; those that arrived before it
    # wait up to 20 x 0.1 / 4 = 0.5 s: the first window starts 1 s later)
    for lo, hi, workers in ((warm + 1, a, 4), (a + st, a + d, 2), (a + d, warm + dur, 4)):
        m = (s >= lo) & (e <= hi)
        assert max_overlap(s[m], e[m]) == workers
        # saturated: completions = workers / st per second, up to one batch at the edges
        assert abs(m.sum() - workers / st * (hi - lo)) <= 2 * workers, (lo, hi, m.sum())
    busy = r.components().loc["s", "mean_busy"]
    lo_busy = (4 * (a - warm) + 2 * d + 4 * (warm + dur - a - d)) / dur
    assert lo_busy - 1e-9 <= busy <= lo_busy + 2 * st / dur + 1e-9
    # over the whole run: exactly 2 busy and half the throughput
    whole = simarch.simulate(with_faults(base, {"kind": "worker_loss", "target": "s", "fraction": 0.5}),
                             duration=dur, warmup=warm, seed=1)
    c = whole.components().loc["s"]
    assert c.mean_busy == pytest.approx(2.0, abs=1e-9)
    assert c.throughput_rps == pytest.approx(2 / st, abs=2 / dur)
    full = simarch.simulate(base, duration=dur, warmup=warm, seed=1).components().loc["s"]
    assert c.throughput_rps / full.throughput_rps == pytest.approx(0.5, abs=0.01)


def test_slow_fault_multiplies_and_adds_to_service_time():
    # service 10 ms constant, ample workers: x3 in [30, 40) -> 30 ms; +5 ms in [50, 60) -> 15 ms
    arch = (Architecture("slow", workload={"rate": 20})
            .add("s", kind="service", workers=1000, service_time="10ms"))
    arch = with_faults(arch,
                       {"kind": "slow", "target": "s", "factor": 3, "at": 30, "duration": 10},
                       {"kind": "slow", "target": "s", "add": "5ms", "at": 50, "duration": 10})
    r = simarch.simulate(arch, duration=60, warmup=10, seed=1)
    t = r.start
    x3 = (t >= 30) & (t < 40)
    plus = (t >= 50) & (t < 60)
    assert x3.sum() > 100 and plus.sum() > 100
    np.testing.assert_allclose(r.latency[x3], 0.030, atol=1e-9)
    np.testing.assert_allclose(r.latency[plus], 0.015, atol=1e-9)
    np.testing.assert_allclose(r.latency[~(x3 | plus)], 0.010, atol=1e-9)


# ------------------------------------------------------------------ 10. rate limits, amplification


def test_rate_limit_sheds_the_excess():
    # Poisson arrivals at 100/s, token bucket 50/s.
    # burst 1: a token is taken, the next one is ready 1/r later; the next arrival after that
    # is admitted: admissions form a renewal process with mean gap 1/r + 1/lambda, so the
    # admitted fraction is (1/lambda)/(1/r + 1/lambda) = 1/(1 + rho) = 1/3 (rho = 2), i.e. the
    # M/D/1/1 loss system: 2/3 rejected.
    # burst 20: the bucket is almost never full under overload, so admissions = r T give or
    # take the bucket level (<= burst): about half rejected.
    # N = 5 replications x ~10 000 requests; SE from the replications; tolerance 4 SE.
    lam, rate = 100.0, 50.0
    for burst, expected in ((1, 1 - 1 / (1 + lam / rate)), (20, 1 - rate / lam)):
        arch = (Architecture("rl", workload={"rate": lam})
                .add("s", kind="service", workers=1000, rate_limit={"rate": rate, "burst": burst}))
        fr = []
        for seed in range(5):
            r = simarch.simulate(arch, duration=100, warmup=5, seed=seed)
            assert set(np.unique(r.status)) == {OK, REJECTED}
            assert (r.latency[r.status == REJECTED] == 0).all()
            fr.append(float((r.status == REJECTED).mean()))
            c = r.components().loc["s"]
            assert c.rejected == (r.status == REJECTED).sum()
            if burst == 20:
                assert abs((r.status == OK).sum() - rate * 100) <= burst + 1
        m, se = mean_se(fr)
        assert abs(m - expected) < 4 * se, (burst, m, se, expected)


def test_retries_amplify_the_load_on_the_callee():
    # errors with f = 0.5 and 3 attempts: the callee receives 1 + f + f^2 = 1.75 visits per
    # request offered. N ~ 10 000 requests; SE = sqrt(Var(attempts)/N); tolerance 4 SE.
    f, k = 0.5, 3
    r = simarch.simulate(_retry_design(f, {"attempts": k, "backoff": "none"}),
                         duration=100, warmup=5, seed=5)
    c = r.components()
    back, front = c.loc["back"], c.loc["front"]
    assert back.received_rps > back.offered_rps
    assert back.amplification == pytest.approx(back.received_rps / back.offered_rps, rel=1e-12)
    assert back.offered_rps == pytest.approx(front.received_rps, abs=2 / r.duration)
    assert front.amplification == 1.0
    mean, var = truncated_geometric(f, k)
    n = back.offered_rps * r.duration
    assert mean == pytest.approx(1 + f + f * f, rel=1e-12)
    assert abs(back.amplification - mean) < 4 * math.sqrt(var / n), (back.amplification, mean)


# ------------------------------------------------------------------ 11. cache flush


def test_cache_flush_empties_the_cache():
    # K = 200 uniform keys at 100/s, a cache that holds them all, service times 0: after the
    # warm-up (15 lookups per key) every lookup hits and the datastore sees nothing. A flush at
    # 40 s makes the first lookup of each key miss again: in the w = 2 s after it, each key is
    # looked up with probability p = 1 - exp(-lambda w / K) (Poisson thinning), so the misses
    # are binomial(K, p). Windows are measured by differencing runs of the same seed that
    # end at 38, 40 and 42 s (the runs are identical up to their ends).
    # N = 3 seeds x K keys; SE = sqrt(3 K p (1-p)); tolerance 4 SE.
    K, lam, tf, w, warm = 200, 100.0, 40.0, 2.0, 30.0
    arch = (Architecture("flush", workload={"rate": lam, "requests": {"get": {"keys": {"uniform": K}}}})
            .add("api", kind="service", workers=1000)
            .add("cache", kind="cache", capacity=1000)
            .add("db", kind="datastore", workers=1000)
            .call("api", "cache").call("cache", "db", on="miss"))
    arch = with_faults(arch, {"kind": "cache_flush", "target": "cache", "at": tf})
    misses_after = 0
    for seed in range(3):
        runs = [simarch.simulate(arch, duration=d, warmup=warm, seed=seed)
                for d in (tf - w - warm, tf - warm, tf + w - warm)]
        c = [x.components() for x in runs]
        db_before = c[1].loc["db", "arrivals"] - c[0].loc["db", "arrivals"]
        db_after = c[2].loc["db", "arrivals"] - c[1].loc["db", "arrivals"]
        lookups_after = c[2].loc["cache", "arrivals"] - c[1].loc["cache", "arrivals"]
        assert db_before == 0
        assert c[1].loc["cache", "hit_ratio"] == 1.0
        hit_after = 1 - db_after / lookups_after
        assert hit_after < 0.6  # about 1 - K p / (lambda w) = 0.37
        misses_after += db_after
        f = runs[2].faults()
        assert len(f) == 1 and f.iloc[0].kind == "cache_flush" and f.iloc[0].start_s == tf
        # the flush shows in the time series in the window that contains it (here at its edge)
        ts = runs[2].timeseries("5s")
        assert list(ts.start_s[ts.fault_active]) == [tf]
    p = 1 - math.exp(-lam * w / K)
    n = 3 * K
    assert abs(misses_after - n * p) < 4 * math.sqrt(n * p * (1 - p)), (misses_after, n * p)


# ------------------------------------------------------------------ 12. fallback


def test_fallback_keeps_availability_when_the_cache_dies():
    # api -> cache (hit ratio 0.8, misses go to db) with fallback db. With the cache crashed
    # for the whole run every call falls back to db and still succeeds.
    arch = (Architecture("fb", workload={"rate": 50})
            .add("api", kind="service", workers=100, service_time="2ms")
            .add("cache", kind="cache", hit_ratio=0.8, service_time="1ms")
            .add("db", kind="datastore", workers=100, service_time="5ms")
            .call("api", "cache", fallback="db").call("cache", "db", on="miss"))
    r = simarch.simulate(with_faults(arch, {"kind": "crash", "target": "cache"}),
                         duration=30, warmup=5, seed=1)
    assert len(r.status) > 1000
    assert (r.status == OK).all()
    c = r.calls().iloc[0]
    assert c.edge == "api->cache"
    assert c.fallbacks == c.first_attempts == pytest.approx(len(r.status), abs=2)
    np.testing.assert_allclose(r.latency, 0.002 + 0.005, atol=1e-9)  # api, then db directly
    # a window: only calls made while it is down fall back
    r2 = simarch.simulate(with_faults(arch, {"kind": "crash", "target": "cache", "at": 20, "duration": 10}),
                          duration=30, warmup=5, seed=1)
    assert (r2.status == OK).all()
    inside = int(((r2.start + 0.002 >= 20) & (r2.start + 0.002 < 30)).sum())
    assert abs(r2.calls().iloc[0].fallbacks - inside) <= 2


# ------------------------------------------------------------------ 13. single points of failure


def _three_tier(lb: dict | None = None, api: dict | None = None, db: dict | None = None,
                **call) -> Architecture:
    return (Architecture("spof", workload={"rate": 20})
            .add("lb", kind="load_balancer", **(lb or {}))
            .add("api", kind="service", workers=8, service_time="5ms", **({"instances": 2} | (api or {})))
            .add("db", kind="datastore", workers=8, service_time="2ms", **(db or {}))
            .call("lb", "api").call("api", "db", **call))


def test_static_spof_single_lb_and_db():
    rep = simarch.spof(_three_tier(), dynamic=False)
    st = rep.static
    assert sorted(rep.spofs) == ["db", "lb"]
    assert st.loc["api", "redundant"] and not st.loc["api", "spof"]
    assert st.loc["db", "critical_for"] == "default"
    assert rep.dynamic is None and rep.zone_spofs == []


def test_static_spof_redundant_design_has_none():
    arch = _three_tier(lb={"instances": 2}, api={"instances": 3},
                       db={"replicas": 2, "failover": "10s"})
    rep = simarch.spof(arch, dynamic=False)
    assert rep.spofs == []
    assert rep.static.redundant.all()
    # replicas without failover, or a single replica, are single points of failure
    assert simarch.spof(_three_tier(lb={"instances": 2}, db={"replicas": 2, "failover": None}),
                        dynamic=False).spofs == ["db"]
    assert simarch.spof(_three_tier(lb={"instances": 2}, db={"replicas": 1}), dynamic=False).spofs == ["db"]
    # one api instance is one
    assert simarch.spof(arch.with_changes({"api.instances": 1}), dynamic=False).spofs == ["api"]


def test_static_spof_fallback_and_queues():
    # a fallback takes the callee off the critical path
    arch = (Architecture("fb", workload={"rate": 20})
            .add("lb", kind="load_balancer", instances=2)
            .add("api", kind="service", instances=2)
            .add("cache", kind="cache", hit_ratio=0.9)
            .add("db", kind="datastore", replicas=2)
            .call("lb", "api").call("api", "cache", fallback="db").call("cache", "db", on="miss"))
    st = simarch.spof(arch, dynamic=False).static
    assert st.loc["cache", "critical_for"] == "" and not st.loc["cache", "spof"]
    assert st.loc["db", "critical_for"] == "default"
    no_fb = simarch.spof(arch.with_changes({"calls.1.fallback": None}), dynamic=False)
    assert no_fb.static.loc["cache", "spof"]  # one instance, now on the path
    # a queue called synchronously is a single point of failure; asynchronously it is not
    # on the critical path at all
    def with_queue(mode: str) -> Architecture:
        return (Architecture("q", workload={"rate": 20})
                .add("lb", kind="load_balancer", instances=2)
                .add("api", kind="service", instances=2)
                .add("q", kind="queue")
                .add("worker", kind="service")
                .call("lb", "api").call("api", "q", mode=mode).call("q", "worker"))
    sync = simarch.spof(with_queue("call"), dynamic=False)
    assert sync.spofs == ["q"]
    asyn = simarch.spof(with_queue("async"), dynamic=False)
    assert asyn.spofs == []
    assert asyn.static.loc["q", "critical_for"] == ""
    assert asyn.static.loc["worker", "critical_for"] == ""


def test_zone_spof():
    redundant = dict(lb={"instances": 2}, api={"instances": 2}, db={"replicas": 2})
    spread = _three_tier(**{k: v | {"zone": ["a", "b"]} for k, v in redundant.items()})
    rep = simarch.spof(spread, dynamic=False)
    assert rep.spofs == [] and rep.zone_spofs == []
    assert sorted(rep.zones.index) == ["a", "b"]
    # all api instances in zone a: zone a takes the service down
    one_zone = spread.with_changes({"api.zone": "a"})
    rep = simarch.spof(one_zone, dynamic=False)
    assert rep.spofs == [] and rep.zone_spofs == ["a"]
    assert rep.zones.loc["a", "critical_for"] == "api"
    # a datastore whose replicas share a zone
    rep = simarch.spof(spread.with_changes({"db.zone": "b"}), dynamic=False)
    assert rep.zone_spofs == ["b"] and rep.zones.loc["b", "critical_for"] == "db"
    frame = rep.to_frame()
    assert set(frame[frame.what == "zone"].index) == {"a", "b"}


def test_dynamic_spof_ranks_the_single_points_first():
    # single lb and db, 2 api instances behind health checks (200 ms, unhealthy after 1).
    # Crashing the lb or the db fails every request of the 5 s window; crashing one api
    # instance loses only the requests routed to it before the next check: on average half
    # of lambda x 0.1 s ~ 1 request of ~100. Dynamic runs: window 5 s, warm-up 2 s.
    arch = _three_tier(lb={"health_check": {"interval": "200ms", "unhealthy_after": 1,
                                            "healthy_after": 1}})
    rep = simarch.spof(arch, window="5s", warmup="2s")
    dyn = rep.dynamic
    assert list(dyn.index[:2]) in (["lb", "db"], ["db", "lb"])
    assert dyn.index[-1] == "api"
    assert (dyn.loc[["lb", "db"], "availability_during"] == 0).all()
    # the db recovers at once; the entry lb comes back into rotation at its next passed
    # health check (<= 200 ms of the 2.5 s after-window)
    assert dyn.loc["db", "availability_after"] == 1
    assert dyn.loc["lb", "availability_after"] >= 1 - 0.2 / 2.5
    assert (dyn.requests_during > 50).all()
    assert dyn.loc["api", "availability_during"] >= 0.9
    assert rep.baseline["availability"] == 1.0
    frame = rep.to_frame()
    assert frame.index[-1] == "api" and bool(frame.loc["lb", "spof"])


# ------------------------------------------------------------------ 14. determinism


def test_faults_are_deterministic_per_seed():
    arch = (Architecture("det", workload={"rate": 50})
            .add("lb", kind="load_balancer",
                 health_check={"interval": "1s", "unhealthy_after": 1, "healthy_after": 1})
            .add("api", kind="service", instances=2, workers=8, service_time={"exponential": "5ms"})
            .add("db", kind="datastore", replicas=2, failover="2s", workers=8,
                 service_time={"lognormal": {"median": "2ms", "p99": "30ms"}})
            .call("lb", "api")
            .call("api", "db", timeout="100ms", hedge={"after": "10ms"},
                  retries={"attempts": 3, "backoff": "full_jitter", "base": "5ms"}))
    arch = with_faults(arch,
                       {"kind": "random", "target": "api", "mtbf": {"exponential": "5s"},
                        "mttr": {"exponential": "1s"}},
                       {"kind": "random", "target": "db", "mtbf": {"exponential": "8s"},
                        "mttr": {"exponential": "2s"}},
                       {"kind": "errors", "target": "db", "probability": 0.1})
    a = simarch.simulate(arch, duration=60, warmup=5, seed=7)
    b = simarch.simulate(arch, duration=60, warmup=5, seed=7)
    c = simarch.simulate(arch, duration=60, warmup=5, seed=8)
    for field in ("start", "end", "cls", "status"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.components().equals(b.components())
    assert a.faults().equals(b.faults()) and a.events().equals(b.events())
    assert a.calls().equals(b.calls())
    assert a.to_dict() == b.to_dict()
    # the run exercised what it is meant to
    calls = a.calls().iloc[0]
    assert calls.retries > 0 and calls.hedges > 0
    assert len(a.faults()) > 10 and (a.status != OK).any()
    # another seed: other failures, other numbers
    assert not a.faults().equals(c.faults())
    assert len(a.start) != len(c.start) or not np.array_equal(a.status, c.status)
