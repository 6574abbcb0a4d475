"""Deployments (model/deployments.py, runtime/deploy.py): rolling, canary and blue-green
rollouts of a service while the run goes on, their durations, and the availability, latency
and cost they come with, checked against what the model says they must be."""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import SpecError
from simarch.runtime.rotation import DRAIN_POLL

LB = {"kind": "load_balancer", "health_check": {"interval": "1s"}}  # unhealthy/healthy after 2


def _spec(instances=3, workers=4, rate=300, st=None, lb=True, deployments=(), **api):
    comps = {"api": {"kind": "service", "instances": instances, "workers": workers,
                     "service_time": st or {"exponential": "10ms"}, **api}}
    spec = {"workload": {"rate": rate}, "components": comps, "deployments": list(deployments)}
    if lb:
        spec["components"] = {"lb": LB, **comps}
        spec["calls"] = [{"from": "lb", "to": "api"}]
    return spec


def _run(spec, duration, warmup=0.0, seed=1, hops=False):
    return simarch.simulate(spec, duration=duration, warmup=warmup, seed=seed, progress=False,
                            hops=hops)


def _steps(r, step, deployment=None):
    log = r.deployment_log()
    if deployment is not None:
        log = log[log["deployment"] == deployment]
    return log[log["step"] == step]


# --------------------------------------------------------------------------- rolling


def _batches(r):
    """Per instance replaced: (out, stopped, ready, in) times from the deployment log."""
    out = []
    for inst in _steps(r, "out")["instance"]:
        t = {s: float(_steps(r, s).set_index("instance").loc[inst, "time_s"])
             for s in ("out", "stopped", "ready", "in")}
        out.append(t)
    return sorted(out, key=lambda t: t["out"])


@pytest.mark.parametrize("lb", [True, False], ids=["behind a health-checked lb", "direct callers"])
def test_rolling_deployment_duration_and_no_failure(lb):
    """Three instances, batch 1, restart 4 s (deterministic), pause 1 s, drained.

    Each batch takes drain + restart + health-check delay + pause, so the deployment's
    duration is their sum. The drain is what the instance holds when it goes out (a few
    10 ms requests, noticed within a poll of 10 ms). Behind the load balancer (checks every
    I = 1 s, 2 in a row either way) the stopped instance is seen down (restart 4 s > 2 I), so
    once ready it needs two passing checks: the first comes phi in (0, I] after it is ready,
    the second I later, and the deployment sees it within a poll: delay in (I, 2 I + poll].
    The checks run on one grid (every I from one phase), so the three "in" times agree modulo
    I up to a poll: the duration is exact up to the checks' phase. Direct callers read the
    rotation: the instance takes requests the moment it is ready (delay 0). Two instances
    carry the 300 rps at 37.5 % utilisation: no request fails."""
    R, P, interval = 4.0, 1.0, 1.0
    dep = {"target": "api", "strategy": "rolling", "at": "5s", "restart": f"{R}s", "pause": f"{P}s",
           "drain_timeout": "5s"}
    r = _run(_spec(lb=lb, deployments=[dep]), duration=40.0)
    assert np.all(r.status == 0) and len(r.status) > 10_000
    d = r.deployments().iloc[0]
    b = _batches(r)
    assert [x["out"] for x in b] == sorted(x["out"] for x in b) and len(b) == 3
    assert b[0]["out"] == 5.0
    total = 0.0
    for i, x in enumerate(b):
        drain, restart, delay = x["stopped"] - x["out"], x["ready"] - x["stopped"], x["in"] - x["ready"]
        assert 0 <= drain <= 0.2
        assert restart == pytest.approx(R, abs=1e-9)
        if lb:
            assert interval - 1e-9 < delay <= 2 * interval + DRAIN_POLL + 1e-9
        else:
            assert delay == 0.0
        if i + 1 < len(b):
            assert b[i + 1]["out"] - x["in"] == pytest.approx(P, abs=1e-9)
        total += drain + restart + delay + P
    assert d["duration_s"] == pytest.approx(total, abs=1e-9)
    if lb:
        phase = [x["in"] % interval for x in b]
        spread = max(phase) - min(phase)
        assert min(spread, interval - spread) <= DRAIN_POLL + 1e-9
    assert d["min_in_rotation"] == 2 and d["failed_during"] == 0 and d["availability_during"] == 1.0
    assert not d["rolled_back"] and d["extra_instance_hours"] == 0.0


