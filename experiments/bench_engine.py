"""Engine benchmark: simarch against hand-written SimPy, the cost of a station visit as designs
get deeper, and what a request costs on the example design.

One run prints four sections. Each is a compact table with the target and PASS/MISS next to
each figure; the header gives the git commit, the versions and ``os.getloadavg()`` at the
start, the footer the load average at the end and the benchmark's wall and CPU time (the figures are
wall-clock and CPU times on a machine that may be shared: read them next to the load).

**1. simarch against hand-written SimPy.** Two queueing models are simulated for the same
simulated horizon, once through ``simarch.simulate`` and once through the short SimPy script
a person would write by hand (``simpy.Resource``, a source process, one process per customer,
``random.Random`` draws, response times appended to a list; :func:`run_simpy`):

* ``M/M/4``  Poisson arrivals at 3.2/s, 4 workers, exponential service with mean 1 s (rho 0.8).
* ``tandem`` Poisson arrivals at 0.5/s through three single-worker stations in series with
  exponential service means 1.2 s, 1.5 s and 1.0 s (rho 0.60, 0.75, 0.50). In simarch the
  stations are chained with ``mode="forward"``: a request releases its worker, then moves on.

Measured, per model, with ``--requests`` expected requests (the horizon is N / lambda):

* **in-process speed** -- recorded requests per wall-clock second of each side, and the ratio
  simarch / SimPy. The simarch time is the whole ``simulate()`` call (building the runtime,
  running, building the :class:`~simarch.Result`). Each side runs ``--repeat`` times,
  interleaved with the other, and the fastest run of each is kept. Target: >= 2.0x.
* **whole-process speed** -- the same, with a fresh ``python`` process (``sys.executable``)
  per run, timed wall-clock from start to exit: the simarch side does ``import simarch`` and
  simulates the model (given as a spec mapping), the SimPy side runs the hand-written script
  (the source of :func:`run_simpy`), so start-up and imports count. One untimed run per side
  first (byte-code caches, file cache), then best of ``--repeat`` interleaved runs.
  Target: >= 1.2x.
* **memory** -- peak traced memory (``tracemalloc``) of one more, separate in-process run,
  divided by the number of recorded requests. Target for simarch: <= 200 bytes per request;
  the script's figure is printed for context only. Tracing is kept out of the timed runs.
* **sanity** -- both sides' mean response time, next to the exact value from queueing theory,
  so the two sides are seen to do the same work.

The speed targets are stated at 200,000 requests (the full profile); with fewer requests
start-up weighs more in the whole-process ratio.

**2. K-scaling.** Two designs of K services, K in ``--ks`` (3, 10, 30, 100, 300), each station
an exponential service time with mean 1 ms, Poisson arrivals at 500/s:

* ``forward`` -- a tandem: K single-worker services chained with ``mode="forward"`` (rho 0.5
  at every station);
* ``call`` -- a synchronous call chain: each service calls the next with the default
  ``mode: call`` and holds its worker until the whole rest of the chain has answered, so every
  service has 100,000 workers (the most a service may have) and no visit waits for one.

Each cell is one ``simulate()`` call, no warm-up, with a horizon giving about ``--visits``
station visits whatever K (so the rows would take similar time at a flat cost per visit); the
figure is microseconds of wall time per station visit (the cell's wall and CPU seconds are
shown too), the visits being counted by the stations (the sum of the components'
``arrivals``; requests x K for the requests that finished). A row that raises (a deep call
chain can hit ``RecursionError``) shows the exception's name in its cell, and the benchmark
goes on. Target: the K=300 figure within 1.3x of the K=3 figure, in both designs (flat cost
per visit, not O(K^2)).

**3. Events and bytes per request** on ``architectures/cached_sharded.yaml`` at 1x,
``--spec-requests`` expected requests, no warm-up. The simulation is built directly
(:class:`simarch.run.simulation.Simulation`, as ``simulate`` builds it) so that its SimPy
environment can be read after the run: events per request is the number of events the
environment scheduled (:func:`events_scheduled`) over the recorded requests. Target: <= 4.
Bytes per request is the peak traced memory of the same run (``tracemalloc``, building the
simulation included) over the recorded requests (no target; printed for context). Without a
warm-up the cache is cold for the first minute; that changes the event count by well under 1%.

Sections 1 and 4 run simarch with its hop records off (``hops=False``), as the hand-written
script keeps no per-visit records either and as section 4's memory target is for the request
records; section 5 measures what the hop records cost.

**4. A million requests** (``--big``) through ``architectures/cached_sharded.yaml`` at 1x and
at 10x load, no warm-up, the window being ``--big`` / (the spec's workload rate x load). Each
case runs in a child process of its own, so its memory figures are its own: CPU seconds of the
``simulate()`` call (``time.process_time``; the child's total CPU from ``getrusage``, import
included, is in the JSON), peak RSS, and RSS per request beyond the import: peak RSS minus the
RSS once ``simarch``, pandas and everything a run needs are loaded (the spec loaded and a
half-second run made), over the recorded requests. Targets:
<= 20 CPU seconds in each case and <= 60 bytes per request. Peak RSS is the child's own
high-water mark, ``VmHWM`` in ``/proc/self/status``: on Linux a child's ``ru_maxrss`` carries
over the high-water mark from before its ``exec`` (the parent's RSS at the fork, here more
than the child's own), so ``ru_maxrss`` (also in the JSON) is only the fallback where
``/proc`` is missing. The table also shows the share of requests answered OK and whether
simarch judged the run stable, and simarch's warnings about each case are printed under it,
with the utilisation of each tier (at 10x the example's ``api`` tier runs near saturation).

**5. Hop records** (:mod:`simarch.runtime.hops`): the two models of section 1 and the example
design, ``--spec-requests`` expected requests each, simulated with hop records off and on,
interleaved, best CPU time of ``--repeat`` runs each (``time.process_time``, the whole
``simulate()`` call). Target: on <= 1.15x off. Also the bytes the records take per visit.

Run it from the project root::

    .venv/bin/python experiments/bench_engine.py --quick    # or: make bench (about a minute)
    .venv/bin/python experiments/bench_engine.py            # or: make bench-full (a few minutes)
    .venv/bin/python experiments/bench_engine.py --only scaling --ks 3,30,300 --visits 100000
    .venv/bin/python experiments/bench_engine.py --quick --json

``--quick`` changes the defaults: 50,000 requests and best of 2 in section 1, K = 3, 30, 300
at 60,000 visits in section 2, 50,000 requests in section 3 and 100,000 instead of 1,000,000
in section 4. Options given explicitly override either profile; ``--only SECTION``
(repeatable: simpy, scaling, events, big, hops) runs only those sections. Progress goes to stderr, the
tables (or with ``--json`` one JSON document of every figure) to stdout. The exit status is 0
whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import random
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import simpy

import simarch
from simarch.run.simulation import Simulation

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "architectures" / "cached_sharded.yaml"

SPEED_TARGET = 2.0  # in-process: simarch req/s over SimPy req/s, at least
PROCESS_TARGET = 1.2  # whole process, start-up included: the same ratio, at least
MEMORY_TARGET = 200.0  # simarch peak traced bytes per recorded request, at most
MEAN_TOLERANCE = 0.03  # relative difference allowed between the two sides' mean response time
SCALING_TARGET = 1.3  # µs per visit at the largest K over the smallest K, at most
EVENTS_TARGET = 4.0  # SimPy events scheduled per request, at most
HOPS_TARGET = 1.15  # hop records on: CPU time over hop records off, at most
CPU_TARGET = 20.0  # CPU seconds for a --big run, at most
RSS_TARGET = 60.0  # RSS bytes per request beyond the import, at most
SEED = 1

STATION_MEAN = 0.001  # s, the service time mean of every station of the K-scaling designs
CHAIN_RATE = 500.0  # arrivals per second: rho 0.5 at a single-worker station
CALL_WORKERS = 100_000  # per service of the call chain: the most a service may have
BIG_LOADS = (1.0, 10.0)


@dataclass(frozen=True)
class Profile:
    requests: int  # section 1: expected requests per model and run
    repeat: int  # section 1: timed runs per side
    visits: int  # section 2: station visits per cell
    ks: tuple[int, ...]  # section 2
    spec_requests: int  # section 3
    big: int  # section 4: requests per case


FULL = Profile(requests=200_000, repeat=3, visits=300_000, ks=(3, 10, 30, 100, 300),
               spec_requests=200_000, big=1_000_000)
QUICK = Profile(requests=50_000, repeat=2, visits=60_000, ks=(3, 30, 300),
                spec_requests=50_000, big=100_000)
SECTIONS = ("simpy", "scaling", "events", "big", "hops")


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Model:
    name: str
    rate: float  # arrivals per second
    workers: int  # per station
    means: tuple[float, ...]  # exponential service mean of each station, in order (s)

    def horizon(self, requests: int) -> float:
        return requests / self.rate

    def architecture(self) -> simarch.Architecture:
        arch = simarch.Architecture(self.name, workload={"rate": self.rate})
        names = [chr(ord("a") + i) for i in range(len(self.means))] if len(self.means) > 1 else ["s"]
        for name, mean in zip(names, self.means, strict=True):
            arch.add(name, kind="service", workers=self.workers,
                     service_time={"exponential": f"{mean:g}s"})
        for src, dst in zip(names, names[1:], strict=False):
            arch.call(src, dst, mode="forward")
        return arch

    def exact_mean(self) -> float:
        """Mean response time from queueing theory (Erlang C per station; Jackson network)."""
        return sum(_mmc_response(self.rate, 1.0 / m, self.workers) for m in self.means)


def _mmc_response(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    rho = a / c
    if rho >= 1:
        return math.inf
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return 1 / mu + p_wait / (c * mu - lam)


MODELS = (
    Model("M/M/4", rate=3.2, workers=4, means=(1.0,)),
    Model("tandem", rate=0.5, workers=1, means=(1.2, 1.5, 1.0)),
)


# ----------------------------------------------------------------------------- the two sides


def run_simpy(model: Model, horizon: float, seed: int) -> list[float]:
    """The hand-written baseline: returns the response time of every finished customer."""
    rng = random.Random(seed)
    env = simpy.Environment()
    stations = [(simpy.Resource(env, capacity=model.workers), 1.0 / m) for m in model.means]
    response_times: list[float] = []

    def customer(env):
        arrive = env.now
        for res, mu in stations:
            with res.request() as req:
                yield req
                yield env.timeout(rng.expovariate(mu))
        response_times.append(env.now - arrive)

    def source(env):
        lam = model.rate
        while True:
            yield env.timeout(rng.expovariate(lam))
            env.process(customer(env))

    env.process(source(env))
    env.run(until=horizon)
    return response_times


def run_simarch(model: Model, horizon: float, seed: int) -> simarch.Result:
    return simarch.simulate(model.architecture(), duration=horizon, warmup=0, seed=seed, hops=False)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _peak(fn: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, out


def _verdict(ok: bool | None) -> str:
    return "PASS" if ok else "MISS"


# ----------------------------------------------------------------------------- 1. vs SimPy


def bench_model(model: Model, requests: int, repeat: int, log: Callable[[str], None]) -> dict:
    """In-process speed, traced memory and mean response time of both sides on one model."""
    horizon = model.horizon(requests)
    best = {"simpy": math.inf, "simarch": math.inf}
    count = {"simpy": 0, "simarch": 0}
    mean = {"simpy": math.nan, "simarch": math.nan}
    sides = {
        "simpy": lambda: run_simpy(model, horizon, SEED),
        "simarch": lambda: run_simarch(model, horizon, SEED),
    }
    for k in range(repeat):
        order = ("simpy", "simarch") if k % 2 == 0 else ("simarch", "simpy")
        for side in order:
            dt, out = _timed(sides[side])
            lat = out if side == "simpy" else out.latency
            n = len(lat)
            log(f"  {model.name:<8} run {k + 1}/{repeat} {side:<8} {n:>9,} requests in {dt:6.2f} s")
            if dt < best[side]:
                best[side] = dt
            count[side] = n
            mean[side] = sum(lat) / n if side == "simpy" else float(lat.mean())
            del out, lat

    peak = {}
    per_req = {}
    for side in ("simpy", "simarch"):
        p, out = _peak(sides[side])
        n = len(out) if side == "simpy" else len(out.latency)
        peak[side], per_req[side] = p, p / n
        del out
        log(f"  {model.name:<8} traced  {side:<8} peak {p / 2**20:7.1f} MiB, {p / n:6.1f} bytes/request")

    rate = {s: count[s] / best[s] for s in best}
    ratio = rate["simarch"] / rate["simpy"]
    exact = model.exact_mean()
    diff = abs(mean["simarch"] - mean["simpy"]) / mean["simpy"]
    return {
        "model": model.name,
        "horizon_s": horizon,
        "requests": count,
        "best_wall_s": best,
        "requests_per_s": rate,
        "ratio": ratio,
        "ratio_target": SPEED_TARGET,
        "ratio_pass": ratio >= SPEED_TARGET,
        "peak_bytes": peak,
        "bytes_per_request": per_req,
        "bytes_target": MEMORY_TARGET,
        "bytes_pass": per_req["simarch"] <= MEMORY_TARGET,
        "mean_response_s": {**mean, "exact": exact},
        "mean_rel_diff": diff,
        "mean_agree": diff <= MEAN_TOLERANCE,
    }


def _process_scripts(model: Model, horizon: float) -> dict[str, str]:
    """The program each side's fresh process runs; each prints its number of recorded requests."""
    m = {"rate": model.rate, "workers": model.workers, "means": model.means}
    simpy_script = "\n".join([
        "from __future__ import annotations",
        "import random",
        "from types import SimpleNamespace",
        "import simpy",
        "",
        inspect.getsource(run_simpy),
        f"model = SimpleNamespace(**{m!r})",
        f"print(len(run_simpy(model, {horizon!r}, {SEED!r})))",
    ])
    simarch_script = "\n".join([
        "import simarch",
        f"result = simarch.simulate({model.architecture().to_dict()!r}, duration={horizon!r}, "
        f"warmup=0, seed={SEED!r}, hops=False)",
        "print(len(result.latency))",
    ])
    return {"simpy": simpy_script, "simarch": simarch_script}


