"""A workload given by its users: the rate derived from daily active users, requests per user
and the peak-to-mean ratio; the storage its writes fill; that the simulation, the static
analysis and the work estimate all see the derived rate; the errors; what ``validate`` shows.

Every expected number is written as the arithmetic that gives it, from the spec's values.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
from cli_helpers import simarch_cli

import simarch
from simarch.model.spec import yaml_load
from simarch.model.workload import (
    SECONDS_PER_MONTH,
    SECONDS_PER_YEAR,
    derive_rate,
    rate_profile,
    storage_estimate,
)
from simarch.run.budget import estimate

DAY = 86_400

FEED = {
    "name": "feed",
    "workload": {
        "daily_active_users": "2M",
        "requests_per_user": 50,
        "peak_to_mean": 3,
        "entry": "api",
        "requests": {"read": {"weight": 9}, "write": {"weight": 1}},
        "storage": {"per_write": "2KB", "retention": "5y"},
    },
    "components": {
        "api": {"kind": "service", "instances": 8, "workers": 64, "service_time": "1ms"},
        "db": {"kind": "datastore", "shards": 4, "replicas": 2, "workers": 64, "service_time": "1ms"},
    },
    "calls": [{"from": "api", "to": "db"}],
}


def feed(**workload) -> simarch.Architecture:
    return simarch.load({**FEED, "workload": {**FEED["workload"], **workload}})


# --------------------------------------------------------------------------- the rate


def test_rate_derivation_by_hand():
    wl = feed().spec.workload
    d = derive_rate(wl)
    assert d is not None
    assert d.requests_per_day == 2_000_000 * 50 == 100_000_000
    assert d.mean_rate == pytest.approx(100_000_000 / 86_400)  # 1,157.4 req/s
    assert d.peak_rate == pytest.approx(100_000_000 / 86_400 * 3)  # 3,472.2 req/s
    # the spec's two views of it, and what the simulation reads, are the same numbers
    assert wl.mean_rate == d.mean_rate
    assert wl.base_rate == d.peak_rate == d.simulated_rate
    assert derive_rate(wl, load=2.5).simulated_rate == pytest.approx(100_000_000 / 86_400 * 3 * 2.5)


@pytest.mark.parametrize(("users", "per_user", "ratio", "rate"), [
    ("1.5k", "2k", "2x", 1_500 * 2_000 / DAY * 2),
    (864_000, 10, None, 864_000 * 10 / DAY),  # no peak_to_mean: the peak is the mean
    ("2B", 0.5, "150%", 2e9 * 0.5 / DAY * 1.5),
    ("3M", "1e2", 1, 3e6 * 100 / DAY),
])
def test_rate_forms(users, per_user, ratio, rate):
    wl = {"daily_active_users": users, "requests_per_user": per_user}
    if ratio is not None:
        wl["peak_to_mean"] = ratio
    arch = simarch.load({"workload": wl, "components": {"api": {"kind": "service"}}})
    assert arch.spec.workload.base_rate == pytest.approx(rate, rel=1e-12)


def test_profiles_multiply_the_derived_rate():
    peak = 100_000_000 / DAY * 3
    step = feed(profile={"step": {"at": "10s", "to": 2}}).spec.workload
    rate, top = rate_profile(step, 1.0, None, 60.0)
    assert rate(0.0) == pytest.approx(peak) and rate(11.0) == pytest.approx(2 * peak)
    assert top == pytest.approx(2 * peak)
    diurnal = feed(profile={"diurnal": {"amplitude": 0.5}}).spec.workload
    assert rate_profile(diurnal, 2.0, None, 60.0)[1] == pytest.approx(peak * 2 * 1.5)
    assert derive_rate(diurnal, 2.0).profile_peak == pytest.approx(peak * 2 * 1.5)


def test_static_analysis_and_work_estimate_see_the_derived_rate():
    arch = feed()
    peak = 100_000_000 / DAY * 3
    rep = simarch.capacity_report(arch, "2x")
    assert rep.table.loc["api", "arrival_rps"] == pytest.approx(2 * peak)
    work = estimate(arch, 2.0, duration=300.0, warmup=30.0)
    assert work.requests == pytest.approx(2 * peak * 330)


def test_over_budget_names_daily_active_users():
    arch = feed(daily_active_users="100B")  # 100e9 x 50 / 86,400 x 3 = 1.7e8 req/s
    with pytest.raises(simarch.SpecError) as err:
        simarch.simulate(arch, duration="10s", warmup="0s", progress=False)
    assert err.value.path == ("workload", "daily_active_users")
    assert "budget" in err.value.message


# --------------------------------------------------------------------------- the simulation

# 432,000 users x 20 requests/day / 86,400 s = 100 req/s mean; x 2 peak-to-mean = 200 req/s
SMALL = textwrap.dedent("""\
    name: small
    workload:
      daily_active_users: 432k
      requests_per_user: 20
      peak_to_mean: 2
    components:
      api: {kind: service, instances: 4, workers: 16, service_time: {exponential: 2ms}}
    """)
SMALL_SPEC = yaml_load(SMALL)
SMALL_RATE = 432_000 * 20 / DAY * 2  # 200 req/s


def _within_poisson(measured_rps: float, rate: float, window: float) -> None:
    """The arrivals of a Poisson process of ``rate`` over ``window`` are N ~ Poisson(rate x
    window): SE of the count sqrt(N), of the rate sqrt(N) / window. Successes per second in
    an unsaturated design are the arrivals, up to the few requests in flight at the window's
    edges. Tolerance: 4 SE (a false alarm once in about 16,000 seeds)."""
    n = rate * window
    se = math.sqrt(n) / window
    assert abs(measured_rps - rate) <= 4 * se, (measured_rps, rate, se)


def test_simulation_runs_at_the_derived_rate():
    # N = 200 req/s x 20 s = 4,000 expected arrivals; SE = sqrt(4000) / 20 s = 3.16 req/s
    # (1.6%); tolerance 4 SE = 12.6 req/s
    arch = simarch.load(SMALL_SPEC)
    assert arch.spec.workload.base_rate == pytest.approx(SMALL_RATE) == pytest.approx(200.0)
    r = simarch.simulate(arch, duration="20s", warmup="2s", seed=3, progress=False)
    s = r.summary().loc["all"]
    assert s["availability"] == 1.0
    _within_poisson(s["throughput_rps"], SMALL_RATE, 20.0)


def test_load_2x_doubles_the_derived_rate(tmp_path: Path):
    # N = 400 req/s x 10 s = 4,000 expected arrivals; SE = sqrt(4000) / 10 s = 6.3 req/s;
    # tolerance 4 SE = 25.3 req/s around 400, far from the 1x rate of 200
    path = tmp_path / "small.yaml"
    path.write_text(SMALL, encoding="utf-8")
    proc = simarch_cli("run", path, "--load", "2x", "--duration", "10s", "--warmup", "1s",
                       "--json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)["summary"]
    assert s["availability"] == 1.0
    _within_poisson(s["throughput_rps"], 2 * SMALL_RATE, 10.0)


# --------------------------------------------------------------------------- storage


def test_storage_estimate_by_hand():
    est = feed().workload_summary().storage
    assert est is not None
    mean = 2_000_000 * 50 / DAY  # req/s
    share = 1 / (9 + 1)  # class 'write' of weights read 9, write 1
    per_s = mean * share * 2_000  # 2KB = 2,000 bytes
    assert est.classes == ("write",) and est.share == pytest.approx(share)
    assert est.write_rate == pytest.approx(mean * share)  # 115.7 writes/s
    assert est.bytes_per_second == pytest.approx(per_s)  # 231 KB/s
    assert est.per_day == pytest.approx(100_000_000 * share * 2_000)  # 2e10 = 20 GB/day
    assert est.per_month == pytest.approx(100_000_000 * share * 2_000 * 365 / 12)  # 608 GB
    assert est.per_year == pytest.approx(100_000_000 * share * 2_000 * 365)  # 7.3 TB/year
    assert est.logical == pytest.approx(100_000_000 * share * 2_000 * 365 * 5)  # 36.5 TB
    (db,) = est.stores
    assert (db.name, db.shards, db.replicas) == ("db", 4, 2)
    assert db.logical == pytest.approx(3.65e13)
    assert db.stored == pytest.approx(3.65e13 * 2)  # 73 TB over both replicas
    assert db.per_shard == pytest.approx(3.65e13 * 2 / 4)  # 18.25 TB a shard, replicas included
    assert db.per_copy == pytest.approx(3.65e13 / 4)  # 9.125 TB on each box
    assert SECONDS_PER_YEAR == 365 * DAY and SECONDS_PER_MONTH == 365 * DAY / 12


def test_storage_fills_at_the_mean_not_the_peak():
    flat = feed(peak_to_mean=1).workload_summary().storage
    peaky = feed(peak_to_mean=10).workload_summary().storage
    assert flat.per_day == peaky.per_day
    doubled = feed().workload_summary("2x").storage
    assert doubled.per_day == pytest.approx(2 * flat.per_day)


def test_storage_per_request_and_per_datastore():
    # 'checkout' writes by its op, 'insert_audit' by its name; 'search' reads. Only 'checkout' reaches
    # 'orders'; both writing classes reach 'log'; no retention: sizes per year.
    arch = simarch.load({
        "workload": {"rate": "120/s", "entry": "api",
                     "requests": {"search": {"weight": 6}, "checkout": {"weight": 3, "op": "write"},
                                  "insert_audit": {"weight": 1}, "update": {"weight": 2, "op": "read"}},
                     "storage": {"per_write": "1KiB"}},
        "components": {
            "api": {"kind": "service", "workers": 8},
            "orders": {"kind": "datastore", "replicas": 3},
            "log": {"kind": "datastore", "shards": 2},
            "cache": {"kind": "cache", "hit_ratio": 0.5},
        },
        "calls": [{"from": "api", "to": "orders", "requests": ["checkout", "search"]},
                  {"from": "api", "to": "log", "requests": ["checkout", "insert_audit"]},
                  {"from": "api", "to": "cache"}],
    })
    est = arch.workload_summary().storage
    assert est.from_rate and est.mean_rate == 120.0  # the spec's rate taken as the mean
    # 'update' is given op: read (a write by its name otherwise)
    assert est.classes == ("checkout", "insert_audit")
    assert est.share == pytest.approx((3 + 1) / (6 + 3 + 1 + 2))
    assert est.per_year == pytest.approx(120 * 4 / 12 * 1024 * 365 * DAY)
    stores = {s.name: s for s in est.stores}
    assert set(stores) == {"orders", "log"}  # a cache keeps nothing for good
    assert stores["orders"].classes == ("checkout",)
    assert stores["orders"].logical == pytest.approx(120 * 3 / 12 * 1024 * 365 * DAY)
    assert stores["orders"].stored == pytest.approx(120 * 3 / 12 * 1024 * 365 * DAY * 3)
    assert stores["log"].logical == pytest.approx(120 * 4 / 12 * 1024 * 365 * DAY)
    assert stores["log"].per_copy == pytest.approx(120 * 4 / 12 * 1024 * 365 * DAY / 2)

    every = arch.with_changes({"workload.storage": {"per_request": 100, "retention": "90d"}})
    est = every.workload_summary().storage
    assert est.per_request and est.share == 1.0
    assert est.logical == pytest.approx(120 * 100 * 90 * DAY)
    assert {s.name: s.share for s in est.stores} == pytest.approx(
        {"orders": (6 + 3) / 12, "log": (3 + 1) / 12})


def test_storage_estimate_without_storage_is_none():
    arch = simarch.load(SMALL_SPEC)
    assert storage_estimate(arch.spec.workload) is None
    assert arch.workload_summary().storage is None


# --------------------------------------------------------------------------- the report


def test_summary_text_and_html():
    summary = feed().workload_summary()
    text = str(summary)
    assert text.splitlines() == [
        "Workload from users:",
        "  2,000,000 daily active users x 50 requests/user/day = 100,000,000 requests/day",
        "  / 86,400 s = 1,157 req/s mean; x 3 peak-to-mean = 3,472 req/s at the peak (simulated at 1x)",
        "Storage (filled at the mean rate, not the peak):",
        "  1,157 req/s mean x 10% that write (class 'write') = 116 writes/s x 2 KB = 231 KB/s",
        "  = 20 GB/day, 608 GB/month, 7.3 TB/year (a month is 1/12 of a 365-day year)",
        "  after 5 years: 36.5 TB logical",
        "  db: 36.5 TB x 2 replicas = 73 TB; / 4 shards = 18.2 TB per shard, 9.12 TB on each replica",
    ]
    page = summary._repr_html_()
    assert "<li>2,000,000 daily active users" in page and "class &#x27;write&#x27;" in page
    assert repr(summary) == "WorkloadSummary('feed', load=1x, 3472.22 req/s, 7.3 TB/year)"
    assert "x 2 load = 6,944 req/s simulated" in str(feed().workload_summary("2x"))


def test_a_rate_workload_has_an_empty_summary():
    arch = simarch.load(Path(__file__).resolve().parents[1] / "architectures/cached_sharded.yaml")
    summary = arch.workload_summary()
    assert summary.empty and str(summary) == ""
    with pytest.raises(simarch.SpecError) as err:
        arch.workload_summary("fast")
    assert err.value.path == ("load",)


def test_validate_shows_the_derivation_first(tmp_path: Path):
    path = tmp_path / "feed.yaml"
    path.write_text(json.dumps(FEED), encoding="utf-8")  # JSON is YAML
    proc = simarch_cli("validate", path, "--load", "2x")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Workload from users:\n  2,000,000 daily active users x 50")
    assert "3,472 req/s at the peak; x 2 load = 6,944 req/s simulated" in out
    assert "after 5 years: 73 TB logical" in out  # twice the traffic, twice the data
    assert out.index("Storage (filled") < out.index("spec is valid") < out.index("Static capacity")
    assert "6,944" in out.split("Static capacity")[1]  # the analysis at the derived rate x 2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("workload", "path", "fragments"), [
    ({"daily_active_users": 0, "requests_per_user": 5}, ("workload", "daily_active_users"), (">= 1",)),
    ({"daily_active_users": "2 million", "requests_per_user": 5}, ("workload", "daily_active_users"),
     ("'2M'", "'2 million'")),
    ({"daily_active_users": "-2M", "requests_per_user": 5}, ("workload", "daily_active_users"),
     ("negative",)),
    ({"daily_active_users": "2M", "requests_per_user": 0}, ("workload", "requests_per_user"), ("> 0",)),
    ({"daily_active_users": "2M", "requests_per_user": 5, "peak_to_mean": 0.9},
     ("workload", "peak_to_mean"), (">= 1", "0.9")),
    ({"daily_active_users": "2M", "requests_per_user": 5, "peak_to_mean": "high"},
     ("workload", "peak_to_mean"), ("'3x'", "'high'")),
    ({"daily_active_users": "2M", "requests_per_user": 5, "rate": 10}, ("workload",), ("not both",)),
    ({"daily_active_users": "2M", "requests_per_user": 5, "users": 3, "think_time": "1s"},
     ("workload",), ("not both",)),
    ({"daily_active_users": "2M"}, ("workload",), ("'requests_per_user'",)),
    ({"requests_per_user": 5, "rate": 10}, ("workload",), ("goes with 'daily_active_users'",)),
    ({"daily_active_users": "2M", "requests_per_user": 5, "profile": {"trace": "rates.csv"}},
     ("workload",), ("'trace'", "absolute")),
    ({"rate": 10, "storage": {"retention": "5y"}}, ("workload", "storage"), ("needs a size",)),
    ({"rate": 10, "storage": {"per_write": "2KB", "per_request": "1KB"}}, ("workload", "storage"),
     ("not both",)),
    ({"rate": 10, "storage": {"per_write": "-2KB"}}, ("workload", "storage", "per_write"), ("negative",)),
    ({"rate": 10, "storage": {"per_write": "2KB", "retention": 0}},
     ("workload", "storage", "retention"), ("> 0",)),
    ({"rate": 10, "storage": {"per_write": "2KB", "retention": "5yr"}},
     ("workload", "storage", "retention"), ("'5yr'", "d, y")),
    ({"rate": 10, "storage": {"per_write": "2KB", "kept": "5y"}}, ("workload", "storage", "kept"),
     ("unknown field", "retention")),
    ({"rate": 10, "requests": {"browse": {}}, "storage": {"per_write": "2KB"}},
     ("workload", "storage", "per_write"), ("no request class writes",)),
    ({"users": 3, "think_time": "1s", "storage": {"per_request": "2KB"}}, ("workload",), ("mean rate",)),
])
def test_errors_name_the_field(workload, path, fragments):
    with pytest.raises(simarch.SpecError) as err:
        simarch.load({"workload": workload, "components": {"api": {"kind": "service"}}})
    assert err.value.path == path, str(err.value)
    for f in fragments:
        assert f in err.value.message, str(err.value)
    assert "and 1 more error" not in err.value.message  # one error, the one that matters
