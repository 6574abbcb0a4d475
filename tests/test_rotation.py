"""The rotation of a component whose instances come and go (runtime/rotation.py): every
picker over the component follows it at once, a drain waits for the work an instance holds,
and a cold pool's service times carry its warm-up factor."""

from __future__ import annotations

import numpy as np
import pytest

import simarch
from simarch.model.components import ServiceSpec
from simarch.results.hops import ARRIVE, CODE, END, START, WHAT
from simarch.run.simulation import Simulation
from simarch.runtime.rotation import warming

SPEC = {
    "workload": {"rate": 200},
    "components": {
        "lb": {"kind": "load_balancer", "health_check": {"interval": "1s"}},
        "api": {"kind": "service", "instances": 4, "workers": 4,
                "service_time": {"constant": "10ms"}},
    },
    "calls": [{"from": "lb", "to": "api"}],
}


@pytest.fixture
def rotating(monkeypatch):
    monkeypatch.setattr(ServiceSpec, "changes_instances", property(lambda self: True))


def _sim(spec=SPEC, **kw) -> Simulation:
    return Simulation(simarch.load(spec), duration=kw.get("duration", 20.0), warmup=0.0,
                      seed=kw.get("seed", 3), hops=True)


def _visits(result, sim, name):
    """(pool index within ``name``, arrival, start, end) of every visit to ``name``."""
    rows = result.hops.rows
    visit = (rows[:, CODE].astype(np.int64) // 4) % 4 == 0
    first = sim.pools.index(sim.components[name].pools[0])
    gid = rows[:, WHAT].astype(np.int64)
    mine = visit & (gid >= first) & (gid < first + len(sim.components[name].pools))
    r = rows[mine]
    return gid[mine] - first, r[:, ARRIVE], r[:, START], r[:, END]


def test_fixed_rotation_changes_nothing(rotating):
    """A rotation that never changes routes round robin exactly as a fixed tier does."""
    plain = simarch.simulate(simarch.load(SPEC), duration=10, warmup=0, seed=3)
    sim = _sim(duration=10.0)
    assert sim.components["api"].rotation is not None
    moving = sim.run()
    assert np.array_equal(plain.latency, moving.latency)


def test_taken_out_instance_gets_no_new_requests_and_drains(rotating):
    sim = _sim()
    api = sim.components["api"]
    rot = api.rotation
    out = api.pools[0]
    done = {}

    def script(env):
        yield env.timeout(5.0)
        rot.take_out(out, env.now)
        done["at"] = env.now
        drained = yield env.process(rot.drain(env, out))
        done["drained"] = (drained, env.now)
        yield env.timeout(5.0)
        rot.put_in(out, env.now)
        done["back"] = env.now
    sim.env.process(script(sim.env))
    result = sim.run()
    idx, arrive, _, end = _visits(result, sim, "api")
    zero = idx == 0
    # nothing arrives at instance 0 while it is out of rotation, and it is used again after
    assert not np.any(zero & (arrive > done["at"]) & (arrive < done["back"]))
    assert np.any(zero & (arrive > done["back"]))
    drained, t = done["drained"]
    assert drained
    # the drain ends once its last visit has ended, within one poll
    last = end[zero & (arrive <= done["at"])].max()
    assert last <= t <= last + 0.011
    assert np.all(result.status == 0)
    assert [n for _, n in rot.log] == [4, 3, 4]
    assert rot.in_rotation_area(out, 20.0) == pytest.approx(20.0 - (done["back"] - done["at"]))


def test_drain_deadline(rotating):
    spec = {**SPEC, "components": {**SPEC["components"], "api": {
        **SPEC["components"]["api"], "service_time": {"constant": "2s"}}}, "workload": {"rate": 2}}
    sim = _sim(spec)
    rot = sim.components["api"].rotation
    pool = sim.components["api"].pools[1]
    got = {}

    def script(env):
        yield env.timeout(5.0)
        while pool.load == 0:  # wait for work to be in it
            yield env.timeout(0.05)
        rot.take_out(pool, env.now)
        got["t0"] = env.now
        got["drained"] = yield env.process(rot.drain(env, pool, deadline=0.5))
        got["t1"] = env.now
    sim.env.process(script(sim.env))
    sim.run()
    assert got["drained"] is False
    assert got["t1"] - got["t0"] == pytest.approx(0.5)


def test_direct_callers_follow_the_rotation(rotating):
    """Without a load balancer, a caller's picker reads the rotation too."""
    spec = {"workload": {"rate": 100}, "components": {
        "api": {"kind": "service", "instances": 3, "workers": 2, "service_time": {"constant": "5ms"},
                "policy": "random"}}}
    sim = _sim(spec)
    rot = sim.components["api"].rotation

    def script(env):
        yield env.timeout(4.0)
        rot.take_out(sim.components["api"].pools[2], env.now)
    sim.env.process(script(sim.env))
    result = sim.run()
    idx, arrive, _, _ = _visits(result, sim, "api")
    assert not np.any((idx == 2) & (arrive > 4.0))
    assert np.any((idx == 2) & (arrive < 4.0))


def test_empty_rotation_fails_fast(rotating):
    sim = _sim()
    rot = sim.components["api"].rotation

    def script(env):
        yield env.timeout(2.0)
        for p in sim.components["api"].pools:
            rot.take_out(p, env.now)
    sim.env.process(script(sim.env))
    result = sim.run()
    failed_late = (result.status != 0) & (result.end > 2.01)
    assert failed_late.sum() > 0.9 * np.sum(result.end > 2.01)


@pytest.mark.parametrize("decay", ["step", "linear", "exponential"])
def test_cold_pool_service_times(rotating, decay):
    """A pool warming up from factor 3 over 4 s serves 10 ms requests in 10 ms x f(t)."""
    spec = {"workload": {"rate": 20}, "components": {
        "api": {"kind": "service", "instances": 1, "workers": 50, "service_time": {"constant": "10ms"}}}}
    sim = _sim(spec)
    api = sim.components["api"]
    f = warming(2.0, 3.0, 4.0, decay)

    def script(env):
        yield env.timeout(2.0)
        api.set_cold(api.pools[0], f)
    sim.env.process(script(sim.env))
    result = sim.run()
    _, _, start, end = _visits(result, sim, "api")
    want = np.array([0.010 * f(t) if t >= 2.0 else 0.010 for t in start])
    assert np.allclose(end - start, want, rtol=1e-9, atol=1e-12)
    assert api.pools[0].cold is None or decay == "exponential"  # warm again by the end
    assert api.slow == [] or decay == "exponential"