def test_drain_timeout_fails_what_is_left():
    """Requests of 2 s and a drain timeout of 0.5 s: what an instance still holds when the
    timeout ends fails (counted as failed_by_stop), nothing else does."""
    dep = {"target": "api", "strategy": "rolling", "at": "3s", "restart": "1s", "drain_timeout": "500ms"}
    spec = _spec(lb=False, rate=20, workers=100, st={"constant": "2s"}, deployments=[dep])
    r = _run(spec, duration=20.0)
    d = r.deployments().iloc[0]
    timeouts = _steps(r, "drain timeout")
    assert len(timeouts) == 3
    assert d["failed_by_stop"] > 0
    # (some of them arrived before the deployment began: failed_during counts by arrival)
    assert d["failed_by_stop"] == int(np.sum(r.status != 0)) >= d["failed_during"] > 0


def test_surge_keeps_every_instance_in():
    """With surge 1 a new instance starts (and passes the checks) before each old one goes:
    never fewer than three in rotation, and the extra instance is billed meanwhile."""
    dep = {"target": "api", "strategy": "rolling", "at": "2s", "restart": "3s", "surge": 1}
    r = _run(_spec(deployments=[dep], cost=0.36), duration=40.0)
    d = r.deployments().iloc[0]
    assert d["min_in_rotation"] == 3 and d["failed_during"] == 0
    assert 0 < d["extra_instance_hours"] * 3600 <= d["duration_s"]
    assert d["extra_cost_usd"] == pytest.approx(d["extra_instance_hours"] * 0.36)
    assert len(_steps(r, "start")) == 3 and len(_steps(r, "ready")) == 3


def test_cold_start_after_restart():
    """A restarted instance serves at factor 3 when it takes requests again, back to 1 by the
    end of the period (step decay: exactly 3x for 2 s)."""
    dep = {"target": "api", "strategy": "rolling", "at": "2s", "restart": "1s",
           "cold_start": {"factor": 3, "period": "2s", "decay": "step"}}
    spec = _spec(instances=1, lb=False, rate=50, workers=50, st={"constant": "10ms"}, deployments=[dep])
    r = _run(spec, duration=10.0)
    t_in = float(_steps(r, "in")["time_s"].iloc[0])
    lat = r.latency
    ok = r.status == 0
    cold = ok & (r.start >= t_in) & (r.start < t_in + 2.0)
    warm = ok & ((r.start < 2.0) | (r.start >= t_in + 2.0))
    assert cold.sum() > 50 and np.allclose(lat[cold], 0.030) and np.allclose(lat[warm], 0.010)


# --------------------------------------------------------------------------- theory


def _erlang_c_response(lam: float, mu: float, c: int) -> float:
    """Mean response time of an M/M/c queue (Erlang C)."""
    a = lam / mu
    rho = a / c
    top = a ** c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)
    return 1 / mu + p_wait / (c * mu - lam)