def _run_process(script: str) -> tuple[float, int]:
    """Wall time of a fresh interpreter running ``script``, and the count it printed."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child process exited with {done.returncode}: {tail}")
    return dt, int(done.stdout.split()[-1])


def bench_process(model: Model, requests: int, repeat: int, log: Callable[[str], None]) -> dict:
    """Whole-process speed of both sides on one model: best of ``repeat`` interleaved runs."""
    horizon = model.horizon(requests)
    scripts = _process_scripts(model, horizon)
    warm = _process_scripts(model, model.horizon(2000))
    best = {"simpy": math.inf, "simarch": math.inf}
    count = {"simpy": 0, "simarch": 0}
    try:
        for side in ("simpy", "simarch"):
            _run_process(warm[side])
        for k in range(repeat):
            order = ("simpy", "simarch") if k % 2 == 0 else ("simarch", "simpy")
            for side in order:
                dt, n = _run_process(scripts[side])
                log(f"  {model.name:<8} process {k + 1}/{repeat} {side:<8} {n:>9,} requests in {dt:6.2f} s")
                best[side] = min(best[side], dt)
                count[side] = n
    except Exception as e:  # reported in the table; the benchmark goes on
        log(f"  {model.name:<8} process: {type(e).__name__}: {e}")
        return {"model": model.name, "error": f"{type(e).__name__}: {e}", "ratio_pass": False}
    rate = {s: count[s] / best[s] for s in best}
    ratio = rate["simarch"] / rate["simpy"]
    return {
        "model": model.name,
        "horizon_s": horizon,
        "requests": count,
        "best_wall_s": best,
        "requests_per_s": rate,
        "ratio": ratio,
        "ratio_target": PROCESS_TARGET,
        "ratio_pass": ratio >= PROCESS_TARGET,
        "error": None,
    }


def warm_up() -> None:
    """Import everything both sides touch lazily, outside the measured runs."""
    for model in MODELS:
        run_simpy(model, model.horizon(2000), SEED)
        run_simarch(model, model.horizon(2000), SEED).summary()
    bench_chain("forward", 3, 2000)
    bench_chain("call", 3, 2000)


def table_simpy(rows: list[dict], procs: list[dict], p: Profile) -> str:
    out = [f"== 1. simarch against hand-written SimPy: {p.requests:,} requests per model, "
           f"best of {p.repeat} (targets stated at 200,000 requests) =="]
    out.append(f"{'in-process':<12} {'simpy req/s':>12} {'simarch req/s':>14} {'ratio':>7}  {'target':<6}"
               f"       {'bytes/req':>9}  {'target':<6}")
    for r in rows:
        rate = r["requests_per_s"]
        out.append(
            f"{r['model']:<12} {rate['simpy']:>12,.0f} {rate['simarch']:>14,.0f} {r['ratio']:>6.2f}x"
            f"  >={SPEED_TARGET:g}x {_verdict(r['ratio_pass'])}"
            f"  {r['bytes_per_request']['simarch']:>9.1f}  <={MEMORY_TARGET:g} {_verdict(r['bytes_pass'])}")
    out.append(f"{'process':<12} {'simpy req/s':>12} {'simarch req/s':>14} {'ratio':>7}  {'target':<6}"
               f"       {'simpy wall':>10} {'simarch wall':>12}")
    for r in procs:
        if r.get("error"):
            out.append(f"{r['model']:<12} {r['error']}")
            continue
        rate, w = r["requests_per_s"], r["best_wall_s"]
        out.append(
            f"{r['model']:<12} {rate['simpy']:>12,.0f} {rate['simarch']:>14,.0f} {r['ratio']:>6.2f}x"
            f"  >={PROCESS_TARGET:g}x {_verdict(r['ratio_pass'])}"
            f"  {w['simpy']:>9.2f}s {w['simarch']:>11.2f}s")
    out.append("in-process details (best wall time of the repeats; peak traced memory of a separate run):")
    for r in rows:
        n, w, pk, bpr = r["requests"], r["best_wall_s"], r["peak_bytes"], r["bytes_per_request"]
        out.append(
            f"  {r['model']:<8} horizon {r['horizon_s']:>9,.0f} s | simpy {n['simpy']:>9,} req "
            f"{w['simpy']:5.2f} s, peak {pk['simpy'] / 2**20:6.1f} MiB = {bpr['simpy']:5.1f} B/req"
            f" | simarch {n['simarch']:>9,} req {w['simarch']:5.2f} s, peak "
            f"{pk['simarch'] / 2**20:6.1f} MiB = {bpr['simarch']:5.1f} B/req")
    out.append(f"sanity: mean response time (s), both sides within {MEAN_TOLERANCE:.0%} of each other:")
    for r in rows:
        m = r["mean_response_s"]
        out.append(
            f"  {r['model']:<8} simpy {m['simpy']:8.4f}  simarch {m['simarch']:8.4f}  "
            f"exact {m['exact']:8.4f}  diff {r['mean_rel_diff']:6.2%}  "
            f"{'OK' if r['mean_agree'] else 'DISAGREE'}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- 2. K-scaling


def chain(mode: str, k: int) -> simarch.Architecture:
    """K services of 1 ms mean exponential service, s0 -> s1 -> ... in ``mode`` (forward/call)."""
    arch = simarch.Architecture(f"{mode}-chain-{k}", workload={"rate": CHAIN_RATE})
    names = [f"s{i}" for i in range(k)]
    workers = 1 if mode == "forward" else CALL_WORKERS
    for name in names:
        arch.add(name, kind="service", workers=workers,
                 service_time={"exponential": f"{STATION_MEAN * 1e3:g}ms"})
    params = {"mode": "forward"} if mode == "forward" else {}  # call: the default mode
    for src, dst in zip(names, names[1:], strict=False):
        arch.call(src, dst, **params)
    return arch


def bench_chain(mode: str, k: int, visits: int) -> dict:
    """One cell of the K-scaling table: µs of wall time per station visit, or the exception."""
    # A station's mean response time is 2 ms at a single worker with rho 0.5, 1 ms with no wait,
    # so a request takes L = k * that to pass. A request that arrived at t has made
    # k * min(1, (H - t) / L) visits by the end H, which over Poisson arrivals at rate r sums
    # to r * k * (H - L / 2) when H >= L, and r * k * H^2 / (2 L) when H < L; solved for H:
    station_response = 2 * STATION_MEAN if mode == "forward" else STATION_MEAN
    latency = k * station_response
    per_arrival = visits / (CHAIN_RATE * k)
    horizon = (per_arrival + latency / 2 if per_arrival >= latency / 2
               else math.sqrt(2 * latency * per_arrival))
    cell = {"mode": mode, "k": k, "horizon_s": horizon, "error": None}
    try:
        arch = chain(mode, k)
        c0 = time.process_time()
        dt, res = _timed(lambda: simarch.simulate(arch, duration=horizon, warmup=0, seed=SEED))
        cpu = time.process_time() - c0
        n = sum(int(s["arrivals"]) for s in res.component_stats.values())
        cell.update(wall_s=dt, cpu_s=cpu, visits=n, requests=len(res.latency),
                    us_per_visit=dt / n * 1e6 if n else math.nan)
    except Exception as e:  # RecursionError and the like go in the cell
        cell.update(error=type(e).__name__, detail=str(e)[:300])
    return cell


def bench_scaling(ks: tuple[int, ...], visits: int, log: Callable[[str], None]) -> dict:
    cells = []
    for k in ks:
        for mode in ("forward", "call"):
            c = bench_chain(mode, k, visits)
            cells.append(c)
            if c["error"]:
                log(f"  K={k:<4} {mode:<8} {c['error']}: {c['detail'][:120]}")
            else:
                log(f"  K={k:<4} {mode:<8} {c['visits']:>9,} visits in {c['wall_s']:6.2f} s = "
                    f"{c['us_per_visit']:7.2f} µs/visit")
            del c
            gc.collect()
    ratios = {}
    lo, hi = min(ks), max(ks)
    for mode in ("forward", "call"):
        by_k = {c["k"]: c for c in cells if c["mode"] == mode}
        a, b = by_k[lo].get("us_per_visit", math.nan), by_k[hi].get("us_per_visit", math.nan)
        r = b / a if a == a and b == b and lo != hi else math.nan
        ratios[mode] = {"ratio": r, "pass": bool(r <= SCALING_TARGET)}
    return {"visits_target": visits, "ks": list(ks), "rate": CHAIN_RATE, "station_mean_s": STATION_MEAN,
            "call_workers": CALL_WORKERS, "cells": cells, "k_min": lo, "k_max": hi,
            "ratio_target": SCALING_TARGET, "ratios": ratios}


def table_scaling(s: dict) -> str:
    out = [f"== 2. K-scaling: µs of wall time per station visit, ~{s['visits_target']:,} visits per "
           f"cell, 1 ms exponential stations at {s['rate']:g}/s =="]
    out.append(f"{'K':>5}  {'forward tandem':>14} {'wall s':>7} {'CPU s':>7} {'visits':>9}   "
               f"{'call chain':>14} {'wall s':>7} {'CPU s':>7} {'visits':>9}")
    by = {(c["mode"], c["k"]): c for c in s["cells"]}

    def cell(c: dict) -> str:
        if c["error"]:
            return f"{c['error']:>14} {'':>7} {'':>7} {'':>9}"
        return f"{c['us_per_visit']:>14.2f} {c['wall_s']:>7.2f} {c['cpu_s']:>7.2f} {c['visits']:>9,}"

    for k in s["ks"]:
        out.append(f"{k:>5}  {cell(by['forward', k])}   {cell(by['call', k])}".rstrip())
    r = s["ratios"]

    def ratio(m: str) -> str:
        x = r[m]["ratio"]
        text = "n/a" if x != x else f"{x:.2f}x"
        return f"{text:>8} <={s['ratio_target']:g}x {_verdict(r[m]['pass'])}"

    out.append(f"K={s['k_max']}/K={s['k_min']}: forward {ratio('forward')}   call {ratio('call')}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- 3. events


def events_scheduled(sim: Simulation) -> int:
    """SimPy events the simulation's environment has scheduled so far.

    The simulation's own count when it has one (``Simulation.events_scheduled()``); otherwise
    the environment's event id counter (``env._eid``, an ``itertools.count`` that numbers every
    event scheduled): its next number equals the count. Reading it takes that number, so a
    second read gives one more.
    """
    own = getattr(sim, "events_scheduled", None)
    if callable(own):
        return int(own())
    return next(sim.env._eid)


def bench_events(requests: int, log: Callable[[str], None]) -> dict:
    arch = simarch.load(SPEC)
    rate = float(arch.spec.workload.rate)
    duration = requests / rate

    def run() -> tuple[Simulation, simarch.Result]:
        sim = Simulation(arch, load=1.0, duration=duration, warmup=0.0, seed=SEED)
        return sim, sim.run()

    t0 = time.perf_counter()
    peak, (sim, res) = _peak(run)
    dt = time.perf_counter() - t0
    events = events_scheduled(sim)
    n = len(res.latency)
    out = {"spec": SPEC.name, "load": 1.0, "duration_s": duration, "warmup_s": 0.0,
           "requests": n, "arrivals": int(sum(res.arrivals)), "events": events,
           "events_per_request": events / n, "events_target": EVENTS_TARGET,
           "events_pass": events / n <= EVENTS_TARGET, "peak_bytes": peak,
           "bytes_per_request": peak / n, "traced_wall_s": dt}
    log(f"  {SPEC.name} {n:,} requests, {events:,} events, peak {peak / 2**20:.1f} MiB "
        f"({dt:.1f} s traced)")
    return out


def table_events(e: dict) -> str:
    return "\n".join([
        f"== 3. {e['spec']} at 1x: {e['requests']:,} requests in {e['duration_s']:,.0f} s, no warm-up ==",
        f"events/request {e['events_per_request']:>8.2f}  <={e['events_target']:g} "
        f"{_verdict(e['events_pass'])}   ({e['events']:,} SimPy events scheduled)",
        f"bytes/request  {e['bytes_per_request']:>8.1f}  (no target)   "
        f"(peak traced {e['peak_bytes'] / 2**20:.1f} MiB)",
    ])


# ----------------------------------------------------------------------------- 5. hop records


def _hop_cases() -> list[tuple[str, simarch.Architecture, float]]:
    arch = simarch.load(SPEC)
    return [(m.name, m.architecture(), m.rate) for m in MODELS] + [
        (SPEC.stem, arch, float(arch.spec.workload.rate))]


def bench_hops(requests: int, repeat: int, log: Callable[[str], None]) -> dict:
    """The cost of hop records: each case simulated with them off and on, interleaved, best
    CPU time (``time.process_time``) of ``repeat`` runs each, and the bytes the records take
    per recorded visit (rows and per-request ids over the visit rows)."""
    rows = []
    for name, arch, rate in _hop_cases():
        horizon = requests / rate
        best = {False: math.inf, True: math.inf}
        kept = None
        for _ in range(repeat):
            for hops in (False, True):
                gc.collect()
                t0 = time.process_time()
                res = simarch.simulate(arch, duration=horizon, warmup=0, seed=SEED, hops=hops, progress=False)
                best[hops] = min(best[hops], time.process_time() - t0)
                if hops:
                    kept = res
        h = kept.hops
        visits = int((h.kind() == 0).sum())
        ratio = best[True] / best[False]
        rows.append({"case": name, "requests": len(kept.start), "hop_rows": h.n_rows, "visits": visits,
                     "off_cpu_s": best[False], "on_cpu_s": best[True], "ratio": ratio,
                     "pass": ratio <= HOPS_TARGET, "bytes": h.nbytes,
                     "bytes_per_visit": h.nbytes / max(1, visits)})
        log(f"  {name}: off {best[False]:.2f} s, on {best[True]:.2f} s CPU ({ratio:.3f}x), "
            f"{h.n_rows:,} rows")
    return {"requests": requests, "repeat": repeat, "target": HOPS_TARGET, "rows": rows}


def table_hops(d: dict) -> str:
    lines = [f"== 5. hop records: {d['requests']:,} expected requests per case, best CPU time of "
             f"{d['repeat']} runs each, off and on ==",
             f"{'case':<16}{'requests':>10}{'hop rows':>10}{'off s':>8}{'on s':>8}{'on/off':>8}"
             f"{'':>10}{'bytes/visit':>12}"]
    for r in d["rows"]:
        lines.append(f"{r['case']:<16}{r['requests']:>10,}{r['hop_rows']:>10,}{r['off_cpu_s']:>8.2f}"
                     f"{r['on_cpu_s']:>8.2f}{r['ratio']:>8.3f}  <={d['target']:.2f} {_verdict(r['pass'])}"
                     f"{r['bytes_per_visit']:>8.1f}")
    lines.append("(a row is 64 bytes; a request adds 16 for its root id and key; rows of the "
                 "caller's own -- timed calls, attempts -- count against the visits)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- 4. big runs

BIG_CHILD = """
import json, os, resource, sys, time

