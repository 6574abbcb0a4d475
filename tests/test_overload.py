"""Overload control: request priorities, queue disciplines, concurrency limits, deadline
propagation and cancellation (``simarch.runtime.overload``).

The statistical checks (marked ``slow``) run independent replications with distinct seeds;
each states its N (replications x measured window), the standard error SE of the mean of the
per-replication estimates (``std(ddof=1) / sqrt(R)``) and passes within 4 SE, and requires
the tolerance to be sharp enough to tell the mechanism from plain FIFO.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import SpecError
from simarch.run.simulation import Simulation
from simarch.runtime.overload import PriorityPool
from simarch.runtime.pools import Pool

K_SE = 4.0


def _se(x: np.ndarray) -> np.ndarray:
    return x.std(axis=0, ddof=1) / math.sqrt(len(x))


# ----------------------------------------------------------------------------- spec


def test_priority_is_a_field_of_request_classes():
    a = simarch.Architecture("p", workload={"rate": 1, "requests": {"a": {"priority": "critical"}, "b": {}}})
    a.add("s", kind="service")
    reqs = a.spec.workload.requests
    assert reqs["a"].priority == "critical" and reqs["a"].rank == 0
    assert reqs["b"].priority == "default" and reqs["b"].rank == 1


def test_unknown_priority_names_the_field():
    with pytest.raises(SpecError, match=r"workload\.requests\.a\.priority"):
        simarch.Architecture("p", workload={"rate": 1, "requests": {"a": {"priority": "urgent"}}}) \
            .add("s", kind="service").spec  # noqa: B018


def test_discipline_shorthand_and_errors():
    a = simarch.Architecture("d", workload={"rate": 1}).add("s", kind="service", discipline="codel")
    d = a.spec.components["s"].discipline
    assert (d.type, d.target, d.interval) == ("codel", 0.005, 0.1)
    a = simarch.Architecture("d", workload={"rate": 1}).add(
        "s", kind="service", discipline={"type": "adaptive_lifo", "target": "20ms"})
    assert a.spec.components["s"].discipline.target == pytest.approx(0.02)
    with pytest.raises(SpecError, match=r"components\.s\.discipline: unknown queue discipline 'lifoo' "
                                        r"\(did you mean 'lifo'"):
        simarch.Architecture("d", workload={"rate": 1}).add("s", kind="service", discipline="lifoo")
    with pytest.raises(SpecError, match=r"components\.lb.*'discipline' orders the wait for 'connections'"):
        simarch.Architecture("d", workload={"rate": 1}).add("lb", kind="load_balancer", discipline="lifo")


def test_concurrency_limit_errors():
    def svc(cl):
        return simarch.Architecture("c", workload={"rate": 1}).add("s", kind="service", concurrency_limit=cl)
    with pytest.raises(SpecError, match=r"components\.s\.concurrency_limit: give either 'limit'"):
        svc({})
    with pytest.raises(SpecError, match=r"concurrency_limit: give either 'limit'"):
        svc({"limit": 4, "adaptive": "aimd"})
    with pytest.raises(SpecError, match=r"concurrency_limit: 'min' \(5\) must be at most 'max' \(2\)"):
        svc({"adaptive": "aimd", "min": 5, "max": 2})
    with pytest.raises(SpecError, match=r"concurrency_limit\.adaptive"):
        svc({"adaptive": "vegas"})
    assert svc({"adaptive": "gradient"}).spec.components["s"].concurrency_limit.start == 50


def test_deadline_and_cancel_need_a_timeout():
    def call(**kw):
        return (simarch.Architecture("c", workload={"rate": 1}).add("a", kind="service")
                .add("b", kind="service").call("a", "b", **kw))
    with pytest.raises(SpecError, match=r"calls\.0: 'deadline: propagate' passes the caller's timeout"):
        call(deadline="propagate")
    with pytest.raises(SpecError, match=r"calls\.0: 'cancel: true' stops the callee's work"):
        call(cancel=True)
    call(cancel=True, hedge={"after": "10ms"})
    call(deadline="propagate", timeout="1s")


def test_plain_designs_keep_plain_pools():
    """Without priorities, disciplines or deadlines, every pool is the plain FIFO Pool."""
    a = (simarch.Architecture("plain", workload={"rate": 1}).add("s", kind="service", queue=3)
         .add("b", kind="service").call("s", "b", timeout="1s"))
    assert all(type(p) is Pool for p in Simulation(a, duration=1, warmup=0, seed=1).pools)
    a = a.with_changes({"workload": {"rate": 1, "requests": {"x": {"priority": "sheddable"}}}})
    assert all(type(p) is PriorityPool for p in Simulation(a, duration=1, warmup=0, seed=1).pools)


# ----------------------------------------------------------------------------- 1. priorities

THREE = {"crit": {"weight": 0.2, "priority": "critical"}, "norm": {"weight": 0.4},
         "bulk": {"weight": 0.4, "priority": "sheddable"}}


def test_a_full_queue_sheds_the_lowest_priority_first():
    """2 workers, 4 places to wait, offered 4x their capacity: a critical arrival at a full
    queue takes the place of the newest sheddable (else default) waiter, so critical requests
    (0.8 workers' worth of load) are almost never rejected, and sheddable ones most often;
    the per-class summary counts each class's rejections, the component its evictions."""
    a = simarch.Architecture("shed", workload={"rate": 40, "requests": THREE})
    a.add("s", kind="service", workers=2, queue=4, service_time={"exponential": "100ms"})
    r = simarch.simulate(a, duration=100, warmup=5, seed=1)
    s = r.summary()
    share = s["rejected"] / s["requests"]
    assert share["crit"] < 0.05 < share["norm"] < share["bulk"], share.to_dict()
    # (a waiter that arrived in the warm-up and was evicted after it counts at the component only)
    assert abs(s.loc["all", "rejected"] - r.components().loc["s", "rejected"]) <= 5
    assert r.components().loc["s", "evicted"] > 0


def test_a_rate_limit_keeps_tokens_for_higher_priorities():
    """A token bucket of 10/s (burst 8) offered 30/s, 5/s of them critical: sheddable
    requests need half the burst banked, default ones a quarter, critical ones one token."""
    reqs = {"crit": {"weight": 1, "priority": "critical"}, "norm": {"weight": 2},
            "bulk": {"weight": 3, "priority": "sheddable"}}
    a = simarch.Architecture("rl", workload={"rate": 30, "requests": reqs})
    a.add("s", kind="service", workers=100, rate_limit={"rate": 10, "burst": 8},
          service_time={"exponential": "10ms"})
    s = simarch.simulate(a, duration=100, warmup=5, seed=1).summary()
    share = s["rejected"] / s["requests"]
    assert share["crit"] < 0.15 and share["norm"] < share["bulk"] and share["bulk"] > 0.9, share.to_dict()


def _cobham(lam: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Cobham's mean waits of M/G/1 with non-preemptive priorities, classes in priority order:
    W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k)), W0 = sum_i lambda_i E[S_i^2] / 2, sigma_k
    the load of classes 1..k."""
    w0 = float((lam * m2).sum()) / 2
    sig = np.cumsum(lam * m1)
    prev = np.concatenate([[0.0], sig[:-1]])
    return w0 / ((1 - prev) * (1 - sig))


@pytest.mark.slow
def test_cobham_mean_wait_per_priority_class():
    """M/G/1 with three non-preemptive priority classes, one worker. critical: exponential,
    mean 0.5 s, 0.4/s; default: constant 1 s, 0.3/s; sheddable: gamma mean 1.5 s, cv 0.5,
    0.2/s (rho 0.2 + 0.3 + 0.3 = 0.8). Cobham: W = 0.664, 1.328, 5.313 s (FIFO would give
    3.32 s to all). The mean wait of a class in a replication is its mean residence time at
    the service minus its mean service time. N = 20 replications x 20,000 s (~18k requests
    each), 500 s warm-up; |mean - W| <= 4 SE per class (SE about 0.6%, 0.7% and 2.3% of W)."""
    reqs = {"hi": {"weight": 0.4, "priority": "critical"}, "mid": {"weight": 0.3},
            "lo": {"weight": 0.2, "priority": "sheddable"}}
    a = simarch.Architecture("cobham", workload={"rate": 0.9, "requests": reqs})
    a.add("s", kind="service", workers=1, service_time={
        "hi": {"exponential": "0.5s"}, "mid": {"constant": "1s"}, "lo": {"gamma": {"mean": "1.5s", "cv": 0.5}}})
    lam = np.array([0.4, 0.3, 0.2])
    m1 = np.array([0.5, 1.0, 1.5])
    m2 = np.array([2 * 0.5 ** 2, 1.0, 1.5 ** 2 * 1.25])
    theory = _cobham(lam, m1, m2)
    est = []
    for i in range(20):
        r = simarch.simulate(a, duration=20_000, warmup=500, seed=4_100 + i)
        cl = r.component_latency().set_index("class")
        est.append(cl.loc[["hi", "mid", "lo"], "mean_ms"].to_numpy() / 1e3 - m1)
    x = np.array(est)
    mean, se = x.mean(axis=0), _se(x)
    msg = f"sim {mean} vs Cobham {theory}, SE {se} (R=20 x 20,000 s)"
    print(msg)
    assert np.all(np.abs(mean - theory) <= K_SE * se), msg
    assert np.all(K_SE * se < 0.15 * theory), msg  # sharp enough to tell from FIFO's 3.32 s


# ----------------------------------------------------------------------------- 2. disciplines


def _mm1(discipline, rate=0.5, **kw) -> simarch.Architecture:
    a = simarch.Architecture("mm1", workload={"rate": rate})
    return a.add("s", kind="service", workers=1, service_time={"exponential": "1s"},
                 discipline=discipline, **kw)


def test_adaptive_lifo_is_fifo_below_its_target_and_lifo_above():
    """With a target no wait reaches, adaptive LIFO serves exactly as FIFO (the same run,
    request for request); with a target every wait exceeds, exactly as LIFO."""
    def lat(d):
        return simarch.simulate(_mm1(d, 0.8), duration=2_000, warmup=0, seed=3).latency
    fifo, lifo = lat("fifo"), lat("lifo")
    assert not np.array_equal(fifo, lifo)
    assert np.array_equal(lat({"type": "adaptive_lifo", "target": "1000000s"}), fifo)
    assert np.array_equal(lat({"type": "adaptive_lifo", "target": "1us"}), lifo)


@pytest.mark.slow
def test_mm1_lifo_same_mean_wait_larger_second_moment():
    """M/M/1, lambda = 0.5, mu = 1 (rho = 0.5), FIFO against non-preemptive LIFO. The wait is
    0 with probability 1 - rho; else under FIFO Exp(mu - lambda), and under LIFO a busy period
    (started by the residual service of the job in service, Exp(mu)), so E[W] = rho / (mu -
    lambda) = 1 s under both, E[W^2] = 2 rho / (mu - lambda)^2 = 4 s^2 under FIFO and
    E[W^2] = rho E[S^2] / (1 - rho)^3 = 8 s^2 under LIFO. The response R = W + S, S ~ Exp(1)
    independent of W: E[R] = 2 s, E[R^2] = E[W^2] + 2 E[W] E[S] + E[S^2] = 8 and 12 s^2.
    N = 10 replications x 40,000 s (~20k requests each) per discipline, 4 SE."""
    out = {}
    for d in ("fifo", "lifo"):
        m1, m2, p99 = [], [], []
        for i in range(10):
            lat = simarch.simulate(_mm1(d), duration=40_000, warmup=200, seed=5_200 + i).latency
            m1.append(lat.mean())
            m2.append((lat * lat).mean())
            p99.append(np.quantile(lat, 0.99))
        out[d] = np.array(m1), np.array(m2), np.array(p99)
    for d, er2 in (("fifo", 8.0), ("lifo", 12.0)):
        m1, m2, _ = out[d]
        msg = (f"{d}: E[R] {m1.mean():.4g} (SE {_se(m1):.3g}) vs 2, E[R^2] {m2.mean():.4g} "
               f"(SE {_se(m2):.3g}) vs {er2} (R=10 x 40,000 s)")
        print(msg)
        assert abs(m1.mean() - 2.0) <= K_SE * _se(m1), msg
        assert abs(m2.mean() - er2) <= K_SE * _se(m2), msg
        assert K_SE * _se(m2) < 2.0, msg  # sharp enough to tell 8 from 12
    assert out["lifo"][2].mean() > out["fifo"][2].mean(), "LIFO's p99 should exceed FIFO's"


def test_codel_bounds_the_wait_of_served_requests_under_overload():
    """rho = 1.5 at one worker (exponential 10 ms): under FIFO the queue grows without bound,
    under CoDel (target 5 ms, interval 100 ms) a waiter that reaches the head having waited
    more than 5 ms while the queue is congested is dropped, so the served requests' mean
    sojourn stays within target + service (<= 5 + 10 ms), and the drops show as rejections.
    (A target below the service time leaves the worker idle at times: utilisation ~0.75.)"""
    def arch(discipline):
        return (simarch.Architecture("codel", workload={"rate": 150})
                .add("s", kind="service", workers=1, service_time={"exponential": "10ms"},
                     discipline=discipline))
    r = simarch.simulate(arch({"type": "codel", "target": "5ms", "interval": "100ms"}),
                         duration=60, warmup=5, seed=11)
    ok = r.latency[r.status == 0]
    c = r.components().loc["s"]
    assert 0.010 < ok.mean() <= 0.015, ok.mean()
    # a served request waited at most the target (but in short lulls of the overload, when
    # CoDel leaves its congested state): sojourns beyond target + the p99 of the service are rare
    assert (ok > 0.005 + 0.046).mean() < 0.05
    assert c["codel_dropped"] > 0.25 * c["arrivals"] and c["utilization"] > 0.6
    fifo = simarch.simulate(arch("fifo"), duration=60, warmup=5, seed=11)
    assert fifo.latency.mean() > 1.0  # the queue grows without bound


# ----------------------------------------------------------------------------- 3. concurrency limits


def _erlang_b(c: int, a: float) -> float:
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


@pytest.mark.slow
def test_static_concurrency_limit_is_an_erlang_loss_system():
    """A static limit of 4 on an instance of 4 workers with an unbounded queue: no request
    ever waits, an arrival finding 4 in flight is rejected, so the instance is M/M/4/4 and
    the rejected share is Erlang B(4, a = 3) = 0.2061. lambda = 3/s, E[S] = 1 s exponential;
    N = 10 replications x 3,000 s (~9k requests each); 4 SE."""
    a = (simarch.Architecture("loss", workload={"rate": 3.0})
         .add("s", kind="service", workers=4, service_time={"exponential": "1s"},
              concurrency_limit={"limit": 4}))
    share = []
    for i in range(10):
        r = simarch.simulate(a, duration=3_000, warmup=100, seed=6_300 + i)
        s = r.summary().loc["all"]
        share.append(s["rejected"] / s["requests"])
        assert r.components().loc["s", "max_queue"] == 0
    x = np.array(share)
    theory = _erlang_b(4, 3.0)
    msg = f"rejected share {x.mean():.4f} (SE {_se(x):.4f}) vs Erlang B {theory:.4f} (R=10 x 3,000 s)"
    print(msg)
    assert abs(x.mean() - theory) <= K_SE * _se(x), msg
    assert K_SE * _se(x) < 0.1 * theory, msg


def test_aimd_limit_settles_below_saturation_under_overload():
    """Offered twice the capacity of 4 workers (exponential 10 ms), with an unbounded queue:
    without a limit the queue (and the latency) grows without bound. An AIMD limit (start 10,
    max 200, a drop when an answer takes over 50 ms) climbs while answers are fast and backs
    off once queueing pushes them past 50 ms, so it settles far below its maximum, near the
    in-flight count at which the latency is 50 ms (4 + 400/s x 50 ms = 24), goodput stays at
    the capacity, and the limit's changes are in the events."""
    def arch(**kw):
        return (simarch.Architecture("aimd", workload={"rate": 800})
                .add("s", kind="service", workers=4, service_time={"exponential": "10ms"}, **kw))
    r = simarch.simulate(arch(concurrency_limit={"adaptive": "aimd", "initial": 10, "max": 200,
                                                 "timeout": "50ms"}), duration=20, warmup=2, seed=1)
    ev = r.events()
    lim = ev[(ev["what"] == "concurrency_limit") & (ev["time_s"] > 8)]["to"]
    assert len(lim) > 20 and 10 < lim.mean() < 60 and lim.max() < 100, lim.describe()
    s = r.summary().loc["all"]
    assert s["completed"] - s["rejected"] > 0.9 * 400 * 20  # goodput at the capacity
    assert s["p99_ms"] < 250 and r.components().loc["s", "limit_rejected"] == s["rejected"]
    free = simarch.simulate(arch(), duration=20, warmup=2, seed=1)
    assert free.summary().loc["all", "p99_ms"] > 5_000


