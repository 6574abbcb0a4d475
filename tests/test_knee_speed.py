"""The cheaper knee search: runs stopped once their SLO is certainly missed never change a
verdict, and the search placed by the SLO margins and the static estimate ends where a
bisection of the same bracket ends, in fewer runs."""

from __future__ import annotations

import importlib
import math
import pickle

import numpy as np
import pytest
from cli_helpers import ROOT

import simarch
from simarch import Architecture
from simarch.results.slo import QUANTILES, SoFar, certain_miss, margin, meets
from simarch.run.early_stop import RunStopped
from simarch.study.experiment import Task, run_task

compare_mod = importlib.import_module("simarch.study.compare")
_KneeSearch = compare_mod._KneeSearch


def _mm1(rate: float = 10.0, **slo) -> Architecture:
    # one M/M/1 station, mu = 100/s; its p99 is ln(100) / (mu - lambda)
    return Architecture("mm1", workload={"rate": rate}, slo=slo or {"p99": "100ms"}).add(
        "s", kind="service", workers=1, service_time={"exponential": "10ms"})


def _slo(arch: Architecture) -> dict[str, float]:
    return {k: v for k, v in arch.spec.slo.model_dump().items() if v is not None}


def _verdict(arch: Architecture, result) -> bool:
    """The verdict the knee search judges a run by (compare's: the metrics, on all requests)."""
    return bool(meets(_slo(arch), result.summary().loc["all"]))


def _stopped_or_result(arch, **kw):
    try:
        return simarch.simulate(arch, stop_on_miss=True, progress=False, **kw)
    except RunStopped as e:
        return e


# ------------------------------------------------------------------ the certain-miss rules