@pytest.mark.slow
def test_batch_of_one_leaves_two_instances_mmc():
    """During a batch of 1 of 3 instances the other two carry the load: 3/2 of it each.

    Each instance is an M/M/2 queue (2 workers, exponential 10 ms), fed by random routing, a
    Poisson split of the 240 rps: 80 rps each with 3 in rotation (utilisation 0.4, mean
    response 11.90 ms), 120 rps each with 2 (utilisation 0.6, 15.63 ms). The requests that
    arrive while k instances serve (1 s after each change left out, for the queues to settle:
    their relaxation time is ~60 ms) are compared with M/M/2 at 240/k rps. N = 6 replications
    x 135 s (batches of 20 s restart, 20 s pause): ~31k requests each, ~13k of them during the
    batches; the SE of the mean is from the spread of the replications; tolerance 4 SE."""
    lam, mu, R, P, skip = 240.0, 100.0, 20.0, 20.0, 1.0
    dep = {"target": "api", "strategy": "rolling", "at": "15s", "restart": f"{R}s", "pause": f"{P}s"}
    spec = _spec(lb=False, rate=lam, workers=2, deployments=[dep], policy="random")
    means = {2: [], 3: []}
    for seed in range(1, 7):
        r = _run(spec, duration=130.0, warmup=5.0, seed=seed)
        b = _batches(r)
        two = np.zeros(len(r.start), dtype=bool)
        for x in b:
            two |= (r.start >= x["out"] + skip) & (r.start < x["in"])
        three = (r.start < b[0]["out"]) | (r.start >= b[-1]["in"] + skip)
        for x, y in zip(b, b[1:], strict=False):
            three |= (r.start >= x["in"] + skip) & (r.start < y["out"])
        assert np.all(r.status == 0)
        means[2].append(float(r.latency[two].mean()))
        means[3].append(float(r.latency[three].mean()))
    for k in (2, 3):
        m = np.array(means[k])
        se = m.std(ddof=1) / math.sqrt(len(m))
        want = _erlang_c_response(lam / k, mu, 2)
        assert abs(m.mean() - want) < 4 * se, (
            f"{k} instances: mean response {m.mean() * 1e3:.3f} ms vs M/M/2 {want * 1e3:.3f} ms "
            f"(SE {se * 1e3:.3f} ms, N=6 replications)")


@pytest.mark.slow
def test_one_instance_loses_all_capacity():
    """A one-instance service called directly (fail-fast: with no instance in rotation a
    request fails at once) is down from the moment it goes out until it is back: drain +
    restart. Its availability during a deployment (drain + restart 2 s + pause 3 s) is then
    1 - (drain + restart) / duration. N = 40 deployments in a row in one run (independent
    windows of Poisson arrivals, 100 rps, ~500 requests each): the mean over the windows of
    measured minus expected, against 4 SE of that mean."""
    deps = [{"target": "api", "strategy": "rolling", "at": f"{10 + 6 * i}s", "restart": "2s",
             "pause": "3s", "name": f"d{i}"} for i in range(40)]
    spec = _spec(instances=1, lb=False, rate=100, workers=4, st={"exponential": "5ms"}, deployments=deps)
    r = _run(spec, duration=260.0, warmup=5.0)
    d = r.deployments()
    assert len(d) == 40 and d["end_s"].notna().all()
    diffs = []
    for _, row in d.iterrows():
        out = float(_steps(r, "out", row["deployment"])["time_s"].iloc[0])
        back = float(_steps(r, "in", row["deployment"])["time_s"].iloc[0])
        assert back - out == pytest.approx(2.0, abs=0.1)  # drain (a few ms) + restart
        want = 1 - (back - out) / row["duration_s"]
        diffs.append(row["availability_during"] - want)
    diffs = np.array(diffs)
    se = diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert abs(diffs.mean()) < 4 * se, f"mean of measured - expected {diffs.mean():.4f} (SE {se:.4f}, N=40)"
    assert d["min_in_rotation"].max() == 0
    outside = d["availability_outside"].iloc[0]
    assert outside == 1.0


def test_spof_report_knows_one_instance_deployments():
    one = _spec(instances=1)
    rep = simarch.spof(one, dynamic=False)
    assert "rolling deployment takes all its capacity away" in rep.static.loc["api", "reason"]
    spec = _spec(instances=2, deployments=[{"target": "api", "strategy": "rolling", "batch": 2,
                                            "restart": "1s", "at": "1s"}])
    reason = simarch.spof(spec, dynamic=False).static.loc["api", "reason"]
    assert "the deployment rolling:api takes all its capacity away" in reason