def test_gradient_limit_tracks_the_no_load_latency():
    """The gradient limit (start 50) cuts itself when the mean answer time in a window grows
    past twice the least seen, so under 2x overload it settles near what keeps the latency at
    about twice the service time: far below its start, with goodput at the capacity."""
    a = (simarch.Architecture("grad", workload={"rate": 800})
         .add("s", kind="service", workers=4, service_time={"exponential": "10ms"},
              concurrency_limit={"adaptive": "gradient"}))
    r = simarch.simulate(a, duration=20, warmup=2, seed=1)
    ev = r.events()
    lim = ev[ev["time_s"] > 8]["to"]
    assert 4 <= lim.mean() < 30, lim.describe()
    s = r.summary().loc["all"]
    assert s["completed"] - s["rejected"] > 0.9 * 400 * 20
    assert s["mean_ms"] < 60


# ----------------------------------------------------------------------------- 4. deadlines


def _deadline_arch(**kw) -> simarch.Architecture:
    return (simarch.Architecture("dl", workload={"rate": 150})
            .add("front", kind="service", workers=1000)
            .add("back", kind="service", workers=1, service_time={"exponential": "10ms"})
            .call("front", "back", timeout="100ms", **kw))


def _back_work(r: simarch.Result) -> tuple[float, float, float]:
    """From the hop records: the back end's service time in all, the part begun after the
    caller had given up (the visit waited more than the 100 ms timeout: the call has no
    network latency, so the caller's deadline is the visit's arrival + 100 ms), and the part
    done after the deadline by services begun before it."""
    h = r.hops
    rows = h.rows
    back = h.components.index("back")
    visit = (h.kind() == 0) & (h.component_of() == back)
    arrive, start, served = rows[visit, 3], rows[visit, 4], rows[visit, 5]
    work = served - start
    late = start - arrive > 0.1
    overlap = np.clip(served - np.maximum(start, arrive + 0.1), 0, None)
    return float(work.sum()), float(work[late].sum()), float(overlap[~late].sum())


