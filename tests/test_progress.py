"""The progress bar of a long run: in simulated time, only after a delay, never inside a
study's runs, and the chunked run loop behind it changes no simulated number."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ROOT
from typer.testing import CliRunner

import simarch
from simarch.cli import app
from simarch.run import progress as progress_mod
from simarch.run.progress import RunProgress
from simarch.run.simulation import Simulation
from simarch.study.experiment import Task, run_task

SPECS = ROOT / "tests" / "golden" / "specs"


class FakeBar:
    """Stands in for ``tqdm.auto.tqdm``: records what a bar was asked to show."""

    made: list[FakeBar] = []

    def __init__(self, total=None, initial=0, desc=None, **kw):
        self.total, self.n, self.desc, self.kw = total, initial, desc, kw
        self.initial = initial
        self.postfix = ""
        self.closed = False
        FakeBar.made.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    FakeBar.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", FakeBar)  # the bars of studies
    monkeypatch.setattr(progress_mod, "tqdm", FakeBar)  # the bar of a run
    return FakeBar.made


def _run(arch, chunked: bool, **kw):
    sim = Simulation(arch, load=kw.get("load", 1.0), duration=kw["duration"], warmup=kw["warmup"], seed=7)
    if not chunked:
        return sim.run()

    class Count:
        n = 0

        def update(self, now, events):
            Count.n += 1

        def close(self):
            pass

    calls = []
    result = sim.run(progress=Count(), stop=lambda: calls.append(sim.env.now))
    assert Count.n == Simulation.RUN_CHUNKS and len(calls) == Simulation.RUN_CHUNKS - 1
    assert calls == sorted(calls) and calls[-1] < sim.end
    return result


@pytest.mark.parametrize("spec, duration, warmup", [
    (ROOT / "architectures" / "retry_storm.yaml", 25.0, 50.0),  # faults, retries, breakers
    (ROOT / "architectures" / "cache_flush.yaml", 30.0, 20.0),  # a cache flush in the window
    (SPECS / "closed_queue.yaml", 20.0, 3.0),  # closed loop, queues, a hang
    (SPECS / "profiles.yaml", 10.0, 2.0),  # arrival profiles
])
def test_a_run_in_chunks_is_the_same_run(spec, duration, warmup):
    arch = simarch.load(spec)
    whole = _run(arch, False, duration=duration, warmup=warmup)
    chunked = _run(arch, True, duration=duration, warmup=warmup)
    for name in ("start", "end", "cls", "status", "pending_start", "late_end"):
        assert getattr(whole, name).tobytes() == getattr(chunked, name).tobytes(), name
    assert json.dumps(whole.to_dict(), default=str) == json.dumps(chunked.to_dict(), default=str)


def test_the_event_count_is_read_without_advancing_it():
    sim = Simulation(simarch.load(ROOT / "architectures" / "single_server.yaml"), duration=2.0,
                     warmup=1.0, seed=1)
    sim.start()
    sim.env.run(until=1.0)
    n = sim.events_scheduled()
    assert isinstance(n, int) and n > 100
    assert sim.events_scheduled() == n  # reading it took no id
    sim.env.timeout(1.0)
    assert sim.events_scheduled() == n + 1  # one per scheduled event


def test_the_bar_appears_only_after_its_delay(bars):
    quiet = RunProgress(100.0, delay=3600)
    for t in range(1, 101):
        quiet.update(float(t), 1000 * t)
    quiet.close()
    assert bars == []  # a short run shows nothing at all

    p = RunProgress(100.0, desc="x 1x", delay=0)
    p.update(10.0, 1_000)
    assert len(bars) == 1
    bar = bars[0]
    assert bar.total == 100.0 and bar.initial == 10.0 and bar.desc == "x 1x"
    assert bar.kw.get("leave") is False
    assert "s simulated" in bar.kw["bar_format"]
    progress_mod.RATE_EVERY, old = 0.0, progress_mod.RATE_EVERY
    try:
        p.update(50.0, 5_000)
        p.update(100.0, 9_000)
    finally:
        progress_mod.RATE_EVERY = old
    assert bar.n == 100.0
    assert bar.postfix.endswith("events/s")
    p.close()
    assert bar.closed


def test_simulate_has_a_bar_and_study_runs_do_not(bars, monkeypatch):
    monkeypatch.setattr(progress_mod, "DELAY", 0.0)
    spec = ROOT / "architectures" / "single_server.yaml"
    simarch.simulate(spec, duration="3s", warmup="1s")
    assert [b.total for b in bars] == [4.0]  # warm-up + duration, in simulated seconds
    assert bars[0].n == 4.0 and bars[0].closed
    bars.clear()
    simarch.simulate(spec, duration="3s", warmup="1s", progress=False)
    assert bars == []
    # a study's run, in a worker or in this process: the study's bar only
    arch = simarch.load(spec)
    row = run_task(Task(arch.to_dict(), None, 1.0, 3.0, 1.0, 1, 0))
    assert row["error"] is None and bars == []
    simarch.compare([spec], loads=[1], replications=2, duration="2s", warmup="1s", knee=False,
                    executor="serial", progress=True)
    assert {b.desc for b in bars} == {"compare"}


def test_the_run_command_takes_progress_options(bars, monkeypatch):
    monkeypatch.setattr(progress_mod, "DELAY", 0.0)
    spec = str(ROOT / "architectures" / "single_server.yaml")
    runner = CliRunner()
    out = runner.invoke(app, ["run", spec, "--duration", "2s", "--warmup", "1s", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert bars == []
    out = runner.invoke(app, ["run", spec, "--duration", "2s", "--warmup", "1s", "--progress"])
    assert out.exit_code == 0, out.output
    assert [b.total for b in bars] == [3.0]
    bars.clear()
    out = runner.invoke(app, ["run", spec, "--duration", "2s", "--warmup", "1s"])  # on by default
    assert out.exit_code == 0 and len(bars) == 1
