"""The example designs run, are healthy at 1x, agree with their static capacity analysis, and
give the same numbers in a fresh process (no hidden global state, no hash randomisation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import simarch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "architectures").glob("*.yaml"))
# designs whose capacity changes during the run: the static analyses describe a fixed tier,
# so they are checked against the simulation in tests/test_autoscale.py instead
CHANGING = {"autoscaled_diurnal"}
FIXED = [p for p in EXAMPLES if p.stem not in CHANGING]


def test_there_are_the_four_required_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"single_server", "scaled_service", "cached_sharded", "async_writes"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_is_healthy_at_1x(path):
    # healthy before its first fault, after the design's own warm-up (caches fill)
    arch = simarch.load(path)
    warm = max(10.0, arch.spec.simulation.warmup)
    r = simarch.simulate(arch, duration="20s", warmup=warm, seed=1)
    assert all(f["start_s"] >= warm + 20 for f in r.fault_windows)
    s = r.summary().loc["all"]
    assert s["requests"] > 1000
    assert s["availability"] == 1.0
    assert r.slo_met is True
    # Little's law: L = lambda W over the window, up to edge effects (requests in flight at
    # the window's edges, a few ms each out of 20 s): 2% relative.
    ll = r.littles_law()
    assert ll["L"] == pytest.approx(ll["lambda_W"], rel=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("path", FIXED, ids=lambda p: p.stem)
def test_static_bottleneck_saturates_in_simulation(path):
    # Past the load where the static analysis says the bottleneck saturates, the simulated
    # bottleneck is (nearly) fully busy and the SLO is missed; well below it, it is not.
    arch = simarch.load(path)
    arch = arch.with_changes({"faults": []})
    rep = simarch.capacity_report(arch)
    assert rep.bottleneck is not None

    def warm(load: float) -> float:
        # the design's warm-up is sized for 1x; caches fill in proportion to the requests seen
        return max(5.0, arch.spec.simulation.warmup / load)

    over_load = 1.25 * rep.saturation_load
    over = simarch.simulate(arch, load=over_load, duration="10s", warmup=warm(over_load), seed=1)
    comps = over.components()
    # the static estimate ignores queueing: the tier in front of the bottleneck, whose
    # workers wait on it, may saturate first; either way something is full
    assert comps.loc[rep.bottleneck, "utilization"] > 0.9
    assert comps["utilization"].max() > 0.97
    if path.stem == "async_writes":
        # the bottleneck is the consumer tier behind the queue: requests still meet their
        # SLO (they return on enqueue) while the backlog grows without bound
        assert rep.bottleneck == "writers"
        assert over.slo_met is True
        assert comps.loc["queue", "max_queue"] > 500
        assert comps.loc["queue", "mean_queue"] > 100
    else:
        assert over.slo_met is False
    under_load = 0.5 * rep.saturation_load
    under = simarch.simulate(arch, load=under_load, duration="10s", warmup=warm(under_load), seed=1)
    u = under.components().loc[rep.bottleneck, "utilization"]
    # the estimate ignores only queueing (and warm caches), so at half load it is close
    assert u == pytest.approx(0.5, abs=0.1)


def _run_json(path: Path, hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-m", "simarch.cli", "run", str(path), "--duration", "5s", "--warmup", "1s",
         "--seed", "11", "--json"],
        capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def test_same_numbers_in_fresh_processes():
    path = ROOT / "architectures/cached_sharded.yaml"
    assert _run_json(path, "1") == _run_json(path, "12345")


def test_the_changing_designs_are_the_autoscaled_ones():
    """CHANGING lists exactly the examples whose instances change during the run by
    autoscaling (deployments keep the tier's size, and the static analyses leave them out)."""
    auto = {p.stem for p in EXAMPLES
            if any(getattr(c, "autoscale", None) is not None for c in simarch.load(p).spec.components.values())}
    assert auto == CHANGING
