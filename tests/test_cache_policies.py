"""Cache freshness, write policies and single-flight coalescing (simarch/kinds/cache.py).

The theory checks run independent replications (different seeds) and compare the mean of
the replications with a closed form, within 4 standard errors of that mean (the SE from the
spread of the replications). The closed forms are derived in docs/background/caching.md.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

import simarch
from simarch import SpecError
from simarch.kinds.datastore import Datastore
from simarch.model.yamlio import yaml_load
from simarch.run.simulation import Simulation
from simarch.runtime.tasks import spawn


def _arch(text: str) -> simarch.Architecture:
    return simarch.load(yaml_load(text))


def _store_writes(sim: Simulation, owner: str, rate: float, n_keys: int):
    """A writer outside the cache: Poisson commits at ``rate`` over ``n_keys`` uniform keys in
    the clock of ``owner`` (the store is always fresh: what it returns is its newest version)."""
    rng = sim.rng("test", "writes")
    clock = sim.freshness.clock(owner)
    env = sim.env
    while True:
        yield float(rng.exponential(1.0 / rate))
        clock.commit(int(rng.integers(n_keys)), env._now)


def _mean_se(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


# ---------------------------------------------------------------------------- TTL staleness
def _ttl_design(n_keys: int, r: float, ttl: float) -> simarch.Architecture:
    return _arch(f"""
name: ttl-staleness
workload:
  rate: {r * n_keys}
  requests:
    read: {{weight: 1, keys: {{uniform: {n_keys}}}}}
components:
  cache: {{kind: cache, capacity: {10 * n_keys}, ttl: {ttl}s}}
  db: {{kind: datastore, workers: 1000}}
calls:
  - {{from: cache, to: db, on: miss}}
slo: {{stale_reads: 100%}}  # the writes come from the test's own writer: no write class asks for the accounting
""")


@pytest.mark.slow
def test_ttl_stale_hit_fraction_matches_closed_form():
    """TTL staleness: reads Poisson at r = 5/s per key, writes Poisson at w = 1/s per key
    straight to the store (always fresh), TTL T = 1 s, no invalidation, zero service times.

    A renewal cycle starts at a miss (a fresh fill) and holds Poisson(rT) hits at ages
    uniform on (0, T); a hit at age a is stale with probability 1 - exp(-w a). Per read
    (hits and misses): P(stale) = (rT - (r/w)(1 - e^{-wT})) / (1 + rT) = 0.30657. The mean
    age of a stale hit is (T/2 - 1/w + (1 - e^{-wT})/(w^2 T)) / (1 - (1 - e^{-wT})/(wT))
    = 0.35914 s.

    N = 8 replications x 100 s (100 keys, 500 reads/s: ~50,000 reads each). The SE of the
    8-replication mean is ~0.0014 (fraction), ~0.0017 (share of hits) and ~0.9 ms (age);
    tolerance 4 SE. (Measured at seeds 0-7: 0.3056, 0.3665, 357.7 ms.)
    """
    n_keys, r, w, ttl = 100, 5.0, 1.0, 1.0
    fracs, ages, hit_share = [], [], []
    for seed in range(8):
        sim = Simulation(_ttl_design(n_keys, r, ttl), duration=100, warmup=10, seed=seed)
        spawn(sim.env, _store_writes(sim, "db", w * n_keys, n_keys))
        res = sim.run()
        row = res.freshness().set_index("component").loc["cache"]
        fracs.append(row["stale_fraction"])
        ages.append(row["age_mean_ms"] / 1e3)
        comp = res.components().loc["cache"]
        hit_share.append(comp["stale_hit_share"])
    theory = (r * ttl - (r / w) * (1 - math.exp(-w * ttl))) / (1 + r * ttl)
    m, se = _mean_se(fracs)
    assert abs(m - theory) <= 4 * se, f"stale fraction {m:.5f} vs {theory:.5f} (SE {se:.5f}, N=8x100s)"
    hits_theory = 1 - (1 - math.exp(-w * ttl)) / (w * ttl)
    m, se = _mean_se(hit_share)
    assert abs(m - hits_theory) <= 4 * se, f"stale share of hits {m:.5f} vs {hits_theory:.5f} (SE {se:.5f})"
    age_theory = (ttl / 2 - 1 / w + (1 - math.exp(-w * ttl)) / (w * w * ttl)) / hits_theory
    m, se = _mean_se(ages)
    assert abs(m - age_theory) <= 4 * se, f"stale age {m:.5f}s vs {age_theory:.5f}s (SE {se:.5f}, N=8x100s)"


def test_tracking_staleness_changes_no_number_of_the_run():
    """The freshness accounting only watches: the same design with and without
    the accounting (asked for by a ``stale_reads`` SLO) gives the same request records and
    component figures."""
    text = """
