"""Regions: the round-trip matrix, geo routing of the users, calls across regions, region
faults and failover, the per-region results, and the errors of a bad ``regions:`` section."""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import Architecture, SpecError
from simarch.model.regions import DEFAULT_RTT_MS
from simarch.run.simulation import Simulation

EAST, WEST = "us-east-1", "eu-west-1"
RTT = DEFAULT_RTT_MS[(EAST, WEST)] / 1e3  # 70 ms


def _design(**over):
    d = {
        "regions": {},
        "workload": {"rate": 50, "regions": {EAST: 0.6, WEST: 0.4}},
        "components": {
            "lb": {"kind": "load_balancer", "instances": 2, "region": [EAST, WEST], "service_time": "1ms"},
            "api": {"kind": "service", "workers": 64, "region": EAST, "service_time": "4ms"},
        },
        "calls": [{"from": "lb", "to": "api"}],
        "simulation": {"duration": 20, "warmup": 1},
    }
    d.update(over)
    return d


def test_added_latency_is_the_matrix_round_trip_exactly():
    """Constant service times (1 ms + 4 ms): users of us-east-1 reach its load balancer and
    the API there, 5 ms; users of eu-west-1 reach eu-west-1's load balancer, whose call to the
    API (only in us-east-1) crosses: 5 ms + 70 ms exactly. N = 1,000 requests; exact."""
    r = simarch.simulate(_design(), seed=3)
    lat = r.latency
    east = r.user_region == r.region_names.index(EAST)
    assert east.sum() > 300 and (~east).sum() > 200
    assert np.allclose(lat[east], 0.005, atol=1e-9), lat[east][:5]
    assert np.allclose(lat[~east], 0.005 + RTT, atol=1e-9), lat[~east][:5]
    reg = r.regions()
    assert reg.loc[WEST, "p99_ms"] == pytest.approx(75.0, abs=1e-6)
    assert reg.loc[EAST, "added_ms"] == 0 and reg.loc[WEST, "added_ms"] == 0  # (entries in both)
    calls = r.calls().set_index("edge")
    share = calls.loc["lb->api", "cross_region_share"]
    assert share == pytest.approx((~east).sum() / len(east), abs=0.01)
    assert calls.loc["lb->api", "added_ms_per_call"] == pytest.approx(70 * share, rel=0.02)
    assert r.cross_region_share == pytest.approx(share)


def test_users_far_from_the_entry_take_the_round_trip_there():
    """The entry only in us-east-1: eu-west-1's users travel 70 ms first (recorded as
    ``added_ms``); a custom matrix gives its own figure. Exact."""
    d = _design()
    d["components"] = {"api": {"kind": "service", "workers": 64, "region": EAST, "service_time": "4ms"}}
    d["calls"] = []
    r = simarch.simulate(d, seed=1)
    east = r.user_region == r.region_names.index(EAST)
    assert np.allclose(r.latency[~east], 0.004 + RTT, atol=1e-9)
    assert r.regions().loc[WEST, "added_ms"] == pytest.approx(70.0)
    d["regions"] = {"rtt": {EAST: {WEST: "33ms"}}}
    r = simarch.simulate(d, seed=1)
    east = r.user_region == r.region_names.index(EAST)
    assert np.allclose(r.latency[~east], 0.037, atol=1e-9)
    assert "Users by region" in r.report() and "calls across regions" in r.report()


def test_callers_prefer_their_own_region_then_the_nearest_live_one():
    """A load balancer and an API in both regions: no call crosses; with us-east-1's API
    instance down, us-east-1's calls go to eu-west-1 (+70 ms each)."""
    d = _design()
    d["components"]["api"]["instances"] = 2
    d["components"]["api"]["region"] = [EAST, WEST]
    r = simarch.simulate(d, seed=2)
    assert r.cross_region_share == 0
    assert np.allclose(r.latency, 0.005, atol=1e-9)
    d["faults"] = [{"kind": "crash", "target": "api", "instances": 1}]
    r = simarch.simulate(d, seed=2)
    assert r.summary().loc["all", "availability"] == 1.0
    east = r.user_region == r.region_names.index(EAST)
    assert np.allclose(r.latency[east], 0.005 + RTT, atol=1e-9)
    assert np.allclose(r.latency[~east], 0.005, atol=1e-9)


def test_region_delay_is_half_the_round_trip_between_pools():
    d = _design()
    sim = Simulation(Architecture.from_dict(d), duration=1, warmup=0, seed=1)
    lb = sim.components["lb"].pools
    api = sim.components["api"].pools[0]
    assert [p.region for p in lb] == [EAST, WEST] and api.region == EAST
    assert sim.region_delay(lb[0], api) == 0.0
    assert sim.region_delay(lb[1], api) == pytest.approx(RTT / 2)
    plain = Simulation(Architecture.from_dict({"workload": {"rate": 1}, "components": {
        "s": {"kind": "service", "service_time": "1ms"}}}), duration=1, warmup=0, seed=1)
    assert plain.regions is None and plain.region_delay(plain.pools[0], plain.pools[0]) == 0.0


