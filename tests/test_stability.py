"""The stability verdict against queueing theory, near rho = 1, for open and closed loops,
and unanswered requests counted as failures.

M/M/1 with service rate mu = 100/s. Below rho = 1 the number in the system is stationary
and the backlog-growth test (10 batches, one-sided t-test at alpha = 0.001) is conservative:
a false alarm has probability <= 0.001 per run, so among R = 20 runs P(2 or more) <= 2e-4.
Above rho = 1 the backlog grows at lambda - mu per second: over T = 400 s each batch grows by
(lambda - mu) * T / 10 = 200 at rho = 1.05 against a batch noise of about
sqrt((lambda + mu) * T / 10) = 91: the t statistic is noncentral t_9 with noncentrality
about 200 / (91 / sqrt(10)) = 7, so the test rejects (t > 4.30, the 0.999 quantile of t_9)
with probability 0.975 per run, and in at least 17 of 20 runs but with probability 0.0013.
At rho = 1.1 the noncentrality is about 14: every run rejects.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import Architecture

pytestmark = pytest.mark.slow

MU = 100.0
R = 20
T = 400.0


def mm1(rho: float) -> Architecture:
    return (Architecture("mm1", workload={"rate": rho * MU}, slo={"p99": 1.0})
            .add("s", kind="service", workers=1, service_time={"exponential": 1 / MU}))


def runs(rho: float) -> list[simarch.Result]:
    arch = mm1(rho)
    return [simarch.simulate(arch, duration=T, warmup=50, seed=100 + i) for i in range(R)]


@pytest.mark.parametrize("rho", [0.9, 0.95])
def test_stable_below_rho_one(rho):
    rs = runs(rho)
    unstable = sum(not r.stable for r in rs)
    assert unstable <= 1, f"rho {rho}: {unstable} of {R} stable runs called unstable"
    # the backlog's mean growth is zero: per run its SD is at most sqrt(2 Var N) / T
    growth = np.array([r.growth().per_s for r in rs])
    var_n = rho / (1 - rho) ** 2  # variance of the M/M/1 number in system
    se = math.sqrt(2 * var_n) / T / math.sqrt(R)
    assert abs(growth.mean()) < 4 * se, (growth.mean(), se)


@pytest.mark.parametrize("rho", [1.05, 1.1])
def test_unstable_above_rho_one(rho):
    rs = runs(rho)
    assert all(not r.stable for r in rs)
    detected = sum(r.growth().significant for r in rs)
    assert detected >= (17 if rho < 1.1 else R), f"growth detected in {detected} of {R} runs"
    # growth rate lambda - mu: per run SE sqrt((lambda + mu) / T) (Poisson arrivals and a
    # server that never idles once the backlog has built); 4 SE of the mean of R runs
    growth = np.array([r.growth().per_s for r in rs])
    lam = rho * MU
    se = math.sqrt((lam + MU) / T) / math.sqrt(R)
    assert abs(growth.mean() - (lam - MU)) < 4 * se, (growth.mean(), lam - MU, se)
    assert any("not keeping up" in w for w in rs[0].all_warnings())
    assert rs[0].slo_met is False


def _closed(at: str | None, slo: bool = True) -> Architecture:
    data = {
        "name": "closed",
        "workload": {"users": 50, "think_time": {"exponential": "100ms"}},
        "components": {"web": {"kind": "service", "workers": 64, "service_time": "2ms"},
                       "back": {"kind": "service", "workers": 64, "service_time": "2ms"}},
        "calls": [{"from": "web", "to": "back"}],
        "simulation": {"duration": "120s", "warmup": "5s"},
    }
    if at is not None:
        data["faults"] = [{"kind": "crash", "target": "back", "at": at, "behaviour": "hang"}]
    if slo:
        data["slo"] = {"p99": "100ms", "availability": "99.9%"}
    return simarch.load(data)


def test_closed_loop_deadlock_is_not_stable():
    """Every user is stuck from 65 s on: 50 requests never answer. They count as failures
    and the verdict is a miss, though the backlog cannot grow past the user count."""
    r = simarch.simulate(_closed("65s"), seed=1)
    s = r.summary().loc["all"]
    assert s["unanswered"] == 50
    assert s["availability"] == pytest.approx(s["ok"] / (s["completed"] + 50))
    assert not r.stable and r.slo_met is False
    verdict = r.slo()
    assert not verdict.loc["stability", "met"]
    assert any("unanswered" in w for w in r.all_warnings())


def test_closed_loop_deadlock_from_the_start_warns():
    r = simarch.simulate(_closed("0s", slo=False), seed=1)
    assert r.summary().loc["all", "requests"] == 0
    warnings = " ".join(r.all_warnings())
    assert "no request arrived" in warnings
    assert "50 that arrived in the warm-up" in warnings
    assert not r.stable


def test_healthy_closed_loop_is_stable():
    rs = [simarch.simulate(_closed(None), seed=s) for s in range(1, 11)]
    assert sum(not r.stable for r in rs) <= 1
    assert all(r.summary().loc["all", "unanswered"] == 0 for r in rs)


def test_tight_latency_target_does_not_flip_a_healthy_verdict():
    """With the SLO's p99 target at the design's own p99, a few requests in flight at the
    end are older than the target. That many are expected from the latency tail (arrival
    rate times E[(R - target)+]), so the stuck-request test stays quiet."""
    arch = (Architecture("tight", workload={"rate": 80}, slo={"p99": 0.046})  # M/M/1 p99 = ln(100)/20
            .add("s", kind="service", workers=1, service_time={"exponential": 1 / MU}))
    rs = [simarch.simulate(arch, duration=200, warmup=20, seed=s) for s in range(R)]
    assert sum(r.stuck().significant for r in rs) <= 1
    assert sum(not r.stable for r in rs) <= 1