def test_a_propagated_deadline_drops_requests_whose_caller_gave_up():
    """The back end (one worker, exponential 10 ms) is offered 1.5x its capacity through a
    call with a 100 ms timeout. Without propagation its queue grows without bound, it serves
    only requests whose caller has timed out (wasted work ~100%) and goodput is 0. With
    ``deadline: propagate`` a waiter whose deadline has passed is dropped when it reaches the
    head: no service begins after the caller gave up, goodput rises to over half the
    capacity, and the drops are counted at the component."""
    plain = simarch.simulate(_deadline_arch(), duration=30, warmup=5, seed=2, hops=True)
    prop = simarch.simulate(_deadline_arch(deadline="propagate"), duration=30, warmup=5, seed=2, hops=True)
    work, late, _ = _back_work(plain)
    assert late > 0.95 * work and (plain.status == 0).sum() == 0
    work, late, overlap = _back_work(prop)
    assert late == 0.0 and overlap < 0.5 * work
    assert (prop.status == 0).sum() / 30 > 50
    c = prop.components().loc["back"]
    assert c["deadline_dropped"] > 0.2 * c["arrivals"] and c["utilization"] > 0.95


# ----------------------------------------------------------------------------- 5. cancellation


def test_cancel_stops_the_callee_work_of_a_timed_out_call():
    """The overloaded back end of the deadline test, with ``cancel: true``: a call that times
    out takes its request off the back end's queue, or stops its service and frees the
    worker, so no work is wasted on callers that gave up and goodput reaches the capacity
    (100/s); cancelled visits are counted, and leave no hop row."""
    r = simarch.simulate(_deadline_arch(cancel=True), duration=30, warmup=5, seed=2, hops=True)
    work, late, overlap = _back_work(r)
    assert late == 0.0 and overlap == 0.0
    assert (r.status == 0).sum() / 30 > 90
    c = r.components().loc["back"]
    assert c["cancelled"] > 0.2 * c["arrivals"] and c["mean_queue"] < 20
    assert c["throughput_rps"] <= 101  # cancelled visits are not answers