def test_datastore_replicas_get_a_region_each():
    d = _design()
    d["components"]["db"] = {"kind": "datastore", "replicas": 2, "shards": 2, "region": [EAST, WEST],
                             "service_time": "1ms"}
    d["calls"].append({"from": "api", "to": "db"})
    sim = Simulation(Architecture.from_dict(d), duration=1, warmup=0, seed=1)
    assert [p.region for p in sim.components["db"].pools] == [EAST, WEST, EAST, WEST]


def test_a_lost_region_fails_its_users_until_detection_and_ttl_then_they_move():
    """us-east-1 crashes at 10 s for 20 s; checks every 1 s, lost after 2 failures, TTL 5 s:
    its users fail from 10 s until 11-12 s + 5 s, then are served in eu-west-1 (+70 ms
    through the round trip); after recovery they come back the same way. Exact windows."""
    d = _design()
    d["components"] = {"api": {"kind": "service", "workers": 64, "instances": 2, "region": [EAST, WEST],
                               "service_time": "1ms"}}
    d["calls"] = []
    d["regions"] = {"failover": {"interval": "1s", "unhealthy_after": 2, "healthy_after": 1, "dns_ttl": "5s"}}
    d["faults"] = [{"kind": "crash", "region": EAST, "at": 10, "duration": 20}]
    d["simulation"] = {"duration": 45, "warmup": 1}
    r = simarch.simulate(d, seed=4)
    east = r.user_region == r.region_names.index(EAST)
    ok = r.status == 0
    t = r.start
    assert not ok[east & (t >= 10) & (t < 16)].any()
    assert ok[east & (t >= 17) & (t < 30)].all() and ok[~east].all()
    moved = east & (t >= 17) & (t < 30)
    assert np.allclose(r.latency[moved], 0.001 + RTT, atol=1e-9)
    back = east & (t >= 37)
    assert np.allclose(r.latency[back], 0.001, atol=1e-9)
    what = [e for e in r.events().itertuples() if e.what.startswith("region")]
    assert [e.what for e in what] == ["region lost", "region healthy"]
    assert 16 <= what[0].time_s <= 17 and 35 <= what[1].time_s <= 36


def test_region_is_a_spof_when_a_critical_component_lives_only_there():
    rep = simarch.spof(_design(), dynamic=False)
    assert rep.region_spofs == [EAST]
    assert "Regions" in str(rep) and "region us-east-1" in str(rep)


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d["components"]["api"].update(region="mars-1"),
     r"components\.api\.region: unknown region 'mars-1' \(regions: us-east-1, .*the built-in matrix's"),
    (lambda d: d["workload"].update(regions={EAST: 0.6, WEST: 0.3}),
     r"workload\.regions: the users' shares per region sum to 0\.9, not 1"),
    (lambda d: d.update(regions={"names": [EAST, WEST, "x"], "rtt": {EAST: {WEST: "70ms", "x": "9ms"}}}),
     r"regions\.rtt: missing round trip between 'eu-west-1' and 'x' \(give rtt\.eu-west-1\.x or rtt\.x\.eu-west-1\)"),
    (lambda d: d.update(regions={"rtt": {EAST: {"ap-northeast-1": "100ms"}}}),
     r"regions\.rtt\.us-east-1\.ap-northeast-1: unknown region 'ap-northeast-1'"),
    (lambda d: d.update(regions={"rtt": {EAST: {WEST: -5}}}),
     r"regions\.rtt.*must be >= 0"),
    (lambda d: d.update(regions={"rtt": {EAST: {WEST: "70ms"}, WEST: {EAST: "80ms"}}}),
     r"regions: the round trip between .* is given twice"),
    (lambda d: d.update(regions={"names": [EAST, WEST], "rtt": "default"}) or
     d["workload"].update(regions={EAST: 0.5, "eu-west-2": 0.5}),
     r"workload\.regions\.eu-west-2: unknown region 'eu-west-2' \(did you mean 'eu-west-1'"),
    (lambda d: d.update(faults=[{"kind": "crash", "region": "ap-northeast-1"}], regions={"names": [EAST, WEST]}),
     r"faults\.0\.region: unknown region 'ap-northeast-1'"),
    (lambda d: d.pop("regions"), r"no top-level 'regions:' section"),
    (lambda d: d["components"]["lb"].update(region=[EAST, "mars-1"]),
     r"components\.lb\.region\.1: unknown region 'mars-1'"),
    (lambda d: d.update(regions={"names": [EAST, WEST, "mars-1"]}),
     r"regions\.rtt: no built-in round trip between 'us-east-1' and 'mars-1'"),
])
def test_bad_regions_are_spec_errors_naming_the_field(change, match):
    d = _design()
    change(d)
    with pytest.raises(SpecError, match=match):
        Architecture.from_dict(d)


