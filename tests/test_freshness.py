"""The freshness accounting (simarch/runtime/freshness.py): key clocks, session guarantees,
read logs and their collection into results and the SLO verdict. Exact checks: no sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simarch.results.slo import judge, margin, meets
from simarch.runtime.freshness import Freshness, KeyClock, Sessions


def test_key_clock_versions_and_age():
    c = KeyClock()
    assert c.version(7) == 0 and c.age(7, 0, 5.0) == 0.0
    assert c.commit(7, 1.0) == 1
    assert c.commit(7, 3.0) == 2
    assert c.version(7) == 2 and c.committed_at(7, 2) == 3.0
    # a copy with version 0 at t=4 has missed the write of t=1: 3 s behind
    assert c.age(7, 0, 4.0) == pytest.approx(3.0)
    # with version 1 it has missed only the write of t=3
    assert c.age(7, 1, 4.0) == pytest.approx(1.0)
    assert c.age(7, 2, 4.0) == 0.0
    assert c.writes() == 2


def test_sessions_read_your_writes_and_monotonic_reads():
    s = Sessions()
    assert s.check_read(1, 0) == (False, False)
    s.wrote_version(1, 3)
    assert s.check_read(1, 2) == (True, False)  # older than its own write
    assert s.check_read(1, 3) == (False, False)
    assert s.check_read(1, 2) == (True, True)  # and older than what it read before
    s.wrote_version(1, 2)  # an older acknowledgement never lowers the mark
    assert s.wrote[1] == 3


def test_read_log_counts_after_the_warm_up_only_and_rows():
    f = Freshness(2, warmup=10.0)
    log = f.log("db")
    assert f.log("db") is log
    log.read(0, 0.5, now=5.0)  # warm-up: not counted
    log.read(0, 0.0, now=11.0)
    log.read(0, 0.2, now=12.0)
    log.read(1, 0.0, now=12.0)
    log.session(0, True, False, now=12.0)
    rows = f.rows(["read", "other"])
    by = {(r["component"], r["class"]): r for r in rows}
    assert by["db", "read"]["reads"] == 2 and by["db", "read"]["stale"] == 1
    assert by["db", "read"]["stale_fraction"] == 0.5
    assert by["db", "read"]["age_p50_ms"] == pytest.approx(200.0)
    assert by["db", "read"]["read_your_writes_violations"] == 1
    assert by["db", "other"]["stale"] == 0 and math.isnan(by["db", "other"]["age_p99_ms"])
    assert by["db", "all"]["reads"] == 3 and by["db", "all"]["stale"] == 1
    per = f.per_class(["read", "other"])
    assert per == {"read": 0.5, "other": 0.0, "all": pytest.approx(1 / 3)}


def test_served_version_side_channel():
    f = Freshness(1, 0.0)
    f.clock("db").commit(4, 1.0)
    f.clock("db").commit(4, 2.0)
    f.served("db", 4, 1)
    assert f.returned("db", 4) == 1  # what the replica returned
    assert f.returned("db", 4) == 2  # used once: then the store's newest
    f.served("db", 5, 0)
    assert f.returned("db", 4) == 2  # a different key's read is not this one's


def test_slo_stale_reads_target():
    rows = judge({"stale_reads": 0.001}, {"stale_reads": 0.002})
    assert rows[0]["met"] is False and rows[0]["actual"] == 0.002
    assert meets({"stale_reads": 0.001}, {"stale_reads": 0.0005}) is True
    assert margin({"stale_reads": 0.001}, {"stale_reads": 0.0005}) == pytest.approx(1.0)
    assert margin({"stale_reads": 0.001}, {"stale_reads": 0.0}) == math.inf


def test_a_design_without_copies_keeps_no_freshness_accounting():
    import simarch
    arch = simarch.load("architectures/single_server.yaml")
    r = simarch.simulate(arch, duration=20, warmup=2, seed=1)
    assert r.freshness_stats is None and "stale_reads" not in r.summary().columns
    assert len(r.freshness()) == 0 and "freshness" not in r.to_dict()


def test_a_stale_reads_slo_makes_the_run_account_and_judge():
    """With ``slo: {stale_reads}`` the run keeps the accounting even when nothing can lag
    (then no read is stale: the target is met with 0%)."""
    import simarch
    arch = simarch.load("architectures/single_server.yaml").with_changes({"slo.stale_reads": 0.001})
    r = simarch.simulate(arch, duration=20, warmup=2, seed=1)
    assert r.summary().loc["all", "stale_reads"] == 0.0
    slo = r.slo()
    assert bool(slo.loc["stale_reads", "met"]) and np.isclose(slo.loc["stale_reads", "actual"], 0.0)
    assert "stale_reads" in r.report()


def test_a_read_counts_once_where_it_leaves_the_copies():
    """A store behind a cache: the cache logs the version the store returned on a miss, so
    the summary's stale share counts each read once, at the cache; the store's own row
    stays in ``freshness()``."""
    f = Freshness(1, 0.0)
    f.log("cache").read(0, 0.0, 1.0)
    f.log("cache").read(0, 2.0, 1.0)
    f.log("db").read(0, 0.0, 1.0)  # the miss, seen again at the store
    assert f.per_class(["read"], {"db": {"api", "cache"}, "cache": {"api"}})["read"] == 0.5
    assert f.per_class(["read"])["read"] == pytest.approx(1 / 3)  # (without the graph: twice)