def test_cancel_stops_the_losing_copies_of_a_hedged_call():
    """A hedge after 15 ms on a 4-worker service (exponential 10 ms, 60% busy): without
    ``cancel`` the losing copy runs to the end and adds its whole service to the load; with
    it the loser stops when the winner answers, so the callee is less busy, and the calls
    table counts the cancelled copies. No worker is leaked: the pools drain."""
    def arch(**kw):
        return (simarch.Architecture("hedge", workload={"rate": 240})
                .add("front", kind="service", workers=1000)
                .add("back", kind="service", workers=4, service_time={"exponential": "10ms"})
                .call("front", "back", hedge={"after": "15ms"}, **kw))
    plain = simarch.simulate(arch(), duration=30, warmup=2, seed=4)
    cut = simarch.simulate(arch(cancel=True), duration=30, warmup=2, seed=4)
    assert cut.calls()["cancelled"].iloc[0] > 0
    busy_plain = plain.components().loc["back", "mean_busy"]
    busy_cut = cut.components().loc["back", "mean_busy"]
    assert busy_cut < busy_plain - 0.05, (busy_cut, busy_plain)
    assert cut.summary().loc["all", "availability"] > 0.999


# ----------------------------------------------------------------------------- analyses


def test_static_models_name_what_they_leave_out():
    """The queueing model and the capacity estimate run on a design with every overload
    field, and the queueing model says which of them it does not model."""
    a = simarch.Architecture("an", workload={"rate": 50, "requests": {"a": {"priority": "critical"}, "b": {}}})
    a.add("lb", kind="load_balancer", connections=10, discipline="lifo")
    a.add("s", kind="service", workers=2, queue=10, discipline="codel", rate_limit={"rate": 100, "burst": 10},
          concurrency_limit={"adaptive": "aimd"}, service_time={"exponential": "10ms"})
    a.add("b", kind="service", workers=2, service_time={"exponential": "5ms"})
    a.call("lb", "s").call("s", "b", timeout="100ms", deadline="propagate", cancel=True)
    warnings = " | ".join(simarch.analyze(a).warnings)
    for what in ("request priorities not modelled", "s: queue discipline codel", "lb: queue discipline lifo",
                 "s: concurrency limit not modelled", "s -> b: deadline propagation and cancel"):
        assert what in warnings, warnings
    assert "aimd concurrency limit" in simarch.capacity_report(a).table.loc["s", "note"]
    assert simarch.simulate(a, duration=2, warmup=0, seed=1).summary().loc["all", "availability"] > 0.99