name: same
workload:
  rate: 300
  requests:
    read: {weight: 1, keys: {zipf: 0.9, n: 2000}}
components:
  api: {kind: service, workers: 8, service_time: {exponential: 1ms}}
  cache: {kind: cache, capacity: 500, ttl: 2s, service_time: 0.2ms%s}
  db: {kind: datastore, workers: 4, service_time: {exponential: 2ms}}
calls:
  - {from: api, to: cache, timeout: 50ms}
  - {from: cache, to: db, on: miss}
faults:
  - {kind: cache_flush, target: cache, at: 4s}
"""
    plain = simarch.simulate(_arch(text % ""), duration="5s", warmup="1s", seed=3, progress=False)
    tracked = simarch.simulate(_arch(text % "" + "slo: {stale_reads: 1%}\n"), duration="5s", warmup="1s",
                               seed=3, progress=False)
    assert np.array_equal(plain.latency, tracked.latency)
    cols = ["arrivals", "throughput_rps", "hit_ratio", "mean_latency_ms"]
    assert plain.components()[cols].equals(tracked.components()[cols])
    assert plain.freshness_stats is None and len(tracked.freshness()) == 1
    assert tracked.freshness()["stale"].iloc[0] == 0  # nothing writes: every read is fresh


def test_a_plain_cache_runs_the_plain_request_path():
    """No freshness, write policy or coalescing: the cache's serve is the class's own."""
    sim = Simulation(simarch.load("architectures/cache_flush.yaml"), duration=1, warmup=0, seed=1)
    cache = sim.components["cache"]
    assert cache.x is None and "serve" not in vars(cache)


# ---------------------------------------------------------------------------- coalescing
def _herd_design(coalesce: bool) -> simarch.Architecture:
    return _arch(f"""
name: herd
workload:
  rate: 1000
  requests:
    read: {{weight: 1, keys: {{zipf: 1.0, n: 2000}}}}
components:
  cache: {{kind: cache, capacity: 2000, coalesce: {str(coalesce).lower()}}}
  db: {{kind: datastore, workers: 1000, service_time: {{exponential: 50ms}}}}
calls:
  - {{from: cache, to: db, on: miss}}
faults:
  - {{kind: cache_flush, target: cache, at: 3s}}
""")


def _instrumented(monkeypatch, coalesce: bool) -> tuple[dict[str, Any], Simulation, Any]:
    """Run the herd design with the store's visits counted per key while they are in flight."""
    orig = Datastore.serve
    seen: dict[str, Any] = {"now": Counter(), "max_per_key": 0, "all": 0, "max_all": 0, "visits": 0}

    def counted(self, pool, cls, key, parent):
        now = seen["now"]
        now[key] += 1
        seen["all"] += 1
        seen["visits"] += 1
        seen["max_per_key"] = max(seen["max_per_key"], now[key])
        seen["max_all"] = max(seen["max_all"], seen["all"])
        status = yield orig(self, pool, cls, key, parent)
        now[key] -= 1
        seen["all"] -= 1
        return status

    monkeypatch.setattr(Datastore, "serve", counted)
    sim = Simulation(_herd_design(coalesce), duration=5, warmup=0, seed=11)
    res = sim.run()
    return seen, sim, res


def test_coalescing_sends_one_fetch_per_key_at_a_time(monkeypatch):
    """After a flush, with ``coalesce`` the store never has two visits for one key in
    flight (counted exactly by an instrumented store), without it it has many; every miss
    is a fetch or waits on one; the peak of fetches in flight is the store's peak."""
    seen, sim, res = _instrumented(monkeypatch, True)
    cache = sim.components["cache"]
    assert seen["max_per_key"] == 1, seen["max_per_key"]
    assert cache.x.fetches == seen["visits"]
    assert cache.misses == cache.x.fetches + cache.x.coalesced  # (zero service time: all at arrival)
    assert cache.x.coalesced > 20
    row = res.components().loc["cache"]
    assert row["peak_fetches"] == seen["max_all"]
    assert row["coalesced"] == cache.x.coalesced and row["fetches"] == cache.x.fetches
    assert res.summary().loc["all", "availability"] == 1.0

    seen, sim, res = _instrumented(monkeypatch, False)
    assert seen["max_per_key"] > 3, seen["max_per_key"]
    assert sim.components["cache"].x is None  # (no coalescing: the plain path)


def test_coalesced_waiters_share_the_fetch_result(monkeypatch):
    """Waiters get the fetch's result, a failure included: with the store down every
    coalesced miss fails with its fetch, and no store visit is made for them."""
    arch = _herd_design(True).with_changes({"faults": [
        {"kind": "crash", "target": "db", "at": "1s", "duration": "1s"}]})
    res = simarch.simulate(arch, duration="3s", warmup="0s", seed=2, progress=False)
    row = res.components().loc["cache"]
    assert row["coalesced"] > 0
    assert row["fetches"] == res.components().loc["db", "arrivals"]
    assert res.summary().loc["all", "failed"] > 0