def test_dynamic_spof_with_a_deployment():
    """The dynamic run's deployment of a one-instance service loses about restart/duration
    of its requests (restart 2.5 s of a 10 s window: no request served while it is out)."""
    spec = _spec(instances=1, lb=False, rate=100, workers=4, st={"exponential": "2ms"})
    rep = simarch.spof(spec, window="10s", warmup="2s", deployments=True)
    row = rep.dynamic.loc["deploy:api"]
    assert "rolling deployment" in row["killed"]
    assert row["availability_during"] < 0.05  # out for the whole deployment but its drain


# --------------------------------------------------------------------------- canary


@pytest.mark.slow
def test_canary_error_share_during_bake():
    """A canary with 5% errors on 1 of 4 instances, clients picking round robin over the
    instances in rotation: a quarter of the requests reach it, so 1.25% of them fail during
    the bake. N = 5 replications x 40 s of bake at 500 rps (~20k requests each); SE from the
    replications; tolerance 4 SE."""
    dep = {"target": "api", "strategy": "canary", "at": "2s", "restart": "1s", "bake": "40s",
           "version": {"errors": "5%"}, "promote": False}
    spec = _spec(instances=4, lb=False, rate=500, deployments=[dep])
    shares = []
    for seed in range(1, 6):
        r = _run(spec, duration=46.0, seed=seed)
        t_in = float(_steps(r, "in")["time_s"].iloc[0])
        bake = (r.start >= t_in) & (r.start < t_in + 40.0)
        shares.append(float(np.mean(r.status[bake] != 0)))
    m = np.array(shares)
    se = m.std(ddof=1) / math.sqrt(len(m))
    assert abs(m.mean() - 0.0125) < 4 * se, f"errors {m.mean():.4%} vs 1.25% (SE {se:.4%}, N=5)"


def test_canary_rollback_fires_within_its_window():
    """Errors 5% on the canary against a limit of 2% over 10 s: rolled back within the
    window; the canary returns to the old version and nothing fails after it is back."""
    dep = {"target": "api", "strategy": "canary", "at": "2s", "restart": "1s", "bake": "60s",
           "version": {"errors": "5%"}, "rollback": {"errors": "2%", "window": "10s", "min_requests": 200}}
    r = _run(_spec(instances=4, rate=500, deployments=[dep]), duration=30.0)
    d = r.deployments().iloc[0]
    t_in = float(_steps(r, "in")["time_s"].iloc[0])
    t_rb = float(_steps(r, "rollback")["time_s"].iloc[0])
    assert d["rolled_back"] and d["reason"].startswith("errors")
    assert 0 < t_rb - t_in <= 10.0
    back = float(_steps(r, "in")["time_s"].iloc[-1])
    assert back > t_rb and d["end_s"] == back
    assert np.all(r.status[r.start > t_rb + 0.1] == 0)
    assert "rolled back: errors" in r.report()


def test_canary_rollback_on_p99_and_promotion():
    """A canary 4x slower breaks a p99 limit of 60 ms (its p99 ~ 4 x 46 ms) and is rolled
    back; one 1.1x slower keeps to it, and the rest of the tier follows it (promote)."""
    rule = {"p99": "60ms", "window": "5s"}
    bad = {"target": "api", "strategy": "canary", "at": "1s", "restart": "1s", "bake": "20s",
           "version": {"latency_factor": 4}, "rollback": rule}
    r = _run(_spec(instances=3, rate=300, lb=False, deployments=[bad]), duration=30.0)
    d = r.deployments().iloc[0]
    assert d["rolled_back"] and d["reason"].startswith("p99")
    good = {**bad, "version": {"latency_factor": 1.1}, "bake": "10s"}
    r = _run(_spec(instances=3, rate=300, lb=False, deployments=[good]), duration=30.0)
    d = r.deployments().iloc[0]
    assert not d["rolled_back"] and len(_steps(r, "promote")) == 1
    assert len(_steps(r, "in")) == 3 and d["end_s"] < 30.0


