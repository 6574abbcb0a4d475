"""Behaviour of the engine: exact traces for deterministic cases, and statistical checks of
routing, caches, shards, queues and workloads.

Statistical tolerances are 4 standard errors; each test states N and the SE it uses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import Architecture
from simarch.model.keys import key_probabilities, shard_of_keys
from simarch.model.spec import KeysSpec
from simarch.model.status import Status


def closed(users: int, think: str | dict, **kw) -> Architecture:
    return Architecture("t", workload={"users": users, "think_time": think, **kw})


# ------------------------------------------------------------------ exact traces


def test_single_user_trace_is_exact():
    # think 1s, service 0.25s: requests start at 1, 2.25, 3.5, ... (period 1.25 s)
    arch = closed(1, "1s").add("s", kind="service", service_time="250ms")
    r = simarch.simulate(arch, duration="10s", warmup=0, seed=1)
    starts = 1 + 1.25 * np.arange(8)
    # the request started at 9.75 ends at exactly 10.0, the end of the run: still in flight
    np.testing.assert_allclose(r.start, starts[:7])
    np.testing.assert_allclose(r.latency, 0.25)
    s = r.summary().loc["all"]
    assert s["requests"] == 8 and s["completed"] == 7 and s["in_flight"] == 1


def test_synchronous_call_holds_the_callers_worker():
    # two users, no think time to speak of; front (1 worker, 0.5 s) calls back (1 s).
    # The front's worker is held 1.5 s per request, so it is always busy; the back is busy
    # 1 s in every 1.5 s; each request waits for the other: latency 3 s in steady state.
    arch = (closed(2, "1us").add("front", kind="service", workers=1, service_time="500ms")
            .add("back", kind="service", workers=1, service_time="1s").call("front", "back"))
    r = simarch.simulate(arch, duration="300s", warmup="30s", seed=1)
    c = r.components()
    assert c.loc["front", "utilization"] == pytest.approx(1.0, abs=1e-9)
    assert c.loc["back", "utilization"] == pytest.approx(2 / 3, abs=0.01)  # edge effects only
    assert np.allclose(r.latency, 3.0, atol=1e-5)


def test_forward_releases_the_worker_before_the_next_hop():
    # same chain with mode forward: the front holds its worker only for its own 0.5 s
    arch = (closed(2, "1us").add("front", kind="service", workers=1, service_time="500ms")
            .add("back", kind="service", workers=1, service_time="1s")
            .call("front", "back", mode="forward"))
    r = simarch.simulate(arch, duration="300s", warmup="30s", seed=1)
    c = r.components()
    # the back is the bottleneck (1 s per request, always busy); the front is busy half the time
    assert c.loc["back", "utilization"] == pytest.approx(1.0, abs=1e-9)
    assert c.loc["front", "utilization"] == pytest.approx(0.5, abs=0.01)


def test_bounded_queue_rejects_the_excess():
    # one worker, no waiting room, 3 users with 0.1 s think and 1 s service:
    # whoever arrives while the worker is busy is rejected at once
    arch = closed(3, "100ms").add("s", kind="service", workers=1, queue=0, service_time="1s")
    r = simarch.simulate(arch, duration="100s", warmup="10s", seed=1)
    s = r.summary().loc["all"]
    assert s["rejected"] > 0
    assert s["availability"] < 1
    assert (r.latency[r.status == Status.REJECTED] == 0).all()
    assert r.components().loc["s", "max_queue"] == 0


def test_timeout_fails_the_request_and_the_callee_keeps_working():
    # front calls back (2 s) with a 0.5 s timeout: every request times out after 0.1 + 0.5 s
    arch = (closed(1, "5s").add("front", kind="service", workers=4, service_time="100ms")
            .add("back", kind="service", workers=4, service_time="2s")
            .call("front", "back", timeout="500ms"))
    r = simarch.simulate(arch, duration="100s", warmup="10s", seed=1)
    assert (r.status == Status.TIMEOUT).all() and len(r.status) > 10
    np.testing.assert_allclose(r.latency, 0.6, atol=1e-9)
    s = r.summary().loc["all"]
    assert s["timeout"] == s["completed"] and s["availability"] == 0
    # the back still did 2 s of work per request: busy ~ 2 s per 5.6 s cycle
    assert r.components().loc["back", "mean_busy"] == pytest.approx(2 / 5.6, rel=0.05)


def test_parallel_fanout_waits_for_the_slowest_call():
    def design(fanout: str) -> Architecture:
        return (closed(1, "10s").add("a", kind="service", service_time="100ms", fanout=fanout)
                .add("b", kind="service", service_time="1s").add("c", kind="service", service_time="2s")
                .call("a", "b").call("a", "c"))
    seq = simarch.simulate(design("sequential"), duration="60s", warmup=0, seed=1)
    par = simarch.simulate(design("parallel"), duration="60s", warmup=0, seed=1)
    np.testing.assert_allclose(seq.latency, 3.1, atol=1e-9)
    np.testing.assert_allclose(par.latency, 2.1, atol=1e-9)


def test_call_latency_is_added():
    arch = (closed(1, "1s").add("a", kind="service", service_time="10ms")
            .add("b", kind="service", service_time="20ms").call("a", "b", latency="5ms"))
    r = simarch.simulate(arch, duration="30s", warmup=0, seed=1)
    np.testing.assert_allclose(r.latency, 0.035, atol=1e-9)


def test_same_seed_same_numbers_and_different_seed_different_numbers():
    arch = simarch.load("architectures/cached_sharded.yaml")
    a = simarch.simulate(arch, duration="10s", warmup="2s", seed=7)
    b = simarch.simulate(arch, duration="10s", warmup="2s", seed=7)
    c = simarch.simulate(arch, duration="10s", warmup="2s", seed=8)
    for field in ("start", "end", "cls", "status"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.components().equals(b.components())
    assert a.to_dict() == b.to_dict()
    assert len(a.start) != len(c.start) or not np.array_equal(a.start, c.start)


def test_common_random_numbers_two_designs_share_arrivals():
    # two designs with the same workload get the same arrival times and classes
    base = {"rate": 50, "requests": {"read": {"weight": 3}, "write": {"weight": 1}}}
    a = Architecture("a", workload=base).add("s", kind="service", workers=8, service_time="10ms")
    b = (Architecture("b", workload=base).add("lb", kind="load_balancer")
         .add("s", kind="service", instances=2, workers=2, service_time={"exponential": "30ms"})
         .call("lb", "s"))
    ra = simarch.simulate(a, duration="20s", warmup=0, seed=3)
    rb = simarch.simulate(b, duration="20s", warmup=0, seed=3)
    oa, ob = np.argsort(ra.start), np.argsort(rb.start)
    n = min(len(oa), len(ob)) - 5  # a few at the end may still be in flight
    np.testing.assert_array_equal(ra.start[oa][:n], rb.start[ob][:n])
    np.testing.assert_array_equal(ra.cls[oa][:n], rb.cls[ob][:n])


# ------------------------------------------------------------------ routing


@pytest.mark.parametrize("policy", ["round_robin", "random", "least_connections", "power_of_two_choices"])
def test_load_balancer_policies_spread_evenly(policy):
    # 4 identical instances, 20 000 requests (N). For random routing each instance's count is
    # binomial(N, 1/4): SE = sqrt(N * 1/4 * 3/4) ~ 61; tolerance 4 SE on its share.
    arch = (Architecture("lb", workload={"rate": 200}).add("lb", kind="load_balancer", policy=policy)
            .add("api", kind="service", instances=4, workers=2, service_time={"exponential": "5ms"})
            .call("lb", "api"))
    r = simarch.simulate(arch, duration="100s", warmup="1s", seed=2)
    inst = r.instances()
    api = inst[inst.component == "api"]
    n = api.throughput_rps.sum() * r.duration
    share = api.throughput_rps * r.duration / n
    se = math.sqrt(0.25 * 0.75 / n)
    assert (abs(share - 0.25) < 4 * se).all(), share.tolist()


def test_least_connections_waits_less_than_random_routing():
    # 4 single-worker instances at rho = 0.875: random routing makes 4 independent M/M/1
    # queues (mean response 5ms/(1-0.875) = 40 ms); least connections joins the shortest
    # queue, which is far better. The factor 0.7 is loose on purpose.
    def run(policy):
        arch = (Architecture("x", workload={"rate": 700}).add("lb", kind="load_balancer", policy=policy)
                .add("api", kind="service", instances=4, workers=1, service_time={"exponential": "5ms"})
                .call("lb", "api"))
        return simarch.simulate(arch, duration="60s", warmup="5s", seed=1).latency.mean()
    assert run("least_connections") < 0.7 * run("random")


# ------------------------------------------------------------------ caches


def test_lru_hit_ratio_uniform_keys_is_capacity_over_keys():
    # Under uniform popularity an LRU of C keys out of K hits with probability C/K exactly.
    # N ~ 60 000 lookups after warm-up; hits are nearly independent: SE = sqrt(h(1-h)/N) ~ 0.002;
    # tolerance 4 SE.
    arch = (Architecture("c", workload={"rate": 1000, "requests": {"get": {"keys": {"uniform": 1000}}}})
            .add("cache", kind="cache", capacity=300, service_time="0.1ms")
            .add("db", kind="datastore", workers=64, service_time="1ms").call("cache", "db", on="miss"))
    r = simarch.simulate(arch, duration="60s", warmup="5s", seed=1)
    c = r.components()
    n = c.loc["cache", "arrivals"]
    se = math.sqrt(0.3 * 0.7 / n)
    assert abs(c.loc["cache", "hit_ratio"] - 0.3) < 4 * se
    # only misses reach the datastore
    assert c.loc["db", "arrivals"] == pytest.approx(n * (1 - c.loc["cache", "hit_ratio"]), abs=50)


def test_lru_hit_ratio_zipf_matches_che_approximation():
    # Che's approximation is accurate to about one percentage point for Zipf popularity;
    # the simulation's own SE at N ~ 100 000 is ~0.0015. Tolerance: 0.015 absolute.
    arch = (Architecture("c", workload={"rate": 2000, "requests": {"get": {"keys": {"zipf": 0.9, "n": 20000}}}})
            .add("cache", kind="cache", capacity=1000, service_time="0.1ms")
            .add("db", kind="datastore", workers=64, service_time="1ms").call("cache", "db", on="miss"))
    r = simarch.simulate(arch, duration="50s", warmup="20s", seed=1)
    est = simarch.capacity_report(arch).hit_ratios["cache"]
    assert abs(r.components().loc["cache", "hit_ratio"] - est) < 0.015


def test_fixed_hit_ratio_and_ttl():
    # fixed hit ratio 0.8: db sees a binomial 20% of N lookups; SE = sqrt(N*0.2*0.8); 4 SE
    arch = (Architecture("c", workload={"rate": 500})
            .add("cache", kind="cache", hit_ratio=0.8)
            .add("db", kind="datastore", workers=8, service_time="1ms").call("cache", "db", on="miss"))
    r = simarch.simulate(arch, duration="60s", warmup="1s", seed=1)
    c = r.components()
    n = c.loc["cache", "arrivals"]
    assert abs(c.loc["db", "arrivals"] - 0.2 * n) < 4 * math.sqrt(n * 0.16)
    # a TTL shorter than the time between uses of a key makes every lookup miss
    arch = (Architecture("t", workload={"rate": 10, "requests": {"get": {"keys": {"uniform": 1000}}}})
            .add("cache", kind="cache", capacity=1000, ttl="1s")
            .add("db", kind="datastore", workers=8, service_time="1ms").call("cache", "db", on="miss"))
    r = simarch.simulate(arch, duration="60s", warmup="1s", seed=1)
    # P(a key is used twice within 1 s) = 1 - exp(-10/1000) ~ 1%: hit ratio ~ 0.01
    assert r.components().loc["cache", "hit_ratio"] < 0.03


# ------------------------------------------------------------------ datastores


def test_shard_load_follows_the_hash_ring_and_hot_keys():
    keys = KeysSpec(zipf=1.1, n=5000)
    arch = (Architecture("d", workload={"rate": 2000, "requests": {"get": {"keys": {"zipf": 1.1, "n": 5000}}}})
            .add("db", kind="datastore", shards=4, workers=64, service_time="1ms"))
    r = simarch.simulate(arch, duration="30s", warmup="1s", seed=1)
    sh = r.shards()
    expected = np.bincount(shard_of_keys(5000, 4), weights=key_probabilities(keys), minlength=4)
    n = sh.requests.sum()
    se = np.sqrt(expected * (1 - expected) / n)  # multinomial SE of each share
    assert (np.abs(sh.share.to_numpy() - expected) < 4 * se).all()
    # the hottest key's shard is the hottest shard
    assert sh.share.idxmax() == shard_of_keys(1, 4)[0]


def test_reads_spread_over_replicas_writes_go_to_the_primary():
    wl = {"rate": 300, "requests": {"read": {"weight": 2, "keys": {"uniform": 100}},
                                    "write": {"weight": 1, "keys": {"uniform": 100}}}}
    arch = Architecture("d", workload=wl).add(
        "db", kind="datastore", replicas=3, workers=8,
        service_time={"read": "1ms", "write": "2ms"})
    r = simarch.simulate(arch, duration="40s", warmup="1s", seed=1)
    inst = r.instances().set_index("instance")
    reads = r.summary().loc["read", "ok"] / r.duration
    writes = r.summary().loc["write", "ok"] / r.duration
    primary = inst.loc["db.shard0.replica0", "throughput_rps"]
    replica = inst.loc["db.shard0.replica1", "throughput_rps"]
    # round robin: each copy serves a third of the reads (+-1); every copy applies every write
    assert primary == pytest.approx(reads / 3 + writes, abs=0.2)
    assert replica == pytest.approx(reads / 3 + writes, abs=0.2)
    # sync replication makes a write wait for the replicas: write latency 2ms + 2ms
    sync = arch.with_changes({"db.replication": "sync", "workload.rate": 30})
    rs = simarch.simulate(sync, duration="20s", warmup="1s", seed=1)
    w = rs.latency[rs.cls == 1]
    assert w.min() == pytest.approx(0.004, abs=1e-9)


# ------------------------------------------------------------------ queues


def test_queue_acknowledges_on_enqueue_and_consumers_drain():
    # producers return after the 1 ms enqueue; consumers (2 x 1 worker, 10 ms each) drain
    # 200 msg/s at rho = 0.5 per worker
    arch = (Architecture("q", workload={"rate": 100})
            .add("api", kind="service", workers=8, service_time="2ms")
            .add("q", kind="queue", service_time="1ms")
            .add("worker", kind="service", instances=2, workers=1, service_time={"exponential": "10ms"})
            .call("api", "q").call("q", "worker"))
    r = simarch.simulate(arch, duration="200s", warmup="10s", seed=1)
    np.testing.assert_allclose(r.latency, 0.003, atol=1e-9)
    c = r.components()
    assert c.loc["q", "throughput_rps"] == pytest.approx(100, rel=0.05)
    assert c.loc["worker", "utilization"] == pytest.approx(0.5, abs=0.05)
    assert c.loc["q", "mean_wait_ms"] > 0
    assert c.loc["q", "consumed"] > 0.95 * c.loc["q", "arrivals"]


def test_full_queue_rejects():
    arch = (Architecture("q", workload={"rate": 100})
            .add("q", kind="queue", capacity=50)
            .add("worker", kind="service", workers=1, service_time="50ms").call("q", "worker"))
    r = simarch.simulate(arch, duration="30s", warmup="5s", seed=1)
    assert r.summary().loc["all", "rejected"] > 0
    assert r.components().loc["q", "max_queue"] == 50


# ------------------------------------------------------------------ workloads


def test_probability_call():
    # callee visits are binomial(N, 0.25): SE = sqrt(N * 0.25 * 0.75); 4 SE
    arch = (Architecture("p", workload={"rate": 500}).add("a", kind="service", workers=16, service_time="1ms")
            .add("b", kind="service", workers=16, service_time="1ms").call("a", "b", probability=0.25))
    r = simarch.simulate(arch, duration="40s", warmup="1s", seed=1)
    c = r.components()
    n = c.loc["a", "arrivals"]
    assert abs(c.loc["b", "arrivals"] - 0.25 * n) < 4 * math.sqrt(n * 0.25 * 0.75)


@pytest.mark.parametrize("profile,expected_rate", [
    # mean rate over the 100 s window [20, 120) at base rate 100/s
    ({"step": {"at": "50s", "to": 3, "until": "80s"}}, 100 * (70 + 30 * 3) / 100),
    ({"ramp": {"from": 0.5, "to": 1.5, "over": "100s", "at": "20s"}}, 100.0),
    ({"diurnal": {"period": "100s", "amplitude": 0.5, "peak": "20s"}}, 100.0),
])
def test_rate_profiles_deliver_the_integrated_rate(profile, expected_rate):
    # arrivals in the window are Poisson with mean = integral of the rate: SE = sqrt(mean); 4 SE
    arch = (Architecture("w", workload={"rate": 100, "profile": profile})
            .add("s", kind="service", workers=64, service_time="1ms"))
    r = simarch.simulate(arch, duration="100s", warmup="20s", seed=5)
    mean = expected_rate * 100
    assert abs(sum(r.arrivals) - mean) < 4 * math.sqrt(mean)


def test_trace_profile(tmp_path):
    (tmp_path / "rates.csv").write_text("second,rate\n0,50\n10,200\n20,50\n")
    spec = {"workload": {"profile": {"trace": "rates.csv"}},
            "components": {"s": {"kind": "service", "workers": 64, "service_time": "1ms"}}}
    (tmp_path / "d.yaml").write_text(__import__("yaml").safe_dump(spec))
    arch = simarch.load(tmp_path / "d.yaml")
    r = simarch.simulate(arch, duration="25s", warmup="5s", seed=1)
    mean = 5 * 50 + 10 * 200 + 10 * 50  # window [5, 30): the last rate holds
    assert abs(sum(r.arrivals) - mean) < 4 * math.sqrt(mean)
    r2 = simarch.simulate(arch, load="2x", duration="25s", warmup="5s", seed=1)
    assert abs(sum(r2.arrivals) - 2 * mean) < 4 * math.sqrt(2 * mean)


def test_load_multiplier_scales_the_rate():
    arch = Architecture("m", workload={"rate": 100}).add("s", kind="service", workers=64, service_time="1ms")
    r = simarch.simulate(arch, load="3x", duration="50s", warmup="1s", seed=1)
    mean = 300 * 50
    assert abs(sum(r.arrivals) - mean) < 4 * math.sqrt(mean)


def test_closed_loop_response_time_law():
    # interactive response-time law X = N / (Z + R) holds for any closed system;
    # with N=20 users, Z=1 s think, ~15 000 requests, we compare X with N/(Z+R) within 2%
    # (the law is a sample-path identity up to edge effects of ~N requests over the window).
    arch = closed(20, {"exponential": "1s"}).add(
        "s", kind="service", workers=2, service_time={"exponential": "80ms"})
    r = simarch.simulate(arch, duration="800s", warmup="20s", seed=1)
    x = r.summary().loc["all", "throughput_rps"]
    assert x == pytest.approx(20 / (1.0 + r.latency.mean()), rel=0.02)
    r2 = simarch.simulate(arch, load=2, duration="50s", warmup="5s", seed=1)
    assert r2.summary().loc["all", "throughput_rps"] > x  # 40 users push more


def test_unstable_run_misses_its_slo():
    # an M/M/1 at rho = 1.5: the backlog grows by ~ (150 - 100) x 20 s = 1000 requests, far
    # more than 2% of the 3000 arrivals; availability of finished requests alone says 100%
    arch = Architecture("over", workload={"rate": 150}, slo={"availability": "99%"}).add(
        "s", kind="service", workers=1, service_time={"exponential": "10ms"})
    r = simarch.simulate(arch, duration="20s", warmup="2s", seed=1)
    assert r.summary().loc["all", "availability"] == 1.0
    assert not r.stable and r.slo_met is False
    assert "not keeping up" in r.all_warnings()[0]
    ok = simarch.simulate(arch.with_changes({"workload.rate": 50}), duration="20s", warmup="2s", seed=1)
    assert ok.stable and ok.slo_met


def test_warnings_for_faults_outside_the_window_and_cold_caches():
    arch = Architecture.from_dict({
        "workload": {"rate": 100, "requests": {"get": {"keys": {"uniform": 100000}}}},
        "components": {"c": {"kind": "cache", "capacity": 50000},
                       "db": {"kind": "datastore", "workers": 16, "service_time": "1ms"}},
        "calls": [{"from": "c", "to": "db", "on": "miss"}],
        "faults": [{"kind": "crash", "target": "db", "at": "100s", "duration": "1s"}]})
    r = simarch.simulate(arch, duration="10s", warmup="2s", seed=1)
    text = " ".join(r.all_warnings())
    assert "outside the measured window" in text and "held" in text


def test_timeseries_last_window_is_clipped_to_the_run():
    arch = Architecture("t", workload={"rate": 100}).add("s", kind="service", workers=8, service_time="1ms")
    r = simarch.simulate(arch, duration="20s", warmup="5s", seed=1)
    ts = r.timeseries("3s")
    assert ts.end_s.iloc[-1] == 25.0 and ts.start_s.iloc[-1] == 23.0
    # a full-rate last window: ~100 req/s over its 2 s, not diluted over 3 s (Poisson SE ~7/s)
    assert abs(ts.throughput_rps.iloc[-1] - 100) < 4 * math.sqrt(100 / 2)


def test_timeseries_and_slo():
    arch = simarch.load("architectures/cached_sharded.yaml")
    r = simarch.simulate(arch, duration="20s", warmup="5s", seed=1)
    ts = r.timeseries("5s")
    assert len(ts) == 4
    assert ts.completed.sum() <= len(r.start)
    assert (ts.availability <= 1).all()
    slo = r.slo()
    assert set(slo.index) == {"stability", "p99", "availability"}
    assert bool(slo.loc["stability", "met"]) and r.stable
    assert r.slo_met == bool(slo.met.all())