# ---------------------------------------------------------------------------- write policies
def _rw_design(policy: str, n_keys: int, r: float, w: float, extra: str = "", cache: str = "") -> simarch.Architecture:
    """Reads at ``r`` and writes at ``w`` per key (Poisson, uniform keys), both through the
    cache, zero service times; the store commits each write it is handed."""
    return _arch(f"""
name: rw
workload:
  rate: {(r + w) * n_keys}
  requests:
    read: {{weight: {r}, keys: {{uniform: {n_keys}}}}}
    write: {{weight: {w}, keys: {{uniform: {n_keys}}}}}
components:
  cache: {{kind: cache, capacity: {10 * n_keys}, write_policy: {policy}{cache}}}
  db: {{kind: datastore, workers: 1000}}
calls:
  - {{from: cache, to: db, on: miss}}
{extra}""")


def test_write_through_hits_are_never_stale():
    """A write-through cache that every write passes: the entry always holds the newest
    version (20 keys, 200 reads/s and 50 writes/s for 20 s: some 4,000 hits)."""
    res = simarch.simulate(_rw_design("write_through", 20, 10.0, 2.5), duration="20s", warmup="1s",
                           seed=5, progress=False)
    fr = res.freshness().set_index(["component", "class"])
    assert fr.loc[("cache", "read"), "reads"] > 3000
    assert fr.loc[("cache", "read"), "stale"] == 0
    row = res.components().loc["cache"]
    assert row["stale_hits"] == 0 and row["writes"] > 500
    assert row["hit_ratio"] > 0.99  # writes fill the entries too (write-allocate)


@pytest.mark.slow
def test_write_around_stale_share_matches_closed_form():
    """write_around with invalidation delay d, no TTL, reads at r and writes at w per key
    (Poisson), zero service times. A read is a stale hit when the last write (A ago) is
    younger than d, no earlier write's invalidation fell after it (no write in a window of
    length A, d earlier), and the entry existed at that write (a read since the last
    invalidation before it, which came an Exp(w) time earlier): P = r/(r+w) (1 - e^{-2wd})/2.
    For r = 5, w = 1: d = 0.5 s gives 0.26340, d = 0.1 s gives 0.07551.

    N = 6 replications x 60 s per delay (100 keys, 600 requests/s: ~30,000 reads each);
    SE of the mean ~0.0018 (d = 0.5 s) and ~0.0011 (d = 0.1 s); tolerance 4 SE. (Measured at
    seeds 0-5: 0.2642 and 0.0756.)
    """
    n_keys, r, w = 100, 5.0, 1.0
    for d in (0.5, 0.1):
        fracs = []
        for seed in range(6):
            arch = _rw_design("write_around", n_keys, r, w, cache=f", invalidation_delay: {d}s")
            res = simarch.simulate(arch, duration="60s", warmup="10s", seed=seed, progress=False)
            fracs.append(res.freshness().set_index("component").loc["cache", "stale_fraction"])
        theory = r / (r + w) * (1 - math.exp(-2 * w * d)) / 2
        m, se = _mean_se(fracs)
        assert abs(m - theory) <= 4 * se, f"d={d}: stale share {m:.5f} vs {theory:.5f} (SE {se:.5f}, N=6x60s)"


def test_write_around_without_delay_has_no_stale_hits():
    """Invalidation at once (delay 0, the default): with an instantaneous store no hit can
    see an older version (20 keys, 20 s)."""
    res = simarch.simulate(_rw_design("write_around", 20, 10.0, 2.5), duration="20s", warmup="1s",
                           seed=6, progress=False)
    row = res.components().loc["cache"]
    assert row["stale_hits"] == 0 and row["hit_ratio"] < 0.9  # writes empty the entries


def _dirty_periods_lost(ack: np.ndarray, keys: np.ndarray, delay: float, loss: float) -> int:
    """Writes lost at ``loss``: per key, a write that finds the key clean starts a dirty
    period of ``delay`` whose writes are handed to the store at its end; those of the period
    still open at ``loss`` are lost (and the key is clean after the loss)."""
    lost = 0
    for k in np.unique(keys):
        t = np.sort(ack[keys == k])
        t = t[t < loss]
        end = -math.inf
        n = 0
        for x in t:
            if x >= end:  # clean: a new dirty period
                end, n = x + delay, 0
            n += 1
        if end > loss:
            lost += n
    return lost