# --------------------------------------------------------------------------- blue-green


def test_blue_green_no_dip_and_double_cost():
    """The green set starts (provision 5 s) and passes the checks, traffic switches at once,
    the blue set drains and stops after the bake: never fewer than three instances in
    rotation, no request fails, and three extra instances run for the whole deployment."""
    dep = {"target": "api", "strategy": "blue_green", "at": "3s", "provision": "5s", "bake": "5s"}
    r = _run(_spec(deployments=[dep], cost=0.5), duration=30.0)
    d = r.deployments().iloc[0]
    assert d["min_in_rotation"] == 3 and np.all(r.status == 0)
    switch = float(_steps(r, "switch")["time_s"].iloc[0])
    assert d["end_s"] == pytest.approx(switch + 5.0)
    assert d["extra_instance_hours"] * 3600 == pytest.approx(3 * d["duration_s"])
    assert d["extra_cost_usd"] == pytest.approx(0.5 * d["extra_instance_hours"])
    assert "extra instance-hours" in r.report()


def test_blue_green_rollback_switches_back():
    dep = {"target": "api", "strategy": "blue_green", "at": "2s", "provision": "2s", "bake": "20s",
           "version": {"errors": "10%"}, "rollback": {"errors": "1%", "window": "5s"}}
    r = _run(_spec(deployments=[dep], rate=400), duration=30.0)
    d = r.deployments().iloc[0]
    assert d["rolled_back"]
    t_rb = float(_steps(r, "rollback")["time_s"].iloc[0])
    assert np.all(r.status[r.start > t_rb + 0.1] == 0)
    switches = _steps(r, "switch")
    assert len(switches) == 2 and switches["instance"].iloc[1] == "api[0], api[1], api[2]"


# --------------------------------------------------------------------------- reports and spec


def test_results_carry_the_deployments(tmp_path):
    dep = {"target": "api", "strategy": "rolling", "at": "2s", "restart": "1s"}
    r = _run(_spec(deployments=[dep]), duration=15.0, warmup=1.0)
    doc = r.to_dict()
    assert doc["deployments"][0]["deployment"] == "rolling:api"
    assert "Deployments" in r.report()
    out = r.save(tmp_path / "run")
    assert (out / "deployments.parquet").exists() and (out / "deployment_log.parquet").exists()
    plain = _run(_spec(), duration=5.0)
    assert "deployments" not in plain.to_dict() and not len(plain.deployments())


def test_deployment_outside_the_run_is_a_warning():
    dep = {"target": "api", "strategy": "rolling", "at": "100s", "restart": "1s"}
    r = _run(_spec(deployments=[dep]), duration=5.0)
    assert any("did not start" in w for w in r.all_warnings())
    assert not len(r.deployments())


def test_a_run_without_deployments_is_unchanged():
    """The same design with a deployment after the end of the run gives the same requests:
    a rotation that does not change routes as a fixed tier does."""
    plain = _run(_spec(), duration=5.0)
    late = _run(_spec(deployments=[{"target": "api", "strategy": "rolling", "at": "1h",
                                    "restart": "1s"}]), duration=5.0)
    assert np.array_equal(plain.latency, late.latency)


