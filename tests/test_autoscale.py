"""Autoscaling (``autoscale:`` on a service, simarch/runtime/autoscale.py): the spec's rules,
the policies against theory and against the load they follow, scale-in without loss, cold
starts, consumer groups, and the reports (instances and cost over time, events)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import simarch
from simarch import SpecError
from simarch.model.fields import MAX_INSTANCES
from simarch.results.hops import CODE, END, SERVED, START, WHAT


def _api(**autoscale) -> dict:
    return {"kind": "service", "instances": 1, "workers": 4, "service_time": {"exponential": "20ms"},
            "autoscale": {"max": 10, "target": 0.5, **autoscale}}


def _spec(api: dict, rate: float = 100, profile: dict | None = None, **extra) -> dict:
    wl: dict = {"rate": rate}
    if profile is not None:
        wl["profile"] = profile
    return {"workload": wl, "components": {"lb": {"kind": "load_balancer"}, "api": api},
            "calls": [{"from": "lb", "to": "api"}], **extra}


# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(("api", "path", "match"), [
    ({**_api(), "instances": 12}, ("components", "api", "instances"), r"within autoscale\.min\.\.max \(1\.\.10\)"),
    (_api(min=4, max=3), ("components", "api", "autoscale", "min"), r"above autoscale\.max"),
    (_api(max=MAX_INSTANCES + 1), ("components", "api", "autoscale", "max"), r"must be <= 10000"),
    ({**_api(), "autoscale": {"max": 4}}, ("components", "api", "autoscale"), r"needs a 'target'"),
    (_api(target=1.5), ("components", "api", "autoscale"), r"fraction in \(0, 1\]"),
    (_api(target=None, policy="step"), ("components", "api", "autoscale"), r"needs 'steps'"),
    (_api(target=None, policy="step", steps=[{"above": 0.8, "below": 0.2, "add": 1}]),
     ("components", "api", "autoscale", "steps", 0), r"exactly one of 'above'"),
    (_api(target=None, policy="step", steps=[{"below": 0.2, "add": 1}]),
     ("components", "api", "autoscale", "steps", 0), r"give 'remove'"),
    (_api(policy="step", steps=[{"above": 0.8, "add": 1}]), ("components", "api", "autoscale"),
     r"'target' belongs to policy: target_tracking"),
    (_api(target=None, policy="on_demand"), ("components", "api", "autoscale", "policy"),
     r"needs a consumer group"),
    (_api(min=0), ("components", "api", "autoscale", "min"), r"only a consumer of a queue may scale to zero"),
    (_api(provisioning={"exponential": "-1s"}), ("components", "api", "autoscale", "provisioning"), r"negative"),
    (_api(cold_start={"factor": 0.5, "period": "10s"}), ("components", "api", "autoscale", "cold_start", "factor"),
     r"must be >= 1"),
    (_api(cold_start={"factor": 2, "period": "10s", "decay": "cubic"}),
     ("components", "api", "autoscale", "cold_start", "decay"), r"linear"),
    (_api(interval=0), ("components", "api", "autoscale", "interval"), r"> 0"),
    (_api(colddown="5s"), ("components", "api", "autoscale"), r"unknown field 'colddown'"),
])
def test_spec_errors_name_the_field(api, path, match):
    with pytest.raises(SpecError, match=match) as err:
        simarch.load(_spec(api))
    assert tuple(err.value.path[:len(path)]) == path, err.value.path


def test_consumer_from_zero_needs_the_backlog_metric():
    spec = {"workload": {"rate": 10}, "components": {
        "q": {"kind": "queue"}, "w": {**_api(min=0), "instances": 1}}, "calls": [{"from": "q", "to": "w"}]}
    with pytest.raises(SpecError, match="metric: queue_length") as err:
        simarch.load(spec)
    assert err.value.path == ("components", "w", "autoscale", "metric")
    spec["components"]["w"]["autoscale"]["metric"] = "queue_length"
    spec["components"]["w"]["autoscale"]["target"] = 5
    assert simarch.load(spec).spec.components["w"].changes_instances


def test_defaults_follow_aws_target_tracking():
    a = simarch.load(_spec(_api())).spec.components["api"].autoscale
    assert (a.policy, a.metric, a.min) == ("target_tracking", "utilization", 1)
    assert (a.interval, a.window, a.scale_in_cooldown, a.scale_out_cooldown) == (60.0, 60.0, 300.0, 0.0)
    assert a.provisioning.mean == 0.0 and a.cold_start is None and a.drain_timeout is None


# --------------------------------------------------------------------------- M/M/k/setup


def mmk_setup(lam: float, mu: float, alpha: float, k: int, J: int) -> dict[str, float]:
    """The M/M/k/setup chain of Gandhi, Doroudi, Harchol-Balter & Scheller-Wolf (2013), solved
    numerically, truncated at ``J`` jobs (arrivals beyond are lost).

    State (i, j): i servers on (all busy: an idle server turns off at once), j >= i jobs.
    The servers in setup are min(j - i, k - i): an arrival that finds no idle server starts
    a setup if a server is off, and a setup is cancelled when the waiting jobs drop below
    the servers in setup (with exponential setup times, which setup is cancelled does not
    matter). Arrivals at rate lam; each busy server completes at rate mu and takes the next
    waiting job, or turns off when none waits; each setup completes at rate alpha, and the
    server takes a waiting job.
    Returns the mean response time (Little's law), the mean servers on or in setup and the
    probability of the truncation boundary j = J."""
    states = [(i, j) for i in range(k + 1) for j in range(i, J + 1)]
    idx = {s: n for n, s in enumerate(states)}
    rows, cols, vals = [], [], []

    def rate(a, b, r):
        if r > 0:
            rows.append(idx[a])
            cols.append(idx[b])
            vals.append(r)
    for i, j in states:
        if j < J:
            rate((i, j), (i, j + 1), lam)
        if i > 0:
            rate((i, j), (i, j - 1) if j > i else (i - 1, j - 1), i * mu)
        setups = min(j - i, k - i)
        if setups > 0:
            rate((i, j), (i + 1, j), setups * alpha)
    n = len(states)
    Q = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    Q = (Q - sp.diags(np.asarray(Q.sum(axis=1)).ravel())).T.tolil()
    Q[0, :] = 1.0  # one balance equation replaced by the normalisation
    b = np.zeros(n)
    b[0] = 1.0
    pi = spla.spsolve(Q.tocsc(), b)
    i_ = np.array([i for i, _ in states])
    j_ = np.array([j for _, j in states])
    boundary = float(pi[j_ == J].sum())
    return {"T": float(pi @ j_) / (lam * (1 - boundary)),
            "billed": float(pi @ (i_ + np.minimum(j_ - i_, k - i_))),
            "boundary": boundary}


def test_the_chain_without_setup_delay_is_mmk():
    """With instant setup (alpha large) the chain is M/M/k: Erlang C's mean response time."""
    lam, mu, k = 3.0, 1.0, 4
    got = mmk_setup(lam, mu, 1e7, k, 200)["T"]
    a = lam / mu
    rho = a / k
    tail = a ** k / math.factorial(k) / (1 - rho)
    pw = tail / (sum(a ** n / math.factorial(n) for n in range(k)) + tail)
    assert got == pytest.approx(1 / mu + pw / (k * mu - lam), rel=1e-5)


GANDHI = {"lam": 20.0, "mu": 10.0, "alpha": 1.0, "k": 4}  # 100 ms jobs, 1 s setups, load 0.5 per server


def _setup_spec() -> dict:
    g = GANDHI
    return {"workload": {"rate": g["lam"]},
            "components": {
                "q": {"kind": "queue"},
                "srv": {"kind": "service", "instances": 1, "workers": 1,
                        "service_time": {"exponential": f"{1e3 / g['mu']:g}ms"},
                        "autoscale": {"policy": "on_demand", "min": 0, "max": g["k"],
                                      "provisioning": {"exponential": f"{1 / g['alpha']:g}s"}}}},
            "calls": [{"from": "q", "to": "srv"}]}


@pytest.mark.slow
def test_mmk_setup_mean_response_time_against_gandhi_2013():
    """M/M/k/setup: mean response time against the exact CTMC solution.

    Model: Gandhi, Doroudi, Harchol-Balter & Scheller-Wolf, "Exact analysis of the M/M/k/setup
    class of Markov chains via recursive renewal reward", SIGMETRICS 2013: the M/M/k/setup
    variant (servers turn off as soon as they are idle, an arrival that finds no idle server
    puts an off server into setup, at most k on or in setup, exponential setup times, setups
    cancelled when the waiting jobs drop below the servers in setup). In simarch it is a
    queue's consumer group (one central FIFO queue) on a service with ``policy: on_demand``,
    ``min: 0``, ``max: k``, one worker per instance.

    Theory: the chain solved numerically (scipy.sparse), truncated at J = 200 jobs; the
    boundary holds < 1e-15 of the probability and doubling J to 400 changes the answer by
    < 1e-12 relative, so the truncation error is far below the simulation's SE.
    N: 8 replications (seeds 0..7) x 2,000 s after a 50 s warm-up, ~40,000 jobs each;
    response time = the queue's mean wait + the consumer's mean visit. SE from the
    replications' spread; tolerance 4 SE. The mean of instances billed (on or in setup)
    is checked the same way.
    """
    g = GANDHI
    exact = mmk_setup(g["lam"], g["mu"], g["alpha"], g["k"], 200)
    finer = mmk_setup(g["lam"], g["mu"], g["alpha"], g["k"], 400)
    assert exact["boundary"] < 1e-15
    assert abs(finer["T"] - exact["T"]) < 1e-12 * exact["T"]
    T, billed = [], []
    arch = simarch.load(_setup_spec())
    for seed in range(8):
        r = simarch.simulate(arch, duration=2000, warmup=50, seed=seed, hops=False)
        c = r.components()
        T.append((c.loc["q", "mean_wait_ms"] + c.loc["srv", "mean_latency_ms"]) / 1e3)
        billed.append(c.loc["srv", "instance_hours"] * 3600 / 2000)
    T, billed = np.array(T), np.array(billed)
    se = T.std(ddof=1) / math.sqrt(len(T))
    msg = f"mean response {T.mean():.5f} s vs exact {exact['T']:.5f} s, SE {se:.5f} (N = 8 x 2,000 s)"
    assert abs(T.mean() - exact["T"]) < 4 * se, msg
    # the setup delay matters here: M/M/4 without it would give ~0.109 s
    assert exact["T"] > 3 * 0.109, msg
    se_b = billed.std(ddof=1) / math.sqrt(len(billed))
    assert abs(billed.mean() - exact["billed"]) < 4 * se_b, (
        f"mean instances on or in setup {billed.mean():.4f} vs exact {exact['billed']:.4f}, SE {se_b:.4f}")


def test_on_demand_turns_instances_off_and_on():
    """A quick look at the on-demand policy: every message is consumed, instances come and go,
    and the consumer is never idle while it runs (utilisation in service is 1)."""
    r = simarch.simulate(simarch.load(_setup_spec()), duration=60, warmup=5, seed=1, hops=False)
    c = r.components()
    assert c.loc["q", "consumer_failures"] == 0
    assert c.loc["q", "consumed"] > 1000
    assert 1.0 < c.loc["srv", "instances"] < 4.0
    assert c.loc["srv", "utilization"] == pytest.approx(1.0, abs=1e-9)
    assert len(r.instance_log["srv"]["t"]) > 100


# --------------------------------------------------------------------------- target tracking


RAMP = {"ramp": {"start": 1, "end": 10, "at": "60s", "over": "480s"}}
AUTO = dict(min=1, max=12, target=0.55, interval="10s", window="20s", scale_in_cooldown="60s",
            provisioning={"constant": "10s"})


def _ramp(api: dict) -> dict:
    # 50 -> 500 requests/s; an instance serves 4 / 20 ms = 200 requests/s, 110 at the target
    return _spec({**api, "cost": 0.10}, rate=50, profile=RAMP)


@pytest.mark.slow
def test_ramp_tracks_the_load_and_costs_less_than_the_peak_size():
    """A ramp from 1x to 10x (50 to 500 requests/s over 480 s): the autoscaled tier follows
    the offered load / (target utilisation x an instance's capacity), within its evaluation
    interval, metric window and provisioning delay; its p99 stays close to the tier sized for
    the peak while the tier sized for 1x collapses; it costs less than the peak size. One run
    each (600 s, seed 1): a behavioural check, not a statistical one."""
    auto = simarch.simulate(simarch.load(_ramp(_api(**AUTO))), duration=600, warmup=0, seed=1, hops=False)
    small = simarch.simulate(simarch.load(_ramp({**_api(), "autoscale": None, "instances": 1})),
                             duration=600, warmup=0, seed=1, hops=False)
    big = simarch.simulate(simarch.load(_ramp({**_api(), "autoscale": None, "instances": 5})),
                           duration=600, warmup=0, seed=1, hops=False)
    ts = auto.timeseries("10s")
    t = ts["start_s"].to_numpy()
    n = ts["instances:api"].to_numpy()

    def rate(x):
        return 50 * (1 + 9 * np.clip((x - 60) / 480, 0, 1))

    def need(x):
        return np.ceil(rate(x) / 110)
    lag = 10 + 20 + 10  # interval + window + provisioning
    # never short of what the load needed a lag ago, never above what it needs now (+1 for
    # the rounding of a window's average), once the first decision could be made
    later = t >= 30
    assert np.all(n[later] >= need(t[later] - lag) - 1e-9), list(zip(t, n, need(t), strict=True))
    assert np.all(n[later] <= need(t[later] + 10) + 1 + 1e-9), list(zip(t, n, need(t), strict=True))
    assert n[-1] == pytest.approx(5)
    p99 = {k: r.summary().loc["all", "p99_ms"] for k, r in (("auto", auto), ("small", small), ("big", big))}
    assert p99["small"] > 20 * p99["big"], p99  # 1x capacity under 10x load: the queue grows
    assert p99["auto"] < 3 * p99["big"], p99
    cost = {k: r.run_cost_usd for k, r in (("auto", auto), ("small", small), ("big", big))}
    assert cost["small"] < cost["auto"] < 0.8 * cost["big"], cost
    # the cost column adds up to the run's cost, and instance-hours to the instances over time
    assert ts["cost_usd"].sum() == pytest.approx(cost["auto"], rel=1e-9)
    comp = auto.components().loc["api"]
    assert comp["instances"] == pytest.approx(float(np.average(n, weights=np.diff(np.append(t, 600)))), rel=1e-9)
    assert comp["instance_hours"] * 3600 >= comp["instances"] * 600  # billing counts provisioning too
    assert 0.3 < comp["utilization"] < 0.6  # over the instances in service, near the target
    ev = auto.events()
    assert set(ev["what"]) <= {"scale_out", "scale_in"} and (ev["what"] == "scale_out").sum() >= 4


def test_step_scaling_and_in_flight():
    """Step scaling on utilisation adds its step's instances; target tracking on in-flight
    requests per instance settles where the load needs."""
    steps = [{"above": 0.7, "add": 3}, {"above": 0.4, "add": 1}, {"below": 0.1, "remove": 1}]
    api = _api(target=None, policy="step", steps=steps, interval="5s", window="5s")
    r = simarch.simulate(simarch.load(_spec(api, rate=160)), duration=30, warmup=0, seed=2, hops=False)
    ev = r.events()
    # 160 rps on one 200 rps instance: 0.8 is above 0.7 and adds 3, then 0.2 each is calm
    assert list(ev["to"])[:1] == [4], ev
    assert r.instance_log["api"]["serving"][-1] == 4
    api = {**_api(metric="in_flight", target=2, interval="5s", window="5s", scale_in_cooldown="10s"),
           "instances": 2}
    r = simarch.simulate(simarch.load(_spec(api, rate=300)), duration=60, warmup=0, seed=2, hops=False)
    # 300 rps x 20 ms = 6 requests in service, and a few waiting: 3 or 4 instances at 2 each
    assert r.instance_log["api"]["serving"][-1] in (3, 4)


# --------------------------------------------------------------------------- scale-in and cold starts


def test_scale_in_drains_and_loses_nothing():
    """Load drops from 10x to 1x: instances are taken out of rotation and drained; every
    request completes OK, and an instance leaves only once its work is done."""
    api = {**_api(**{**AUTO, "scale_in_cooldown": "10s"}), "instances": 8}
    api["service_time"] = {"exponential": "50ms"}  # longer visits: drains take a while
    # 300 rps need 300 x 50 ms / 4 / 0.55 = 7 instances, 30 rps need 1
    spec = _spec(api, rate=300, profile={"step": {"at": "40s", "to": 0.1}})
    arch = simarch.load(spec)
    r = simarch.simulate(arch, duration=120, warmup=0, seed=4, hops=False)
    assert np.all(r.status == 0)
    assert r.summary().loc["all", "in_flight"] < 5
    ev = r.events()
    assert (ev["what"] == "scale_in").any()
    serving = r.instance_log["api"]["serving"]
    assert serving[-1] == 1 and serving.max() == 8


def test_drain_timeout_fails_what_is_left():
    """With a drain deadline shorter than the work held, the rest fails when the instance
    stops (documented behaviour)."""
    api = {"kind": "service", "instances": 3, "workers": 2, "service_time": {"constant": "4s"},
           "autoscale": {"max": 3, "target": 0.9, "interval": "5s", "window": "5s",
                         "drain_timeout": "1s"}}
    r = simarch.simulate(simarch.load(_spec(api, rate=0.4)), duration=40, warmup=0, seed=1, hops=False)
    assert (r.events()["what"] == "scale_in").any()
    assert (r.status == 3).sum() >= 1


def _visit_rows(r, name):
    rows = r.hops.rows
    visit = (rows[:, CODE].astype(np.int64) // 4) % 4 == 0
    gid = rows[:, WHAT].astype(np.int64)
    names = r.hops.pool_names
    pool = np.array([names[g] if 0 <= g < len(names) else "" for g in gid])
    return rows[visit], pool[visit]


def test_cold_start_slows_the_first_visits_of_a_new_instance():
    """A new instance warms up: its service times start at factor x and fall linearly to the
    warm value over the period; the instances already running are warm."""
    api = {"kind": "service", "instances": 1, "workers": 2, "service_time": {"constant": "10ms"},
           "autoscale": {"max": 2, "target": 0.25, "interval": "5s", "window": "5s",
                         "provisioning": "2s", "cold_start": {"factor": 3, "period": "10s"}}}
    r = simarch.simulate(simarch.load(_spec(api, rate=100)), duration=30, warmup=0, seed=5, hops=True)
    log = r.instance_log["api"]
    ready = float(log["t"][np.argmax(log["serving"] == 2)])
    assert ready == pytest.approx(7.0)  # decided at 5 s, 2 s to provision
    rows, pool = _visit_rows(r, "api")
    st = rows[:, SERVED] - rows[:, START]
    new = pool == "api[1]"
    first = new & (rows[:, START] < ready + 10)
    assert first.sum() > 100
    want = 0.010 * (3 - 2 * (rows[first, START] - ready) / 10)
    assert np.allclose(st[first], want, rtol=1e-6)
    assert st[first].max() == pytest.approx(0.030, rel=0.02)
    assert np.allclose(st[new & (rows[:, START] >= ready + 10)], 0.010, rtol=1e-9)
    assert np.allclose(st[pool == "api[0]"], 0.010, rtol=1e-9)
    assert np.all(rows[:, END] >= rows[:, SERVED])


# --------------------------------------------------------------------------- consumer groups


def test_consumer_group_scales_on_its_backlog():
    """A consumer service scaled on queue_length (the backlog per instance, as AWS's SQS
    backlog-per-instance pattern): consumers start with new instances and stop with removed
    ones after their message; every message is consumed."""
    spec = {"workload": {"rate": 50, "profile": {"step": {"at": "10s", "until": "40s", "to": 6}}},
            "components": {
                "api": {"kind": "service", "workers": 8},
                "q": {"kind": "queue"},
                "w": {"kind": "service", "instances": 1, "workers": 2, "service_time": {"exponential": "20ms"},
                      "autoscale": {"min": 1, "max": 8, "metric": "queue_length", "target": 5,
                                    "interval": "2s", "window": "4s", "scale_in_cooldown": "10s",
                                    "provisioning": "1s"}}},
            "calls": [{"from": "api", "to": "q"}, {"from": "q", "to": "w"}]}
    r = simarch.simulate(simarch.load(spec), duration=90, warmup=0, seed=3, hops=False)
    c = r.components()
    enq = c.loc["q", "throughput_rps"] * 90
    assert c.loc["q", "consumer_failures"] == 0
    assert c.loc["q", "consumed"] == pytest.approx(enq, abs=20)  # what is still queued at the end
    serving = r.instance_log["w"]["serving"]
    assert serving.max() >= 3  # 300 msg/s needs 3 instances of 100/s
    assert serving[-1] <= 1


# --------------------------------------------------------------------------- reports


def test_fixed_designs_keep_their_tables():
    """Nothing of autoscaling shows in a run without it (the golden snapshots check the
    numbers)."""
    spec = _spec({**_api(), "autoscale": None, "instances": 2})
    r = simarch.simulate(simarch.load(spec), duration=5, warmup=0, seed=1)
    assert r.instance_log == {}
    assert not any(c.startswith("instances:") for c in r.timeseries("1s").columns)
    assert "instance_hours" not in r.components().columns


def test_timeline_draws_the_instances(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from simarch import plots

    r = simarch.simulate(simarch.load(_spec(_api(interval="2s", window="2s"), rate=300)),
                         duration=20, warmup=0, seed=1, hops=False)
    axes = plots.timeline(r, "2s")
    twins = [a for a in axes[0].figure.axes if a not in list(axes)]
    assert twins and twins[0].get_ylabel() == "instances"
    assert any("api" in t.get_text() for t in axes[0].get_legend().get_texts())