@pytest.mark.parametrize("fault", ["cache_flush", "crash"])
def test_write_back_loses_the_writes_not_yet_written_back(fault):
    """write_back with a 0.5 s delay, 5 keys, 20 writes/s, a flush (or a crash of the
    cache) at 10 s: the lost writes are exactly those of the dirty periods open at the loss
    (reconstructed per key from the acknowledgement times and keys in the request records);
    the store received one write per closed period."""
    extra = ("faults:\n  - {kind: cache_flush, target: cache, at: 10s}\n" if fault == "cache_flush"
             else "faults:\n  - {kind: crash, target: cache, at: 10s, duration: 1s}\n")
    arch = _rw_design("write_back", 5, 1.0, 4.0, extra=extra, cache=", write_back_delay: 0.5s")
    res = simarch.simulate(arch, duration="12s", warmup="0s", seed=8, progress=False, hops=True)
    req = res.requests
    keys = res.hops.request_key
    ok_writes = ((req["class"] == "write") & (req["status"] == "ok")).to_numpy()
    expected = _dirty_periods_lost(req["end_s"].to_numpy()[ok_writes], keys[ok_writes], 0.5, 10.0)
    assert expected > 3
    assert res.lost_writes == {"cache": expected}
    assert res.components().loc["cache", "lost_writes"] == expected
    assert "acknowledged write(s) lost" in res.report()


def test_write_back_reads_after_a_loss_are_stale():
    """After a flush the store holds only what was written back: the reads of the keys whose
    writes were lost return older versions (stale, in the cache's own clock)."""
    arch = _rw_design("write_back", 5, 20.0, 4.0, cache=", write_back_delay: 2s",
                      extra="faults:\n  - {kind: cache_flush, target: cache, at: 5s}\n")
    res = simarch.simulate(arch, duration="8s", warmup="1s", seed=9, progress=False)
    fr = res.freshness().set_index(["component", "class"])
    assert fr.loc[("cache", "read"), "stale"] > 0
    assert res.lost_writes["cache"] > 0


# ---------------------------------------------------------------------------- errors
_BASE = """
name: e
workload:
  rate: 10
  requests:
    read: {weight: 1, keys: {uniform: 10}}
    write: {weight: 1, keys: {uniform: 10}}
components:
  cache: {kind: cache, %s}
  db: {kind: datastore}
calls:
  - {from: cache, to: db, on: miss%s}
"""


@pytest.mark.parametrize("cache, call, path, words", [
    ("hit_ratio: 0.9, write_policy: write_through", "", ("components", "cache"), ["write_policy", "capacity"]),
    ("hit_ratio: 0.9, coalesce: true", "", ("components", "cache"), ["coalesce", "capacity"]),
    ("capacity: 10, invalidation_delay: 1s", "", ("components", "cache"), ["write_around"]),
    ("capacity: 10, write_policy: write_through, invalidation_delay: 1s", "", ("components", "cache"),
     ["write_around"]),
    ("capacity: 10, write_back_delay: 1s", "", ("components", "cache"), ["write_back"]),
    ("capacity: 10, write_policy: write_back", ", requests: [read]", ("components", "cache", "write_policy"),
     ["no store behind it", "'write'", "on: miss"]),
    ("capacity: 10, write_policy: write_sideways", "", ("components", "cache", "write_policy"),
     ["write_through"]),
])
def test_bad_cache_fields_name_the_field(cache, call, path, words):
    with pytest.raises(SpecError) as e:
        _arch(_BASE % (cache, call))
    assert e.value.path[:len(path)] == path, e.value.path
    for word in words:
        assert word in str(e.value), str(e.value)


def test_che_with_writes_reduces_to_che_and_to_its_limits():
    """The static model of a cache whose keys are written (kinds/cache.py
    ``_che_with_writes``): with no writes it is Che's approximation; with room for every key
    a write-around read hits with probability r/(r+w) (its key's last request was a read),
    a write-through read always; and invalidation only lowers the hit ratio."""
    from simarch.kinds.cache import _che_with_writes, che_hit_ratio

    rng = np.random.default_rng(3)
    r = rng.pareto(1.2, 2000) + 0.01
    h0, per0 = che_hit_ratio(r / r.sum(), 300)
    h1, per1 = _che_with_writes(r, np.zeros(2000), 300, refresh=False)
    assert h1 == pytest.approx(h0, rel=1e-9) and np.allclose(per1, per0, atol=1e-9)
    w = 0.5 * r
    _, around = _che_with_writes(r, w, 5000, refresh=False)
    assert np.allclose(around, r / (r + w))
    _, through = _che_with_writes(r, w, 5000, refresh=True)
    assert np.allclose(through, 1.0)
    h_around, _ = _che_with_writes(r, w, 300, refresh=False)
    h_through, _ = _che_with_writes(r, w, 300, refresh=True)
    assert h_around < h0 < h_through