def test_a_region_fault_names_exactly_one_place():
    d = _design(faults=[{"kind": "crash", "region": EAST, "target": "api"}])
    with pytest.raises(SpecError, match=r"faults\.0: give exactly one of 'target'"):
        Architecture.from_dict(d)


def _renewal_unavailability(U: float, R: float, i: float, k: int, h: int, ttl: float,
                            shares: tuple[float, float]) -> float:
    """Unavailability of two regions that fail independently (up ~ Exp(U), down ~ Exp(R)),
    each user going to its own region unless the routing counts it lost and the other
    healthy (see docs/background/regions.md for the derivation).

    Per region, with a cycle of mean C = U + R, the checks at interval i and a uniform
    phase V: the region counts lost d = (k - 1 + V) i after a failure (if it is still down),
    clients act on it TTL later, and it counts healthy again d_up = (h - 1 + V') i + TTL after
    the recovery. Renewal-reward per cycle:

    * P(down) = R / C;
    * P(down and lost) = E[(D - d - TTL)^+] / C = E_V[R exp(-(d + TTL)/R)] / C;
    * P(lost) = E[1{D > d} (D - d + d_up)] / C = (E_V[R exp(-d/R)] + E_V[exp(-d/R)] E[d_up]) / C.

    Users of region a fail with P(down_a) - P(down_a, lost_a) (1 - P(lost_b)) +
    P(lost_a) (P(down_b) - P(down_b, lost_b)), by the regions' independence."""
    C = U + R
    ev = (R / i) * (1.0 - math.exp(-i / R))  # E[exp(-V i / R)]
    p_d = R / C
    p_dl = R * math.exp(-((k - 1) * i + ttl) / R) * ev / C
    p_l = (R * math.exp(-(k - 1) * i / R) * ev + math.exp(-(k - 1) * i / R) * ev * (h - 0.5) * i) / C
    fail = p_d - p_dl * (1 - p_l) + p_l * (p_d - p_dl)
    return fail * (shares[0] + shares[1])  # (the same for both regions: identical figures)


@pytest.mark.slow
def test_availability_of_two_regions_matches_renewal_reward():
    """Two regions, each failing as a whole (up ~ Exp(300 s), down ~ Exp(30 s)); checks every
    1 s, lost after 2 failures, healthy after 1 pass, DNS TTL 10 s; users 60/40; round trip
    1 ms (the requests caught in flight at a failure are negligible: 1 ms / 330 s).

    N = 10 replications x 20,000 s (after 1,000 s warm-up) at 2 requests/s (about 40,000
    requests each); the SE of the mean unavailability from the replications' spread; the
    tolerance is 4 SE. Theory: :func:`_renewal_unavailability`, which ignores a second
    failure within d_up (<= 1 s) of a recovery (probability 1/300 per cycle, a shift far below
    the SE)."""
    U, R, i, k, h, ttl = 300.0, 30.0, 1.0, 2, 1, 10.0
    d = {
        "regions": {"rtt": {"a": {"b": "1ms"}},
                    "failover": {"interval": i, "unhealthy_after": k, "healthy_after": h, "dns_ttl": ttl}},
        "workload": {"rate": 2, "regions": {"a": 0.6, "b": 0.4}},
        "components": {"api": {"kind": "service", "instances": 2, "region": ["a", "b"], "service_time": "1ms"}},
        "faults": [{"kind": "random", "region": x, "mtbf": {"exponential": U}, "mttr": {"exponential": R}}
                   for x in ("a", "b")],
    }
    arch = Architecture.from_dict(d)
    un = []
    for seed in range(10):
        r = simarch.simulate(arch, duration=20_000, warmup=1_000, seed=100 + seed)
        un.append(1.0 - float((r.status == 0).mean()))
    un = np.array(un)
    mean, se = un.mean(), un.std(ddof=1) / math.sqrt(len(un))
    theory = _renewal_unavailability(U, R, i, k, h, ttl, (0.6, 0.4))
    naive = (R / (U + R)) ** 2  # both down: what instant failover would give
    assert abs(mean - theory) < 4 * se, (
        f"unavailability {mean:.5f} +- {se:.5f} (SE, 10 x 20,000 s) vs renewal-reward {theory:.5f} "
        f"(4 SE tolerance; instant failover would give {naive:.5f})")
    assert abs(mean - naive) > 4 * se  # the test tells the detection delay apart
