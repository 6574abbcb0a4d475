"""Replications, confidence intervals, comparisons, knees, sweeps and executors."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pytest

import simarch
from simarch import Architecture
from simarch.study.experiment import Task, mean_ci, run_task, run_tasks, t_quantile

sweep_mod = importlib.import_module("simarch.study.sweep")  # the module, not the function


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 19, 29, 59, 200):
        for q in (0.9, 0.95, 0.975, 0.995):
            assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-9)


def _flaky(p_fail: float = 0.1) -> Architecture:
    return Architecture.from_dict({
        "workload": {"rate": 20},
        "components": {"s": {"kind": "service", "workers": 64, "service_time": "1ms"}},
        "faults": [{"kind": "errors", "target": "s", "probability": p_fail}],
    })


@pytest.mark.slow
def test_confidence_interval_coverage():
    # Each request fails independently with probability 0.1, so a replication's availability
    # is an unbiased estimate of 0.9. We build E = 300 experiments of R = 5 replications
    # (~200 requests each) and count how often the 95% t-interval covers 0.9. Coverage is
    # binomial(E, 0.95): SE = sqrt(0.95 * 0.05 / 300) = 0.0126; tolerance 4 SE = 0.050.
    # (The per-replication estimate is a scaled binomial, close enough to normal at n ~ 200
    # for the t-interval's nominal coverage.)
    arch = _flaky(0.1)
    spec = arch.to_dict()
    E, R = 300, 5
    tasks = [Task(spec, None, 1.0, 10.0, 0.0, seed=1000 + e, replication=r)
             for e in range(E) for r in range(R)]
    rows = run_tasks(tasks, executor="serial", progress=False)
    avail = np.array([row["availability"] for row in rows]).reshape(E, R)
    covered = 0
    for e in range(E):
        _, lo, hi, _ = mean_ci(avail[e], 0.95)
        covered += lo <= 0.9 <= hi
    coverage = covered / E
    assert abs(coverage - 0.95) < 4 * math.sqrt(0.95 * 0.05 / E), coverage


def _mm1(rate: float = 10.0) -> Architecture:
    # a single M/M/1 station, mu = 100/s, with a p99 SLO of 100 ms
    return Architecture("mm1", workload={"rate": rate}, slo={"p99": "100ms"}).add(
        "s", kind="service", workers=1, service_time={"exponential": "10ms"})


@pytest.mark.slow
def test_knee_matches_queueing_theory():
    # M/M/1: response time ~ Exp(mu - lambda), p99 = ln(100) / (mu - lambda). The SLO
    # p99 <= 100 ms holds while lambda <= mu - ln(100)/0.1 = 53.95/s, i.e. up to 5.395x of
    # 10/s. Each replication's knee carries the noise of its p99 estimates (~20k requests
    # per run); the interval widened by the bisection resolution must cover the true knee.
    true_knee = (100 - math.log(100) / 0.1) / 10
    cmp = simarch.compare([_mm1()], loads=[1, 2, 4, 8], replications=6, seed=3, duration="400s",
                          warmup="20s", knee_steps=6, executor="serial", progress=False)
    k = cmp.knee.iloc[0]
    assert k["bracket_low"] == 4 and k["bracket_high"] == 8
    half = (k["ci_high"] - k["ci_low"]) / 2
    assert abs(k["knee"] - true_knee) <= half + k["resolution"], (k.to_dict(), true_knee)
    assert half < 0.5  # the knee is pinned down to within half a load step


def test_compare_tables_differences_and_common_random_numbers():
    a = _mm1()
    b = a.with_changes({"s.workers": 2, "s.service_time": {"exponential": "20ms"}})
    cmp = simarch.compare([a, b], loads=[1, 3], replications=3, seed=5, duration="60s", warmup="5s",
                          knee=False, executor="serial", progress=False)
    assert set(cmp.table.metric) >= {"p50_ms", "p99_ms", "p999_ms", "throughput_rps", "availability"}
    assert cmp.designs == ["mm1", "mm1#2"]
    # same arrivals in both designs: identical throughput in every replication
    d = cmp.diff[(cmp.diff.metric == "throughput_rps")]
    assert (d.mean_diff.abs() < 0.2).all()
    # the two-worker design with slower workers has a higher p50 at low load (20ms vs 10ms
    # service), and the paired interval excludes zero
    p50 = cmp.diff[(cmp.diff.metric == "p50_ms") & (cmp.diff.load == 1)].iloc[0]
    assert p50.ci_low > 0
    # the paired difference is the mean of per-replication differences
    runs = cmp.runs.set_index(["design", "load", "replication"])
    manual = np.mean([runs.loc[("mm1#2", 1.0, r), "p50_ms"] - runs.loc[("mm1", 1.0, r), "p50_ms"]
                      for r in range(3)])
    assert p50.mean_diff == pytest.approx(manual)
    # the SLO verdict table has one row per design and load
    assert len(cmp.slo) == 4 and cmp.slo.slo_met.all()
    assert "Differences against mm1" in str(cmp)


@pytest.mark.slow
def test_executors_give_identical_tables():
    a = _mm1()
    b = a.with_changes({"s.workers": 2})
    kw = dict(loads=[1, 4], replications=2, seed=9, duration="20s", warmup="2s", knee=False,
              progress=False)
    serial = simarch.compare([a, b], executor="serial", **kw)
    procs = simarch.compare([a, b], executor="processes", workers=2, **kw)
    dask = simarch.compare([a, b], executor="local", workers=2, **kw)
    for other in (procs, dask):
        for name in ("runs", "table", "diff", "slo"):
            left = getattr(serial, name).sort_values(list(getattr(serial, name).columns[:3])).reset_index(drop=True)
            right = getattr(other, name).sort_values(list(getattr(other, name).columns[:3])).reset_index(drop=True)
            pd.testing.assert_frame_equal(left, right)


def test_sweep_records_parameters_errors_and_resumes(tmp_path, monkeypatch):
    arch = simarch.load("architectures/scaled_service.yaml")
    out = tmp_path / "sweep"
    params = {"api.instances": [2, 4], "api.workers": [0, 8]}  # workers 0 is invalid

    # interrupt the sweep after its second saved point
    real_write = sweep_mod._write_row
    written = []

    def flaky_write(directory, row):
        real_write(directory, row)
        written.append(row["point_id"])
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod, "_write_row", flaky_write)
    with pytest.raises(KeyboardInterrupt):
        simarch.sweep(arch, params, out, loads=[1], duration="3s", warmup="1s", executor="serial",
                      progress=False)
    first = sweep_mod.read_dataset(out)
    assert len(first) == 2
    monkeypatch.setattr(sweep_mod, "_write_row", real_write)

    # resume: only the missing points run
    ran = []
    real_run = sweep_mod.run_tasks

    def counting_run(tasks, **kw):
        ran.extend(tasks)
        return real_run(tasks, **kw)

    monkeypatch.setattr(sweep_mod, "run_tasks", counting_run)
    df = simarch.sweep(arch, params, out, loads=[1], duration="3s", warmup="1s", executor="serial",
                       progress=False)
    assert len(df) == 4
    assert len(ran) == 4 - len(first)  # (the invalid points were saved first, without a run)
    assert not {t.tags["point_id"] for t in ran} & set(first.point_id)
    # provenance on every row
    for col in ("param.api.instances", "param.api.workers", "load", "seed", "replication",
                "spec_hash", "simarch_version"):
        assert col in df.columns
    bad = df[df["param.api.workers"] == 0]
    assert len(bad) == 2 and bad.error.str.contains("workers").all()
    good = df[df["param.api.workers"] == 8]
    assert good.error.isna().all() and (good.availability > 0.99).all()
    assert good.spec_hash.nunique() == 2
    # a third run has nothing left to do
    ran.clear()
    simarch.sweep(arch, params, out, loads=[1], duration="3s", warmup="1s", executor="serial",
                  progress=False)
    assert ran == []


def test_run_task_records_errors_instead_of_raising():
    row = run_task(Task({"workload": {"rate": 1}, "components": {"s": {"kind": "nope"}}}, None, 1.0,
                        1.0, 0.0, 1, 0))
    assert "unknown kind" in row["error"]