@pytest.mark.parametrize("dep, path, match", [
    ({"target": "nope", "strategy": "rolling", "restart": "1s"}, "deployments.0.target", "unknown component"),
    ({"target": "lb", "strategy": "rolling", "restart": "1s"}, "deployments.0.target", "is a load_balancer"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "batch": 4}, "deployments.0.batch", "more than the 3"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "surge": 5}, "deployments.0.surge", "more than the 3"),
    ({"target": "api", "strategy": "rolling", "restart": 0}, "deployments.0", "'restart' must take some time"),
    ({"target": "api", "strategy": "rolling"}, "deployments.0.restart", "required"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "batch": 0}, "deployments.0.batch", "at least 1"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "batch": "abc"}, "deployments.0.batch", "share"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "pause": "-1s"}, "deployments.0.pause", "negative"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "drain_timeout": 0},
     "deployments.0.drain_timeout", "> 0"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "batchs": 1}, "deployments.0.batchs",
     "did you mean 'batch'"),
    ({"target": "api", "strategy": "rollin", "restart": "1s"}, "deployments.0",
     "did you mean 'rolling'"),
    ({"target": "api", "restart": "1s"}, "deployments.0", "missing 'strategy'"),
    ({"target": "api", "strategy": "canary", "restart": "1s", "bake": "1s", "share": 3},
     "deployments.0.share", "at most 2"),
    ({"target": "api", "strategy": "canary", "restart": "1s", "bake": "1s", "rollback": {"window": "5s"}},
     "deployments.0.rollback", "needs a limit"),
    ({"target": "api", "strategy": "canary", "restart": "1s", "bake": 0}, "deployments.0.bake", "> 0"),
    ({"target": "api", "strategy": "canary", "restart": "1s", "bake": "1s", "version": {"errors": 2}},
     "deployments.0.version.errors", "between 0 and 1"),
    ({"target": "api", "strategy": "blue_green", "provision": "1s", "rollback": {"errors": "1%"}},
     "deployments.0", "give 'bake'"),
    ({"target": "api", "strategy": "rolling", "restart": "1s", "cold_start": {"factor": 0.5, "period": "1s"}},
     "deployments.0.cold_start.factor", ">= 1"),
])
def test_bad_deployments(dep, path, match):
    with pytest.raises(SpecError, match=match) as e:
        simarch.load(_spec(deployments=[dep]))
    assert e.value.field == path


def test_canary_needs_two_instances():
    with pytest.raises(SpecError, match="has one") as e:
        simarch.load(_spec(instances=1, deployments=[
            {"target": "api", "strategy": "canary", "restart": "1s", "bake": "1s"}]))
    assert e.value.field == "deployments.0.target"


def test_autoscaled_target_is_refused():
    spec = _spec(deployments=[{"target": "api", "strategy": "rolling", "restart": "1s"}])
    spec["components"]["api"]["autoscale"] = {"min": 2, "max": 6, "target": 0.6}
    with pytest.raises(SpecError, match="is autoscaled") as e:
        simarch.load(spec)
    assert e.value.field == "deployments.0.target"


def test_shares_round_up_to_instances():
    spec = simarch.load(_spec(instances=4, deployments=[
        {"target": "api", "strategy": "rolling", "restart": "1s", "batch": "30%", "surge": "25%"}])).spec
    d = spec.deployments[0]
    assert d.batch.of(4) == 2 and d.surge.of(4) == 1 and d.fewest_left(4) == 3


def test_bad_deployment_on_the_command_line(tmp_path):
    """The command line prints one line naming the file and the field, exit code 2."""
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text("workload: {rate: 10}\ncomponents:\n  api: {kind: service, instances: 2}\n"
                    "deployments:\n  - {target: api, strategy: rolling, restart: 1s, batch: 3}\n")
    proc = subprocess.run([sys.executable, "-m", "simarch.cli", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: deployments.0.batch: a batch of 3 is more than the 2 instance(s) of 'api'"]


def test_timeline_shades_deployments():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simarch import plots

    dep = {"target": "api", "strategy": "rolling", "at": "2s", "restart": "1s"}
    r = _run(_spec(deployments=[dep]), duration=12.0)
    axes = plots.timeline(r, "1s")
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    plt.close("all")
    assert labels == ["rolling:api (deployment)"]