def test_cancelled_requests_leave_the_concurrency_limit():
    """A cancelled request no longer counts as in flight: after a run in which many calls to
    a limited service were cancelled, each instance's in-flight count is exactly what waits
    or is served there."""
    a = (simarch.Architecture("cl", workload={"rate": 300})
         .add("front", kind="service", workers=1000)
         .add("back", kind="service", workers=2, service_time={"exponential": "10ms"},
              concurrency_limit={"limit": 8})
         .call("front", "back", timeout="30ms", cancel=True))
    sim = Simulation(a, duration=10, warmup=0, seed=3)
    r = sim.run()
    back = sim.components["back"]
    assert r.components().loc["back", "cancelled"] > 100
    for pool, lim in back.limiters.items():
        assert lim.inflight == pool.load == pool.n + len(pool.waiters)


def test_priority_queues_survive_faults_and_other_kinds():
    """Priority queues with a discipline on a load balancer, a cache and a service, through a
    crash and a worker loss: every pool's counts stay consistent (its load is what is in
    service plus what waits) and requests keep being answered."""
    a = simarch.Architecture("kinds", workload={"rate": 300, "requests": {
        "a": {"weight": 1, "priority": "critical", "keys": {"uniform": 100}},
        "b": {"weight": 2, "priority": "sheddable", "keys": {"uniform": 100}}}})
    a.add("lb", kind="load_balancer", connections=8, queue=20, discipline="lifo")
    a.add("cache", kind="cache", hit_ratio=0.5, workers=4, queue=10, discipline="adaptive_lifo",
          service_time={"exponential": "1ms"})
    a.add("api", kind="service", instances=2, workers=2, queue=10, discipline="codel",
          service_time={"exponential": "5ms"})
    a.call("lb", "cache").call("cache", "api", on="miss")
    a = a.with_changes({"faults": [{"kind": "crash", "target": "api", "instances": 1, "at": "2s", "duration": "1s"},
                                   {"kind": "worker_loss", "target": "cache", "fraction": 0.5, "at": "3s",
                                    "duration": "1s"}]})
    sim = Simulation(a, duration=6, warmup=0, seed=5)
    r = sim.run()
    assert all(type(p) is PriorityPool for p in sim.pools)
    for p in sim.pools:
        assert p.load == p.n + len(p.waiters) and p.n <= p.workers
    assert r.summary().loc["a", "availability"] > r.summary().loc["b", "availability"] - 0.05
    assert r.summary().loc["all", "completed"] > 1000
