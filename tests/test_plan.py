"""The capacity planner: its search space, its choices against exact theory (Erlang C for
staffing, k-of-n availability for redundancy), reproducibility, resuming, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

import simarch
from simarch.analysis.availability import availability_model
from simarch.errors import SpecError
from simarch.present.html import render_report
from simarch.study.experiment import mean_ci
from simarch.study.plan import expand_range, parse_vary, plan

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- the space


def test_ranges():
    assert expand_range("2..6") == [2, 3, 4, 5, 6]
    assert expand_range("10k..1M") == [10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000]
    assert expand_range("1..64:x2") == [1, 2, 4, 8, 16, 32, 64]
    assert expand_range("2..10:4") == [2, 6, 10]
    assert parse_vary("db.shards=1,2,4,8") == ("db.shards", [1, 2, 4, 8])
    assert parse_vary("api.instances=2..4,8") == ("api.instances", [2, 3, 4, 8])
    for bad in ("api.instances", "=2..4", "api.instances=5..2", "api.instances=2..x", "a=1..8:0"):
        with pytest.raises(SpecError):
            parse_vary(bad)


# ---------------------------------------------------------------------------- staffing


def erlang_c(c: int, a: float) -> float:
    """P(wait) in M/M/c with offered load a = lambda/mu (Erlang C), written out."""
    if a >= c:
        return 1.0
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


LAM, MU = 45.0, 10.0  # arrivals per second; services per second per worker (100 ms, exponential)


def mmc_design(workers: int = 1) -> simarch.Architecture:
    return simarch.Architecture("mmc", workload={"rate": LAM},
                                simulation={"duration": 400, "warmup": 40}).add(
        "api", kind="service", workers=workers, service_time={"exponential": 1 / MU})


@pytest.mark.parametrize("require, metric", [
    ("api.mean_wait<=20ms", lambda c: erlang_c(c, LAM / MU) / (c * MU - LAM) <= 0.020),
    ("api.wait_probability<=0.15", lambda c: erlang_c(c, LAM / MU) <= 0.15),
])
def test_staffing_matches_erlang_c(require, metric):
    """The planner's minimum number of workers for one M/M/c service equals the exact Erlang C
    answer, for a target on the mean wait and on the probability of waiting.

    a = 4.5 Erlangs. Mean wait: c = 6 waits 28.1 ms, c = 7 waits 8.69 ms, so c* = 7.
    P(wait): c = 7 gives 0.217, c = 8 0.104, so c* = 8 for a bound of 0.15. The simulation
    confirms with 5 replications of 400 s (N = 18,000 requests each); the upper 95% bound of
    the replication means must be under the bound: at c* the SE of the mean wait is about
    0.4 ms (8.69 ms against 20 ms) and of P(wait) about 0.004 (0.104 against 0.15), so the
    confirmation is not a coin toss; the test prints the simulated figures.
    """
    best = next(c for c in range(1, 30) if LAM < c * MU and metric(c))
    assert best == (7 if "mean_wait" in require else 8)
    p = plan(mmc_design(), {"api.workers": "1..16"}, require=[require], replications=5,
             confirm=2, executor="serial", progress=False)
    assert p.chosen_params == {"api.workers": best}, str(p)
    sim = p.simulated()
    print(sim[[c for c in sim.columns if c.startswith("sim")]].to_string())


# ---------------------------------------------------------------------------- redundancy

MTBF, MTTR = 200.0, 40.0
INTERVAL, UNHEALTHY, HEALTHY = 1.0, 2, 10


def redundant_design(instances: int = 1) -> simarch.Architecture:
    arch = simarch.Architecture(
        "tier", workload={"rate": 500, "entry": "lb"}, slo={"availability": 0.99},
        simulation={"duration": 2000, "warmup": 50})
    arch.add("lb", kind="load_balancer",
             health_check={"interval": INTERVAL, "unhealthy_after": UNHEALTHY, "healthy_after": HEALTHY})
    arch.add("api", kind="service", instances=instances, workers=4, queue=20,
             service_time={"exponential": "10ms"})
    arch.call("lb", "api")
    data = arch.to_dict()
    data["faults"] = [{"kind": "random", "target": "api", "mtbf": {"exponential": MTBF},
                       "mttr": {"exponential": MTTR}}]
    return simarch.Architecture.from_dict(data)


DEMAND = 500 * 0.010 / 4  # the load in boxes' worth of work: 5 busy workers, 4 per box


def k_of_n_with_detection(n: int, k: int, detect: bool = True) -> float:
    """Share of requests served: a box serves (up and in rotation) with probability s; while
    dead but not yet noticed by the health checks (d) it still gets its share of traffic.
    With j >= k boxes serving, all is carried (k of n); with fewer, j / DEMAND of it."""
    cycle = MTBF + MTTR
    if detect:
        down = (UNHEALTHY - 0.5) * INTERVAL  # first check at a random phase, then every interval
        up = (HEALTHY - 0.5) * INTERVAL
        s, d = (MTBF - up) / cycle, down / cycle
    else:
        s, d = MTBF / cycle, 0.0
    total = 0.0
    for j in range(1, n + 1):
        pj = math.comb(n, j) * s ** j * (1 - s) ** (n - j)
        q = d / (1 - s)
        carried = 1.0 if j >= k else j / DEMAND  # fewer than k: what their workers carry
        total += pj * carried * sum(math.comb(n - j, m) * q ** m * (1 - q) ** (n - j - m) * j / (j + m)
                          for m in range(n - j + 1))
    return total


def test_redundancy_matches_k_of_n():
    """The planner's number of instances equals the smallest n whose k-of-n availability
    meets 99%, with the health checks' detection delay counted (k = 2: 500 req/s of 10 ms
    need 5 busy workers, more than one box of 4). MTBF 200 s, MTTR 40 s, checks every 1 s,
    2 failed to take a box out (1.5 s of traffic to it, on average) and 10 passed to put it
    back (9.5 s): 5 boxes give 99.052%, 4 give 98.528%. Ignoring the detection, 4 would do
    (99.614%).
    """
    k = 2
    best = next(n for n in range(1, 20) if k_of_n_with_detection(n, k) >= 0.99)
    naive = next(n for n in range(1, 20) if k_of_n_with_detection(n, k, detect=False) >= 0.99)
    assert best != naive  # the case tells the two apart
    p = plan(redundant_design(), {"api.instances": "1..10"}, confirm=0, progress=False)
    assert p.chosen_params == {"api.instances": best}
    row = p.table.loc[p.chosen]
    assert row["model_availability"] == pytest.approx(k_of_n_with_detection(best, k), rel=1e-12)


@pytest.mark.slow
def test_availability_model_against_simulation():
    """The modelled availability of the 4-instance tier against the simulation: 8
    replications of 2,000 s (about 33 failures each). The tolerance is 3 standard errors
    of the replication mean plus 0.002 for the model's approximations (a failure during the
    readmission delay, checks of overlapping failures)."""
    arch = redundant_design(4)
    model = availability_model(arch).availability
    vals = [simarch.simulate(arch, seed=s, progress=False).summary().loc["all", "availability"]
            for s in range(8)]
    mean, lo, hi, sd = mean_ci(vals)
    se = sd / math.sqrt(len(vals))
    print(f"model {model:.5f} simulation {mean:.5f} SE {se:.5f}")
    assert abs(mean - model) <= 3 * se + 0.002


def test_datastore_replicas_for_an_availability_target():
    """Replicas of a shard fail independently (MTBF 1 h, MTTR 10 min: each is down a share
    u = 1/7 of the time). A dead copy keeps its share of the reads until the 1 s failover
    takes it out of the shard (a share s = 1 s / 70 min of each copy's time), so reads fail
    u^r + s (1 - u^(r-1)); a write also stalls for the failover after a primary failure
    (u^r + s). With 10% writes the availability is 97.9% with 2 replicas, 99.69% with 3,
    99.935% with 4, so 99.9% needs 4."""
    u = 600 / 4200
    stall = 1 / 4200

    def avail(r: int) -> float:
        if r == 1:
            return 1 - 0.9 * u - 0.1 * min(1.0, 2 * u)
        return 1 - 0.9 * (u ** r + stall * (1 - u ** (r - 1))) - 0.1 * (u ** r + stall)

    best = next(r for r in range(1, 10) if avail(r) >= 0.999)
    assert best == 4
    arch = simarch.Architecture(
        "replicated", workload={"rate": 100, "requests": {"read": {"weight": 0.9}, "write": {"weight": 0.1}}},
        slo={"availability": 0.999}, simulation={"duration": 3600, "warmup": 60})
    arch.add("db", kind="datastore", replicas=1, workers=8, failover="1s", cost={"per_replica_hour": 0.24},
             service_time={"exponential": "2ms"})
    data = arch.to_dict()
    data["faults"] = [{"kind": "random", "target": "db", "mtbf": {"exponential": "1h"},
                       "mttr": {"exponential": "10m"}}]
    p = plan(simarch.Architecture.from_dict(data), {"db.replicas": "1..6"}, confirm=0, progress=False)
    assert p.chosen_params == {"db.replicas": best}
    for r in range(1, 7):
        row = p.table[p.table["param.db.replicas"] == r].iloc[0]
        assert row["model_availability"] == pytest.approx(avail(r), rel=1e-9)


def _failing_store(**db) -> simarch.Architecture:
    return simarch.Architecture.from_dict({
        "name": "failing-store",
        "workload": {"rate": 40, "requests": {"read": {"weight": 0.9, "keys": {"uniform": 1000}},
                                               "write": {"weight": 0.1, "keys": {"uniform": 1000}}}},
        "components": {"db": {"kind": "datastore", "workers": 8, "service_time": {"exponential": "1ms"},
                              **db}},
        "faults": [{"kind": "random", "target": "db", "mtbf": {"exponential": "100s"},
                    "mttr": {"exponential": "20s"}}],
        "simulation": {"duration": 4000, "warmup": 10}})


@pytest.mark.slow
@pytest.mark.parametrize("db", [{"replicas": 2, "failover": "5s"}, {"replicas": 3, "quorum": {"r": 2, "w": 2}}],
                         ids=["primary_replica", "quorum"])
def test_datastore_availability_model_against_simulation(db):
    """The datastore's availability model against the simulation, with copies failing
    independently (MTBF 100 s, MTTR 20 s, both exponential: u = 1/6).

    Two copies and a 5 s failover: a dead copy fails its share of the reads until the
    failover, so reads lose u^2 + s (1 - u) with s = 5/120 and writes u^2 + s: 0.9375 at 10%
    writes (the model takes min(failover, MTTR) for the expected E[min(5 s, D)] = 4.42 s).
    Three copies at R = W = 2: an op fails when fewer than 2 are up, 3u^2(1-u) + u^3 = 0.0741.
    N = 6 replications x 4,000 s (about 33 failures per copy each); SE of the mean from the
    replications, about 0.003; tolerance 4 SE + 0.004 for the min(failover, MTTR) step."""
    arch = _failing_store(**db)
    model = availability_model(arch).availability
    vals = [simarch.simulate(arch, seed=s, progress=False).summary().loc["all", "availability"]
            for s in range(6)]
    mean, _, _, sd = mean_ci(vals)
    se = sd / math.sqrt(len(vals))
    print(f"model {model:.4f} simulated {mean:.4f} SE {se:.4f}")
    assert abs(mean - model) <= 4 * se + 0.004, f"model {model:.4f}, simulated {mean:.4f} (SE {se:.4f}, N=6x4000s)"


def zoned_design() -> simarch.Architecture:
    """A tier that must ride out the loss of zone a for 100 s of a 1,000 s window."""
    arch = simarch.Architecture("zoned", workload={"rate": 500, "entry": "lb"},
                                slo={"availability": 0.99}, simulation={"duration": 1000, "warmup": 10})
    arch.add("lb", kind="load_balancer", instances=2, zone=["a", "b"],
             health_check={"interval": 1, "unhealthy_after": 2, "healthy_after": 2})
    arch.add("api", kind="service", instances=2, zone="a", workers=4, service_time={"exponential": "10ms"})
    arch.call("lb", "api")
    data = arch.to_dict()
    data["faults"] = [{"kind": "crash", "zone": "a", "at": 500, "duration": 100}]
    return simarch.Architecture.from_dict(data)


def test_zone_failure_needs_a_second_zone_and_enough_boxes_in_it():
    """With every instance in zone a, its loss for 10% of the window costs 10% of the
    requests: no count of instances meets 99%. Spread over a and b, the survivors in b must
    carry the load alone: 5 busy workers need 2 boxes of 4, so 4 instances (2 per zone); 3
    leave one in b. Then only the detection delay (1.5 s of traffic to the dead half) is lost,
    0.5 x 1.5 s / 1,000 s = 0.075%, at the api and at the load balancer (also in a and b)."""
    p = plan(zoned_design(), {"api.instances": "1..8", "api.zone": [["a"], ["a", "b"]]},
             confirm=0, progress=False)
    assert p.chosen_params == {"api.instances": 4, "api.zone": ["a", "b"]}
    t = p.table
    alone = t[[z == ["a"] for z in (p.values_of(i)["api.zone"] for i in t.index)]]
    assert (alone["model_availability"] <= 0.9 + 1e-12).all()
    assert p.table.loc[p.chosen, "model_availability"] == pytest.approx((1 - 0.5 * 1.5 / 1000) ** 2)


def test_no_single_point_of_failure_as_a_constraint():
    """One instance meets the latency targets, but is a single point of failure."""
    free = plan(mmc_design(5), {"api.instances": "1..3"}, require=["api.utilization<=0.95"],
                confirm=0, progress=False)
    strict = plan(mmc_design(5), {"api.instances": "1..3"}, require=["api.utilization<=0.95"],
                  confirm=0, no_spof=True, progress=False)
    assert free.chosen_params == {"api.instances": 1}
    assert strict.chosen_params == {"api.instances": 2}
    assert "api" in strict.table.loc[0, "spofs"]


# ---------------------------------------------------------------------------- reproducibility


def small_plan(**kw):
    return plan(mmc_design(), {"api.workers": "5..8"}, require=["api.mean_wait<=20ms"],
                replications=3, confirm=1, duration="60s", warmup="5s", progress=False, **kw)


@pytest.mark.parametrize("executor", ["processes", "local"])
def test_same_seed_same_plan_whatever_the_executor(executor):
    a = small_plan(executor="serial")
    b = small_plan(executor=executor, workers=2)
    assert a.chosen == b.chosen
    cols = ["design_index", "replication", "p99_ms", "mean_ms", "availability", "wait_ms.api"]
    ra = a.runs[cols].sort_values(cols[:2]).reset_index(drop=True)
    rb = b.runs[cols].sort_values(cols[:2]).reset_index(drop=True)
    assert ra.equals(rb)
    assert a.table.drop(columns=["sim_note"], errors="ignore").equals(
        b.table.drop(columns=["sim_note"], errors="ignore"))


def test_screening_in_processes_gives_the_same_table():
    """A space of at least PARALLEL_SCREEN designs is screened in local processes."""
    args = ({"api.workers": "1..80:1"},)
    kw = {"require": ["api.mean_wait<=20ms"], "confirm": 0, "progress": False}
    a = plan(mmc_design(), *args, executor="serial", **kw)
    b = plan(mmc_design(), *args, executor="processes", workers=2, **kw)
    assert len(a.table) == 80
    assert a.table.equals(b.table) and a.chosen_params == b.chosen_params == {"api.workers": 7}


def test_a_plan_resumes_from_its_folder(tmp_path):
    out = tmp_path / "plan"
    first = small_plan(executor="serial", out=out)
    assert first.settings["simulated_now"] > 0
    again = small_plan(executor="serial", out=out)
    assert again.settings["simulated_now"] == 0
    assert again.chosen == first.chosen
    saved = simarch.load(out / "chosen.yaml")
    assert saved.spec.components["api"].workers == first.chosen_params["api.workers"]
    back = type(first).read(out)
    assert back.chosen == first.chosen and len(back.table) == len(first.table)
    page = render_report(out)
    assert "Cost-versus-p99 frontier" in page and "data:image/png;base64" in page
    assert f"design {first.chosen} at" in page


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, path", [
    ({"vary": {"api.workers": "9..1"}}, "vary"),
    ({"vary": {"api.workers": []}}, "vary"),
    ({"require": ["nope.utilization<=0.5"]}, "require"),
    ({"require": ["api.speed<=1"]}, "require"),
    ({"replications": 1}, "replications"),
    ({"objective": "fast"}, "objective"),
])
def test_bad_input(kw, path):
    args = {"vary": {"api.workers": "1..4"}, "require": ["api.utilization<=0.8"], **kw}
    with pytest.raises(SpecError) as e:
        plan(mmc_design(), args.pop("vary"), progress=False, **args)
    assert e.value.path[0] == path


def test_cli_plan(tmp_path):
    spec = tmp_path / "mmc.yaml"
    spec.write_text(mmc_design().to_yaml())
    out = tmp_path / "chosen.yaml"
    cmd = [sys.executable, "-m", "simarch.cli", "plan", str(spec), "--vary", "api.workers=5..8",
           "--require", "api.mean_wait<=20ms", "--replications", "3", "--confirm", "1",
           "--duration", "60s", "--warmup", "5s", "--serial", "--write-spec", str(out),
           "--out", str(tmp_path / "p")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "frontier" in r.stdout and "chosen" in r.stdout
    assert simarch.load(out).spec.components["api"].workers == 7
    assert (tmp_path / "p" / "frontier.png").stat().st_size > 1000
    bad = subprocess.run(cmd[:5] + ["--vary", "api.workers=9..1"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: --vary") and bad.stderr.count("\n") == 1