def test_the_percentile_rule_is_a_proof():
    # slow >= (1 - q) * most + 2 successes over T  =>  np.percentile(q) > T, for any n <= most
    rng = np.random.default_rng(1)
    for name, q in QUANTILES.items():
        for most in (1, 2, 3, 10, 57, 100, 101, 999, 1000, 4321):
            need = math.ceil((1 - q) * most + 2)
            for n in sorted({need, most, max(need, most // 2)}):
                if need > n:
                    continue
                lat = np.concatenate([rng.uniform(0, 1, n - need), rng.uniform(1 + 1e-6, 2, need)])
                assert np.percentile(lat, q * 100) > 1.0, (name, most, n)
                w = SoFar(0.0, most, 0, {1.0: need}, 0.0, 0)
                assert certain_miss({name: 1.0}, w) is not None
                assert certain_miss({name: 1.0}, SoFar(0.0, most, 0, {1.0: need - 1}, 0.0, 0)) is None


def test_the_availability_rule_is_a_proof():
    for target in (0.9, 0.99, 0.999, 0.99999, 1.0):
        for most in (1, 10, 999, 1000, 123456):
            failed = math.ceil((1 - target) * most + 1)
            if failed > most:
                continue
            assert certain_miss({"availability": target}, SoFar(0.0, most, failed, {}, 0.0, 0))
            assert certain_miss({"availability": target}, SoFar(0.0, most, failed - 1, {}, 0.0, 0)) is None
            for finished in range(failed, most + 1, max(1, most // 7)):  # whatever finishes later
                assert (finished - failed) / finished < target


def test_requests_in_flight_count_only_with_availability_too():
    slo = {"p99": 0.1, "availability": 0.99}
    most = 1000  # allowances: 10 + 1 failures, 10 + 2 slow
    assert certain_miss(slo, SoFar(0.0, most, 5, {0.1: 5}, 0.0, 12)) is None  # 22 < 23
    assert "in flight" in certain_miss(slo, SoFar(0.0, most, 5, {0.1: 7}, 0.0, 12))  # 24
    # without an availability target a request in flight may still fail, out of the p99
    assert certain_miss({"p99": 0.1}, SoFar(0.0, most, 0, {0.1: 0}, 0.0, 10**6)) is None


def test_margin_is_positive_exactly_when_met():
    slo = {"p99": 0.1, "availability": 0.999}
    for p99, avail in [(50, 1.0), (100, 1.0), (101, 1.0), (50, 0.998), (50, 0.9991), (float("nan"), 1.0),
                       (0.0, 0.9995)]:
        m = margin(slo, {"p99_ms": p99, "availability": avail})
        if math.isnan(p99):
            assert math.isnan(m)
        else:
            assert (m >= 0) == meets(slo, {"p99_ms": p99, "availability": avail}), (p99, avail, m)


def test_run_stopped_is_a_simarch_error_that_pickles():
    e = RunStopped("because", 12.5, 30.0)
    assert isinstance(e, simarch.SimarchError)
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and str(e).startswith(RunStopped.PREFIX) and back.reason == "because"


# ------------------------------------------------------------------ early stop on real runs


PASSING = [
    (ROOT / "architectures" / "single_server.yaml", 1.0, "10s", "2s"),
    (ROOT / "architectures" / "cache_flush.yaml", 1.0, "20s", "20s"),
    (ROOT / "tests" / "golden" / "specs" / "closed_queue.yaml", 0.5, "10s", "3s"),
]


@pytest.mark.parametrize("spec, load, duration, warmup", PASSING)
def test_a_run_that_meets_its_slo_is_never_stopped(spec, load, duration, warmup):
    arch = simarch.load(spec)
    plain = simarch.simulate(arch, load=load, duration=duration, warmup=warmup, progress=False)
    assert _verdict(arch, plain)
    watched = _stopped_or_result(arch, load=load, duration=duration, warmup=warmup)
    assert not isinstance(watched, RunStopped), watched
    assert watched.to_dict() == plain.to_dict()


def _hang() -> Architecture:
    # nothing ever finishes: only the requests in flight can tell
    return Architecture("hang", workload={"rate": 20}, slo={"p99": "100ms", "availability": 0.99}).add(
        "s", kind="service", workers=1000, service_time="1000s")


def _errors() -> Architecture:
    return Architecture.from_dict({
        "name": "flaky", "workload": {"rate": 50}, "slo": {"availability": 0.99},
        "components": {"s": {"kind": "service", "workers": 64, "service_time": "1ms"}},
        "faults": [{"kind": "errors", "target": "s", "probability": 0.05}],
    })


def _closed() -> Architecture:
    return Architecture("users", workload={"users": 50, "think_time": {"exponential": "100ms"}},
                        slo={"p95": "50ms"}).add(
        "s", kind="service", workers=2, service_time={"exponential": "10ms"})


SATURATED = [
    (_mm1(), 15.0, "p99", "took longer than 100 ms"),  # lambda 150/s > mu 100/s
    (_errors(), 1.0, "availability", "failed"),
    (_hang(), 1.0, "in flight", "still in flight"),
    (_closed(), 1.0, "p95", "took longer than 50 ms"),
]


@pytest.mark.parametrize("arch, load, rule, words", SATURATED, ids=[s[2] for s in SATURATED])
def test_a_run_stopped_early_misses_when_run_to_the_end(arch, load, rule, words):
    kw = dict(load=load, duration="20s", warmup="2s")
    stopped = _stopped_or_result(arch, **kw)
    assert isinstance(stopped, RunStopped), f"not stopped: {rule}"
    assert words in stopped.reason
    assert 2.0 <= stopped.at < stopped.end == 22.0
    assert stopped.at < 12.0  # a clear miss is called early
    full = simarch.simulate(arch, progress=False, **kw)
    assert not _verdict(arch, full)


def test_early_stop_never_changes_a_verdict_near_the_knee():
    # the M/M/1 knee is at 5.4x: runs on both sides of it, and close to it
    arch = _mm1()
    stopped = passed = 0
    for load in (4.0, 5.0, 5.3, 5.5, 5.8, 6.5, 8.0, 9.5):
        for seed in (1, 2):
            kw = dict(load=load, duration="30s", warmup="2s", seed=seed)
            plain = simarch.simulate(arch, progress=False, **kw)
            watched = _stopped_or_result(arch, **kw)
            if isinstance(watched, RunStopped):
                stopped += 1
                assert not _verdict(arch, plain), (load, seed, watched)
            else:
                passed += _verdict(arch, plain)
                assert watched.to_dict() == plain.to_dict()
    assert stopped >= 5 and passed >= 5  # both kinds were exercised


def test_study_tasks_stop_only_when_asked():
    arch = _mm1()
    task = Task(arch.to_dict(), None, 15.0, 20.0, 2.0, 1, 0)
    row = run_task(task)
    assert row["error"] is None and row["slo_met"] is False
    stopped = run_task(Task(arch.to_dict(), None, 15.0, 20.0, 2.0, 1, 0, {"stop_on_miss": True}))
    assert stopped["error"].startswith(RunStopped.PREFIX) and "p99" in stopped["error"]


# ------------------------------------------------------------------ the search


def _bisection(cells: int, met) -> int:
    a, b = 0, cells
    while b - a > 1:
        m = (a + b) // 2
        a, b = (m, b) if met(m) else (a, m)
    return a


def _drive(search: _KneeSearch, met, margin_at) -> list[int]:
    tried = []
    while not search.done:
        k = search.next_point()
        assert search.a < k < search.b
        tried.append(k)
        search.record(k, met(k), margin_at(k))
    assert search.b - search.a == 1
    return tried


@pytest.mark.parametrize("sat_factor", [1.0, 0.5, 0.9, 1.3, 3.0, math.inf])
def test_the_search_ends_where_a_bisection_ends(sat_factor):
    # a queue-like margin: the latency target is crossed at `knee`, the design saturates at
    # `sat`; the static estimate may be right, too low, too high or missing
    steps, lo, hi = 5, 2.0, 10.0
    cells = 2 ** steps
    res = (hi - lo) / cells
    worst = 0
    for knee in np.linspace(lo + 0.01, hi - 0.01, 37):
        sat = knee / 0.8

        def margin_at(k, knee=knee, sat=sat):
            x = lo + k * res
            if x >= sat:
                return -0.9
            p = 1.0 / (sat - x)  # latency ~ 1 / (saturation - load)
            return (1.0 / (sat - knee)) / p - 1.0

        def met(k, margin_at=margin_at):
            return margin_at(k) >= 0

        s = _KneeSearch(lo, hi, cells, sat * sat_factor, runs_left=steps + compare_mod.KNEE_EXTRA_RUNS)
        s.margin_a, s.margin_b = margin_at(0), margin_at(cells)
        tried = _drive(s, met, margin_at)
        assert s.a == _bisection(cells, met), (knee, sat_factor)
        assert len(tried) <= steps + compare_mod.KNEE_EXTRA_RUNS
        worst = max(worst, len(tried))
        if sat_factor == 1.0:
            assert len(tried) <= 3, (knee, tried)  # a right estimate: two or three runs
    assert worst <= steps + compare_mod.KNEE_EXTRA_RUNS


def test_the_search_brackets_whatever_the_verdicts():
    # noisy, non-monotone verdicts and nonsense margins: it still ends on a pass just below a
    # miss, within its budget of runs
    rng = np.random.default_rng(3)
    for _ in range(300):
        steps = int(rng.integers(0, 7))
        cells = 2 ** steps
        verdicts = rng.random(cells + 1) < rng.random()
        margins = rng.normal(0, 2, cells + 1)
        s = _KneeSearch(1.0, 1.0 + 0.5 * cells, cells, float(rng.choice([0.5, 3.0, 100.0, math.inf])),
                        runs_left=steps + compare_mod.KNEE_EXTRA_RUNS)
        s.margin_a = abs(margins[0])
        tried = _drive(s, lambda k, v=verdicts: bool(v[k]), lambda k, m=margins: float(m[k]))
        assert len(tried) <= steps + compare_mod.KNEE_EXTRA_RUNS
        assert s.a == 0 or verdicts[s.a]
        assert s.b == cells or not verdicts[s.b]


def test_the_search_starts_next_to_an_untried_top():
    # every grid load met and the estimate is above the top: one run, at the top point, as
    # the last run of a bisection would be
    s = _KneeSearch(2.0, 4.0, 32, 5.0, runs_left=7)
    s.margin_a = 2.7
    assert s.next_point() == 31


@pytest.fixture
def knee_runs(monkeypatch):
    """Every knee run of a comparison: (task, row)."""
    seen = []
    real = compare_mod.run_tasks

    def spy(tasks, **kw):
        rows = real(tasks, **kw)
        if kw.get("desc") == "knee":
            seen.extend(zip(tasks, rows, strict=True))
        return rows

    monkeypatch.setattr(compare_mod, "run_tasks", spy)
    return seen


def _bisection_knees(arch, lo, hi, steps, reps, seed, duration, warmup):
    """Each replication's knee by the plain bisection (the search before this one: the
    midpoint of the bracket, `steps` times), every run whole."""
    knees = []
    for r in range(reps):
        a, b = lo, hi
        for _ in range(steps):
            mid = (a + b) / 2
            row = run_task(Task(arch.to_dict(), None, mid, duration, warmup, seed, r))
            a, b = (mid, b) if meets(_slo(arch), row) else (a, mid)
        knees.append(a)
    return knees


def test_compare_finds_the_bisection_knee_in_fewer_runs(knee_runs):
    arch = _mm1()
    steps, reps = 4, 2
    cmp = simarch.compare([arch], loads=[1, 16], replications=reps, seed=3, duration="40s",
                          warmup="2s", knee_steps=steps, executor="serial", progress=False)
    k = cmp.knee.iloc[0]
    res = 15 / 2 ** steps
    assert (k["bracket_low"], k["bracket_high"], k["resolution"]) == (1, 16, res)
    assert len(knee_runs) < reps * steps  # a bisection takes `steps` runs per replication
    assert all(t.tags.get("stop_on_miss") and t.tags.get("knee_step") for t, _ in knee_runs)
    # the same seed per replication at every step (common random numbers)
    assert {(t.replication, t.seed) for t, _ in knee_runs} <= {(r, 3) for r in range(reps)}
    assert k["knee"] == np.mean(_bisection_knees(arch, 1, 16, steps, reps, 3, 40.0, 2.0))  # to the bit


def test_a_wrong_estimate_costs_runs_not_the_knee(knee_runs, monkeypatch):
    # the static estimate far too high: the first runs land well above the knee, are stopped
    # early, and the search still ends where the bisection does
    monkeypatch.setattr(compare_mod, "_saturation", lambda arch: 14.0)
    arch = _mm1()
    steps, reps = 4, 2
    cmp = simarch.compare([arch], loads=[1, 16], replications=reps, seed=3, duration="40s",
                          warmup="2s", knee_steps=steps, executor="serial", progress=False)
    k = cmp.knee.iloc[0]
    assert len(knee_runs) <= reps * (steps + compare_mod.KNEE_EXTRA_RUNS)
    stopped = [row for _, row in knee_runs if row.get("stopped")]
    assert stopped and all(row["slo_met"] is False and row["error"] is None for row in stopped)
    assert all(row["stopped"].startswith(RunStopped.PREFIX) for row in stopped)
    assert k["knee"] == np.mean(_bisection_knees(arch, 1, 16, steps, reps, 3, 40.0, 2.0))  # to the bit
