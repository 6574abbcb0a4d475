"""Work is bounded and results are not lost: runs over budget are refused at once with the
estimate, output folders are checked before simulating, and the CLI's exit codes say what
happened. Also the spec rules for what would be accepted but meaningless."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import ROOT, simarch_cli

import simarch
from simarch import SpecError
from simarch.run.budget import estimate

SINGLE = ROOT / "architectures" / "single_server.yaml"


def _refused(data: dict, **kw) -> SpecError:
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="over the budget") as err:
        simarch.simulate(data, **kw)
    assert time.perf_counter() - t0 < 5  # refused before any work
    return err.value


def _spec(**wl) -> dict:
    return {"workload": {"rate": 100, **wl}, "components": {"a": {"kind": "service", "workers": 4,
                                                                  "service_time": "1ms"}}}


def test_runs_over_budget_are_refused_with_the_estimate_and_the_field():
    e = _refused(_spec(rate=1e12))
    assert e.path == ("workload", "rate") and "events" in e.message
    e = _refused(_spec(), duration="1e15s")
    assert e.path == ("simulation", "duration")
    e = _refused(_spec(), duration="1000s", max_events=1e4)
    assert "1e+04" in e.message


def test_the_budget_can_be_raised():
    r = simarch.simulate(_spec(rate=10), duration="2s", warmup="0s", max_events=1e9)
    assert r.summary().loc["all", "requests"] > 0
    with pytest.raises(SpecError, match="max_events"):
        simarch.simulate(_spec(), max_events=0)


def test_the_estimate_bounds_the_real_work():
    """The estimate is on the high side: SimPy's event count of a real run is below it."""
    from simarch.run.simulation import Simulation

    arch = simarch.load(ROOT / "architectures" / "cached_sharded.yaml")
    work = estimate(arch, 1.0, 20.0, 5.0)
    sim = Simulation(arch, load=1.0, duration=20.0, warmup=5.0, seed=1)
    sim.run()
    events = next(sim.env._eid)
    assert events <= work.events <= 4 * events, (events, work.events)


def test_closed_loop_estimate_uses_the_bottleneck():
    data = {"workload": {"users": 2, "think_time": "1us"},
            "components": {"a": {"kind": "service", "workers": 1, "service_time": "500ms"}}}
    work = estimate(simarch.load(data), 1.0, 300.0, 30.0)
    assert work.requests == pytest.approx(330 / 0.5, rel=1e-6)  # one worker, 0.5 s a request


def test_cli_refuses_before_simulating(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(SINGLE.read_text().replace("rate: 150", "rate: 1e12"))
    p = simarch_cli("run", big)
    assert p.returncode == 2 and "workload.rate" in p.stderr and "events" in p.stderr
    p = simarch_cli("run", SINGLE, "--duration", "1s", "--max-events", "10")
    assert p.returncode == 2 and "over the budget of 10 events" in p.stderr


def test_out_is_checked_before_simulating(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    p = simarch_cli("run", SINGLE, "--duration", "1s", "--out", afile)
    assert p.returncode == 2 and "is a file" in p.stderr and "design" not in p.stdout
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "simarch.json").write_text(json.dumps({"type": "sweep"}))
    p = simarch_cli("run", SINGLE, "--duration", "1s", "--out", sweep)
    assert p.returncode == 2 and "holds the results of a sweep" in p.stderr
    assert json.loads((sweep / "simarch.json").read_text()) == {"type": "sweep"}


def test_fail_on_slo_exit_code(tmp_path):
    spec = tmp_path / "tight.yaml"
    spec.write_text(SINGLE.read_text().replace("p99: 200ms", "p99: 1ms"))
    assert "p99: 1ms" in spec.read_text()
    assert simarch_cli("run", spec, "--duration", "5s", "--warmup", "1s").returncode == 0
    p = simarch_cli("run", spec, "--duration", "5s", "--warmup", "1s", "--fail-on-slo")
    assert p.returncode == 3 and "SLO missed" in p.stdout
    assert simarch_cli("run", SINGLE, "--duration", "5s", "--fail-on-slo").returncode == 0


def test_tiny_and_huge_load_multipliers_are_refused():
    p = simarch_cli("run", SINGLE, "--load", "1e-320")
    assert p.returncode == 2 and p.stderr.startswith("error: --load:")
    with pytest.raises(SpecError, match="between"):
        simarch.simulate(SINGLE, load=1e7)


def test_validate_notes_and_warnings(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("workload: {rate: 100}\ncomponents:\n  lb: {kind: load_balancer}\n"
                    "  api: {kind: service, workers: 4, policy: random, service_time: 2}\n"
                    "calls: [{from: lb, to: api}]\n")
    p = simarch_cli("validate", spec)
    assert p.returncode == 0
    assert "2 is read as 2 seconds" in p.stdout
    assert "components.api.policy: unused" in p.stdout
    assert "cannot keep up" in p.stderr
    assert "One run (" in p.stdout and "events" in p.stdout


def _queue_design(**extra) -> dict:
    return {"workload": {"rate": 10},
            "components": {"api": {"kind": "service"}, "q": {"kind": "queue"},
                           "w": {"kind": "service"}},
            "calls": [{"from": "api", "to": "q"}, {"from": "q", "to": "w"}], **extra}


def test_a_queue_needs_consumers():
    data = _queue_design()
    data["calls"] = data["calls"][:1]
    data["workload"]["entry"] = "api"
    with pytest.raises(SpecError, match="no consumers") as err:
        simarch.load(data)
    assert err.value.path == ("components", "q")


def test_network_faults_between_a_queue_and_its_consumer_are_refused():
    with pytest.raises(SpecError, match="no effect") as err:
        simarch.load(_queue_design(faults=[{"kind": "partition", "between": ["q", "w"], "at": "1s"}]))
    assert err.value.path == ("faults", 0, "between")
    simarch.load(_queue_design(faults=[{"kind": "partition", "between": ["api", "q"], "at": "1s"}]))


def test_saturates_at_tiny_multipliers_is_not_zero():
    from simarch.results.text import fmt

    assert fmt(4e-12, "x") == "4e-12x" and fmt(0.5, "x") == "0.50x"


def test_help_shows_defaults_and_flags_take_no_value():
    p = simarch_cli("run", "--help")
    assert "[default: spec's simulation.duration, 300s]" in p.stdout
    assert "--json  " in p.stdout or "--json\n" in p.stdout
    assert "--json <bool>" not in p.stdout


def test_usage_errors_are_one_line():
    for args in (("bogus",), ("run",), ("run", SINGLE, "--duration")):
        p = simarch_cli(*args)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_run_saves_elsewhere_when_the_write_fails(tmp_path, monkeypatch):
    """A finished run is never lost: if writing --out fails, it is saved in a temporary
    folder and the message says where."""
    from typer.testing import CliRunner

    from simarch import cli
    from simarch.results.result import Result

    real_save = Result.save
    calls = []

    def flaky_save(self, directory):
        calls.append(Path(directory))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_save(self, directory)

    monkeypatch.setattr(Result, "save", flaky_save)
    res = CliRunner().invoke(cli.app, ["run", str(SINGLE), "--duration", "1s", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "No space left on device" in res.output and "saved in" in res.output
    assert (calls[1] / "result.json").exists()
