"""Replication between regions: a call to a datastore takes the trip to the copy that serves
it (a write: the current primary, or the caller region's leader with ``leaders: per_region``;
a read: its region's copy first), cross-region stale reads, and the conflicts of leaders per
region, against theory (the statistical checks are marked slow; each states its N, the SE
from independent replications, and a tolerance of about 4 SE)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import Architecture, SpecError
from simarch.run.simulation import Simulation
from simarch.runtime.pools import ANY
from simarch.runtime.tasks import run_until, spawn

A, B = "a", "b"


def _two(d: float = 0.025, *, leaders: str = "single", shares=None, rate: float = 50.0, requests=None,
         api_st="1ms", st=None, **db) -> dict:
    """Two regions ``a`` and ``b``, ``d`` apart one way (round trip 2d); an API in each (the
    entry: users are served in their own region) calling a two-copy datastore with a copy in
    each region (the primary, or a's leader, in ``a``)."""
    store = {"kind": "datastore", "replicas": 2, "workers": 100_000, "region": [A, B], "leaders": leaders,
             "service_time": st if st is not None else {"read": "2ms", "write": "3ms"}}
    store.update(db)
    return {
        "regions": {"rtt": {A: {B: f"{2e3 * d:g}ms"}}},
        "workload": {"rate": rate, "regions": shares or {A: 0.5, B: 0.5},
                     "requests": requests or {"read": {"weight": 1, "keys": {"uniform": 100}},
                                              "write": {"weight": 1, "keys": {"uniform": 100}}}},
        "components": {
            "api": {"kind": "service", "instances": 2, "workers": 100_000, "region": [A, B],
                    "service_time": api_st},
            "db": store},
        "calls": [{"from": "api", "to": "db"}],
        "simulation": {"duration": 10, "warmup": 0.5},
    }


def _by(r, cls: str, region: str):
    """The mask of the recorded requests of class ``cls`` from users of ``region``."""
    return (r.cls == r.classes.index(cls)) & (r.user_region == r.region_names.index(region))


# -- the trip to the copy that serves the call (constant times: exact)

def test_a_call_takes_the_trip_to_the_copy_that_serves_it_exactly():
    """Constant times (API 1 ms, read 2 ms, write 3 ms), round trip 50 ms. Single leader
    (primary in a): a's writes 4 ms, b's writes 4 + 50 ms (to the primary and back), every
    read 3 ms (each region reads its own copy). Leader per region: b's writes are local too,
    4 ms. The call rows count the crossings and their 50 ms. N = 500 requests per run; exact."""
    rtt = 0.05
    r = simarch.simulate(_two(rtt / 2), seed=1)
    lat = r.latency
    assert (r.status == 0).all()
    assert np.allclose(lat[_by(r, "write", A)], 0.004, atol=1e-9)
    assert np.allclose(lat[_by(r, "write", B)], 0.004 + rtt, atol=1e-9)
    reads = r.cls == r.classes.index("read")
    assert np.allclose(lat[reads], 0.003, atol=1e-9)
    calls = r.calls().set_index("edge").loc["api->db"]
    b_writes = _by(r, "write", B).sum() / len(lat)
    assert calls["cross_region_share"] == pytest.approx(b_writes, abs=0.01)
    assert calls["added_ms_per_call"] == pytest.approx(1e3 * rtt * calls["cross_region_share"])

    r = simarch.simulate(_two(rtt / 2, leaders="per_region"), seed=1)
    assert (r.status == 0).all() and _by(r, "write", B).sum() > 100
    assert np.allclose(r.latency[r.cls == r.classes.index("write")], 0.004, atol=1e-9)
    assert r.cross_region_share == 0
    assert "conflicts" in r.components().columns


def test_after_a_failover_calls_take_the_round_trip_to_the_new_primary_exactly():
    """The primary (in a) crashes at 3 s for good; the failover promotes b's copy 1 s later.
    Before: a's writes 4 ms, b's 4 + 50 ms. In the second before the failover writes fail and
    a's reads go to b's copy (3 + 50 ms). After it, a's writes take the round trip to the new
    primary, 4 + 50 ms, and b's are local, 4 ms. Exact."""
    rtt = 0.05
    d = _two(rtt / 2, failover="1s")
    d["faults"] = [{"kind": "crash", "target": "db", "shard": 0, "replica": 0, "at": 3}]
    r = simarch.simulate(d, seed=2)
    lat, t, ok = r.latency, r.start, r.status == 0
    before, gap, after = t < 3 - rtt, (t > 3) & (t < 4 - rtt), t > 4
    for region, was, now in ((A, 0.004, 0.004 + rtt), (B, 0.004 + rtt, 0.004)):
        w = _by(r, "write", region)
        assert np.allclose(lat[w & before], was, atol=1e-9)
        assert ok[w & after].all() and np.allclose(lat[w & after], now, atol=1e-9), region
        assert (w & gap).sum() > 3 and not ok[w & gap].any()
    ra = _by(r, "read", A)
    assert ok[ra & gap].all() and np.allclose(lat[ra & (t > 3)], 0.003 + rtt, atol=1e-9)
    assert np.allclose(lat[_by(r, "read", B)], 0.003, atol=1e-9)
    assert [e["to"] for e in r.event_log if e["what"] == "failover"] == ["db.shard0.replica1"]


def test_a_region_whose_leader_is_lost_writes_to_the_other_leader_until_it_is_back():
    """Leaders per region; b's leader crashes at 3 s for 3 s, failover 1 s: b's writes fail
    until 4 s, then go to a's leader (4 + 50 ms), and are local again (4 ms) once b's copy
    is back at 6 s (it leads its region again). a's writes stay local throughout. Exact."""
    rtt = 0.05
    d = _two(rtt / 2, leaders="per_region", failover="1s")
    d["faults"] = [{"kind": "crash", "target": "db", "shard": 0, "replica": 1, "at": 3, "duration": 3}]
    r = simarch.simulate(d, seed=4)
    lat, t, ok = r.latency, r.start, r.status == 0
    wb = _by(r, "write", B)
    assert np.allclose(lat[wb & (t < 3)], 0.004, atol=1e-9)
    assert (wb & (t > 3) & (t < 4 - rtt)).sum() > 3 and not ok[wb & (t > 3) & (t < 4 - rtt)].any()
    moved = wb & (t > 4) & (t < 6 - rtt)
    assert ok[moved].all() and np.allclose(lat[moved], 0.004 + rtt, atol=1e-9)
    assert ok[wb & (t > 6)].all() and np.allclose(lat[wb & (t > 6)], 0.004, atol=1e-9)
    assert np.allclose(lat[_by(r, "write", A)], 0.004, atol=1e-9)
    assert [e["to"] for e in r.event_log if e["what"] == "failover"] == ["-"]


def test_a_region_without_a_copy_writes_to_the_nearest_leader():
    """Three regions, copies in a and b only: c's users (c is 10 ms from a, 30 ms from b)
    write to a's leader, 4 + 10 ms; with leaders per region likewise. Exact."""
    d = _two(0.025, leaders="per_region", shares={A: 0.3, B: 0.3, "c": 0.4})
    d["regions"]["rtt"] = {A: {B: "50ms", "c": "10ms"}, B: {"c": "30ms"}}
    d["components"]["api"].update(instances=3, region=[A, B, "c"])
    r = simarch.simulate(d, seed=3)
    w = _by(r, "write", "c")
    assert w.sum() > 50 and np.allclose(r.latency[w], 0.014, atol=1e-9)
    assert np.allclose(r.latency[_by(r, "read", "c")], 0.013, atol=1e-9)


def test_quorum_and_scatter_gather_calls_take_the_trips_of_their_copies_exactly():
    """A quorum store with copies in a, b and c (a-b 50 ms, a-c 10 ms): a's reads with R = 1
    answer from a's own copy, 3 ms; writes with W = all wait for b's, 4 + 50 ms. A
    scatter-gather read over 3 shards reads each shard in its own region, 3 ms; with one
    shard's copy in b down, b's reads wait for that shard's copy in a, 3 + 50 ms. Exact."""
    d = _two(shares={A: 1.0}, replicas=3, quorum={"r": 1, "w": "all"}, region=[A, B, "c"])
    d["regions"]["rtt"] = {A: {B: "50ms", "c": "10ms"}, B: {"c": "30ms"}}
    d["components"]["api"].update(instances=3, region=[A, B, "c"])
    r = simarch.simulate(d, seed=3)
    assert np.allclose(r.latency[_by(r, "read", A)], 0.003, atol=1e-9)
    assert np.allclose(r.latency[_by(r, "write", A)], 0.054, atol=1e-9)
    d = _two(shards=3, scatter_gather=True, requests={"read": {"weight": 1}})
    r = simarch.simulate(d, seed=3)
    assert np.allclose(r.latency, 0.003, atol=1e-9)
    d["faults"] = [{"kind": "crash", "target": "db", "shard": 1, "replica": 1, "at": 2}]
    r = simarch.simulate(d, seed=3)
    b = _by(r, "read", B) & (r.start > 2)
    assert b.sum() > 100 and np.allclose(r.latency[b], 0.053, atol=1e-9)


# -- conflicts of leaders per region (exact, with a driver)

def test_writes_within_the_lag_in_two_regions_conflict_exactly():
    """One key, one way 25 ms, no service time. a writes at 0, b at 10 ms: b's leader has not
    seen a's write, a conflict (LWW keeps b's). b writes again at 100 ms (it has seen a's
    copy at 25 ms: no conflict), a at 120 ms (b's write reaches a at 125 ms: a conflict), a at
    300 ms (none). Two conflicts; at the end every copy holds the last write."""
    d = _two(0.025, leaders="per_region", rate=1e-6, st={"read": 0, "write": 0}, api_st=0,
             requests={"read": {"weight": 1, "keys": {"uniform": 1}},
                       "write": {"weight": 1, "keys": {"uniform": 1}}})
    sim = Simulation(Architecture.from_dict(d), duration=10, warmup=0.0, seed=1)
    db = sim.components["db"]
    db.start()
    via = {rs.rix: rs for u, v, rs in sim.regions.serves if v == "db"}
    ia, ib = sim.regions.ix[A], sim.regions.ix[B]
    write = sim.classes.index("write")
    plan = [(0.0, ia), (0.010, ib), (0.100, ib), (0.120, ia), (0.300, ia)]
    seen = []

    def driver():
        t = 0.0
        for at, region in plan:
            yield at - t
            t = at
            seen.append(db.repl.conflicts)
            spawn(sim.env, via[region].serve(ANY, write, 0, -1))
    spawn(sim.env, driver())
    run_until(sim.env, 1.0)
    rp = db.repl
    assert rp.conflicts == 2 and seen == [0, 0, 1, 1, 2], (rp.conflicts, seen)
    assert [a.get(0) for a in rp.applied] == [5, 5] and rp.clock.version(0) == 5


# -- theory (slow)

def _se(xs) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


@pytest.mark.slow
def test_cross_region_stale_reads_match_one_minus_exp_minus_w_d():
    """One key; users in b only; Poisson writes at w = 20/s go to the primary in a (they
    commit there, a Poisson process of rate w: a shift by the constant trip keeps it one);
    each copy reaches b's replica exactly d = 25 ms later (no service time). A read of b's
    copy at t is stale iff some write committed in (t - d, t): P = 1 - exp(-w d) = 0.3935.
    Given it is stale, its age is d minus the time from t - d to the first commit in the
    window, which is Exp(w) conditioned on < d: E[age | stale] = d / (1 - exp(-w d)) - 1/w
    = 13.53 ms.

    N = 8 replications x 60 s (about 12,000 reads each, at 200/s); SE from the replications
    (about 0.004 and 0.05 ms); tolerance 4 SE."""
    w, dd, reads = 20.0, 0.025, 200.0
    d = _two(dd, shares={B: 1.0}, rate=w + reads, st={"read": 0, "write": 0}, api_st=0,
             requests={"read": {"weight": reads, "keys": {"uniform": 1}},
                       "write": {"weight": w, "keys": {"uniform": 1}}})
    arch = Architecture.from_dict(d)
    shares, ages = [], []
    for seed in range(8):
        r = simarch.simulate(arch, duration=60, warmup=1, seed=500 + seed)
        row = r.freshness().set_index(["component", "class"]).loc[("db", "read")]
        shares.append(row["stale_fraction"])
        ages.append(row["age_mean_ms"])
    p, p_se = _se(shares)
    age, age_se = _se(ages)
    theory = 1.0 - math.exp(-w * dd)
    age_theory = 1e3 * (dd / theory - 1.0 / w)
    assert abs(p - theory) <= 4 * p_se, (
        f"stale share {p:.4f} vs 1 - exp(-w d) = {theory:.4f} (N = 8 x 60 s, SE {p_se:.4f}, 4 SE)")
    assert abs(age - age_theory) <= 4 * age_se, (
        f"mean stale age {age:.3f} ms vs {age_theory:.3f} ms (N = 8 x 60 s, SE {age_se:.3f}, 4 SE)")


@pytest.mark.slow
def test_conflicts_of_leaders_per_region_match_the_closed_form():
    """One key; Poisson writers in a and b at a = b = 10/s each, writing to their own leader;
    copies take exactly d = 25 ms (no service time). A write at t conflicts when the newest
    write committed before t is the other region's and younger than d (not yet arrived): the
    time back to the newest write is Exp(a + b), and it is b's with probability b / (a + b),
    independently. So a's writes conflict at rate a b / (a + b) (1 - exp(-(a + b) d)), and in
    all the rate is 2 a b / (a + b) (1 - exp(-(a + b) d)) = 3.935/s (for small d: 2 a b d, the
    rate of pairs within d of each other, 5/s here).

    N = 10 replications x 200 s (about 4,000 writes, 790 conflicts each); SE from the
    replications (about 0.04/s); tolerance 4 SE."""
    a = b = 10.0
    dd = 0.025
    d = _two(dd, leaders="per_region", rate=a + b, st={"read": 0, "write": 0}, api_st=0,
             requests={"write": {"keys": {"uniform": 1}}})
    arch = Architecture.from_dict(d)
    T = 200.0
    rates = []
    for seed in range(10):
        r = simarch.simulate(arch, duration=T, warmup=1, seed=600 + seed)
        rates.append(r.component_stats["db"]["conflicts"] / T)
    m, se = _se(rates)
    theory = 2 * a * b / (a + b) * (1.0 - math.exp(-(a + b) * dd))
    assert abs(m - theory) <= 4 * se, (
        f"conflicts {m:.3f}/s vs 2ab/(a+b)(1 - exp(-(a+b)d)) = {theory:.3f}/s "
        f"(N = 10 x 200 s, SE {se:.3f}, 4 SE)")
    assert abs(m - 2 * a * b * dd) > 4 * se  # not the small-d pair rate


# -- bad input

ERRORS = {
    "sync": ({"replication": "sync"}, ("components", "db", "replication")),
    "semi_sync": ({"replication": "semi_sync"}, ("components", "db", "replication")),
    "majority": ({"replication": "majority", "replicas": 3, "region": [A, B, A]},
                 ("components", "db", "replication")),
    "quorum": ({"quorum": {"r": 1, "w": 1}}, ("components", "db", "leaders")),
    "one region": ({"region": [A, A]}, ("components", "db", "region")),
    "one region string": ({"region": A}, ("components", "db", "region")),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_leaders_per_region_mistakes_name_the_field(case):
    fields, path = ERRORS[case]
    d = _two(leaders="per_region", **fields)
    with pytest.raises(SpecError) as err:
        Architecture.from_dict(d)
    assert tuple(err.value.path[:len(path)]) == path, (err.value.path, str(err.value))


def test_leaders_per_region_needs_regions():
    d = {"workload": {"rate": 10, "requests": {"write": {"keys": {"uniform": 10}}}},
         "components": {"db": {"kind": "datastore", "replicas": 2, "leaders": "per_region",
                               "service_time": "1ms"}}}
    with pytest.raises(SpecError, match=r"no top-level 'regions:' section") as err:
        Architecture.from_dict(d)
    assert err.value.path == ("components", "db", "leaders")
    d["components"]["db"]["leaders"] = "everywhere"
    with pytest.raises(SpecError, match=r"leaders"):
        Architecture.from_dict(d)