def rss():  # resident set size now, in bytes
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return maxrss()

def maxrss():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024

def peak_rss():  # this process's own high-water mark, in bytes
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return maxrss()

path, load, duration, seed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
import simarch
import pandas  # noqa: F401  (the result's tables need it; a run alone does not)
arch = simarch.load(path)
simarch.simulate(arch, load=load, duration=0.5, warmup=0, seed=seed, hops=False)  # every module a run needs
base = rss()
c0, w0 = time.process_time(), time.perf_counter()
res = simarch.simulate(arch, load=load, duration=duration, warmup=0, seed=seed, hops=False)
cpu, wall = time.process_time() - c0, time.perf_counter() - w0
peak, ru_peak = peak_rss(), maxrss()
ru = resource.getrusage(resource.RUSAGE_SELF)
n = len(res.latency)
util = res.components()["utilization"].dropna()
print(json.dumps({
    "requests": n, "arrivals": int(sum(res.arrivals)), "cpu_s": cpu, "wall_s": wall,
    "child_cpu_s": ru.ru_utime + ru.ru_stime, "rss_after_import": base, "peak_rss": peak,
    "ru_maxrss": ru_peak,
    "ok_share": float((res.status == 0).mean()) if n else float("nan"), "stable": bool(res.stable),
    "utilization": {k: float(v) for k, v in util.items()},
    "warnings": res.all_warnings(),
}))
"""


def bench_big(requests: int, log: Callable[[str], None]) -> dict:
    rate = float(simarch.load(SPEC).spec.workload.rate)
    cases = []
    for load in BIG_LOADS:
        duration = requests / (rate * load)
        case: dict = {"load": load, "duration_s": duration, "error": None}
        cmd = [sys.executable, "-c", BIG_CHILD, str(SPEC), repr(load), repr(duration), str(SEED)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            case["error"] = f"exit {done.returncode}: {tail}"
            log(f"  {load:g}x {case['error']}")
        else:
            case.update(json.loads(done.stdout.strip().splitlines()[-1]))
            extra = case["peak_rss"] - case["rss_after_import"]
            case.update(rss_bytes_per_request=extra / case["requests"],
                        cpu_pass=case["cpu_s"] <= CPU_TARGET,
                        rss_pass=extra / case["requests"] <= RSS_TARGET)
            log(f"  {load:g}x {case['requests']:,} requests, {case['cpu_s']:.1f} CPU s, "
                f"peak RSS {case['peak_rss'] / 2**20:.0f} MiB")
        cases.append(case)
    return {"spec": SPEC.name, "requests_target": requests, "rate": rate, "warmup_s": 0.0,
            "cpu_target_s": CPU_TARGET, "rss_target_bytes": RSS_TARGET, "cases": cases}


def table_big(b: dict) -> str:
    out = [f"== 4. {b['spec']}: {b['requests_target']:,} requests per case ({b['rate']:g}/s x load), "
           "no warm-up, a child process per case =="]
    out.append(f"{'load':>4} {'requests':>10} {'window s':>8} {'CPU s':>7} {'target':<9} "
               f"{'peak RSS':>9} {'at import':>9} {'B/req':>7} {'target':<8} {'ok':>7} {'stable':>6}")
    notes = []
    for c in b["cases"]:
        if c["error"]:
            out.append(f"{c['load']:>3g}x {c['error']}")
            continue
        out.append(
            f"{c['load']:>3g}x {c['requests']:>10,} {c['duration_s']:>8,.0f} {c['cpu_s']:>7.1f} "
            f"<={b['cpu_target_s']:g} {_verdict(c['cpu_pass'])} "
            f"{c['peak_rss'] / 2**20:>5.0f} MiB {c['rss_after_import'] / 2**20:>5.0f} MiB "
            f"{c['rss_bytes_per_request']:>7.1f} <={b['rss_target_bytes']:g} {_verdict(c['rss_pass'])} "
            f"{c['ok_share']:>7.2%} {'yes' if c['stable'] else 'NO':>6}")
        util = ", ".join(f"{k} {v:.0%}" for k, v in c["utilization"].items())
        notes.append(f"  {c['load']:g}x: utilization {util}; wall {c['wall_s']:.1f} s, "
                     f"child CPU with import {c['child_cpu_s']:.1f} s")
        notes.extend(f"  {c['load']:g}x warning: {w}" for w in c["warnings"])
    return "\n".join(out + notes)


# ----------------------------------------------------------------------------- main


def _git_commit() -> str:
    """The commit of the simarch being measured (the tree it is imported from)."""
    where = Path(simarch.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + (" (with local changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of K >= 2, got {text!r}") from None
    if not ks or ks[0] < 2:
        raise argparse.ArgumentTypeError(f"a comma-separated list of K >= 2, got {text!r}")
    return ks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small profile (make bench)")
    ap.add_argument("--requests", type=int, help="section 1: expected requests per model and run "
                    f"(default {FULL.requests}, quick {QUICK.requests})")
    ap.add_argument("--repeat", type=int, help="section 1: timed runs per side, the fastest kept "
                    f"(default {FULL.repeat}, quick {QUICK.repeat})")
    ap.add_argument("--visits", type=int, help="section 2: station visits per cell "
                    f"(default {FULL.visits}, quick {QUICK.visits})")
    ap.add_argument("--ks", type=_ks, help="section 2: comma-separated K values "
                    f"(default {','.join(map(str, FULL.ks))}, quick {','.join(map(str, QUICK.ks))})")
    ap.add_argument("--spec-requests", type=int, help="section 3: expected requests "
                    f"(default {FULL.spec_requests}, quick {QUICK.spec_requests})")
    ap.add_argument("--big", type=int, help="section 4: requests per case "
                    f"(default {FULL.big}, quick {QUICK.big})")
    ap.add_argument("--only", action="append", choices=SECTIONS,
                    help="run only this section (repeatable): " + ", ".join(SECTIONS))
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    given = {f: getattr(args, f) for f in asdict(base) if getattr(args, f) is not None}
    p = replace(base, **given)
    if min(p.requests, p.spec_requests, p.big) < 1000 or p.repeat < 1 or p.visits < 1000:
        ap.error("request counts and --visits must be >= 1000 and --repeat >= 1")
    sections = args.only or list(SECTIONS)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    head = {"commit": _git_commit(), "simarch": simarch.__version__, "simpy": simpy.__version__,
            "python": sys.version.split()[0], "profile": "quick" if args.quick else "full",
            "settings": asdict(p), "sections": sections, "loadavg_start": _loadavg()}
    log(f"simarch {head['simarch']} at {head['commit']}, simpy {head['simpy']}, python "
        f"{head['python']}; {head['profile']} profile; load average {head['loadavg_start']}")
    warm_up()
    doc: dict = dict(head)
    texts = []
    if "simpy" in sections:
        log("1. simarch against hand-written SimPy")
        rows = [bench_model(m, p.requests, p.repeat, log) for m in MODELS]
        procs = [bench_process(m, p.requests, p.repeat, log) for m in MODELS]
        doc["vs_simpy"] = {"requests": p.requests, "repeat": p.repeat, "in_process": rows,
                           "whole_process": procs}
        texts.append(table_simpy(rows, procs, p))
    if "scaling" in sections:
        log("2. K-scaling")
        doc["k_scaling"] = bench_scaling(p.ks, p.visits, log)
        texts.append(table_scaling(doc["k_scaling"]))
    if "events" in sections:
        log("3. events and bytes per request")
        doc["events"] = bench_events(p.spec_requests, log)
        texts.append(table_events(doc["events"]))
    if "big" in sections:
        log("4. big runs")
        doc["big"] = bench_big(p.big, log)
        texts.append(table_big(doc["big"]))
    if "hops" in sections:
        log("5. hop records")
        doc["hops"] = bench_hops(p.spec_requests, p.repeat, log)
        texts.append(table_hops(doc["hops"]))
    doc["loadavg_end"] = _loadavg()
    doc["wall_s"] = time.perf_counter() - t_start
    t = os.times()
    doc["cpu_s"] = t.user + t.system + t.children_user + t.children_system
    if args.json:
        print(json.dumps(doc, indent=2, default=float))
    else:
        print(f"simarch {head['simarch']} at commit {head['commit']}; simpy {head['simpy']}, python "
              f"{head['python']}; {head['profile']} profile; load average at start "
              f"{head['loadavg_start']}")
        print()
        print("\n\n".join(texts))
        print()
        print(f"load average at end {doc['loadavg_end']}; benchmark wall time {doc['wall_s']:.0f} s, "
              f"CPU time {doc['cpu_s']:.0f} s (this process and its children; well under the wall "
              "time means the machine was busy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
