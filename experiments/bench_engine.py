"""Engine benchmark: simarch against a minimal hand-written SimPy script.

Two queueing models are simulated for the same simulated horizon, once through
``simarch.simulate`` and once through the short SimPy script a person would write by hand
(``simpy.Resource``, a source process, one process per customer, ``random.Random`` draws,
response times appended to a list):

* ``M/M/4``  Poisson arrivals at 3.2/s, 4 workers, exponential service with mean 1 s (rho 0.8).
* ``tandem`` Poisson arrivals at 0.5/s through three single-worker stations in series with
  exponential service means 1.2 s, 1.5 s and 1.0 s (rho 0.60, 0.75, 0.50). In simarch the
  stations are chained with ``mode="forward"``: a request releases its worker, then moves on.

Measured, per model:

* **speed** -- recorded requests per wall-clock second, for each side, and the ratio
  simarch / SimPy. The simarch time is the whole ``simulate()`` call (building the runtime,
  running, building the :class:`~simarch.Result`). Each side runs ``--repeat`` times,
  interleaved with the other, and the fastest run of each is kept. Target: ratio >= 0.8.
* **memory** -- peak traced memory (``tracemalloc``) of one more, separate run, divided by the
  number of recorded requests (``len(result.latency)`` for simarch, the length of the
  response-time list for the script). Target for simarch: <= 200 bytes per request. The
  script's figure is printed for context only. Tracing is kept out of the timed runs.
* **sanity** -- both sides' mean response time, next to the exact value from queueing theory,
  so the two sides are seen to do the same work.

Run it from the project root::

    .venv/bin/python experiments/bench_engine.py            # or: make bench
    .venv/bin/python experiments/bench_engine.py --requests 100000 --repeat 1
    .venv/bin/python experiments/bench_engine.py --json

``--requests N`` sets the expected number of requests per model (the horizon is N / lambda
simulated seconds). The exit status is 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import simpy

import simarch

SPEED_TARGET = 0.8  # simarch req/s over SimPy req/s, at least
MEMORY_TARGET = 200.0  # simarch peak bytes per recorded request, at most
MEAN_TOLERANCE = 0.03  # relative difference allowed between the two sides' mean response time
SEED = 1


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
    return simarch.simulate(model.architecture(), duration=horizon, warmup=0, seed=seed)


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


# ----------------------------------------------------------------------------- benchmark


def bench_model(model: Model, requests: int, repeat: int, log: Callable[[str], None]) -> dict:
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


def warm_up() -> None:
    """Import everything both sides touch lazily, outside the measured runs."""
    for model in MODELS:
        run_simpy(model, model.horizon(2000), SEED)
        run_simarch(model, model.horizon(2000), SEED).summary()


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(rows: list[dict]) -> str:
    out = [
        f"{'model':<8} {'simpy req/s':>12} {'simarch req/s':>14} {'ratio':>7}  {'target':<7}"
        f"       {'bytes/req':>9}  {'target':<6}",
    ]
    for r in rows:
        rate = r["requests_per_s"]
        out.append(
            f"{r['model']:<8} {rate['simpy']:>12,.0f} {rate['simarch']:>14,.0f} {r['ratio']:>6.2f}x"
            f"  >={SPEED_TARGET:g}x {_verdict(r['ratio_pass'])}"
            f"  {r['bytes_per_request']['simarch']:>9.1f}  <={MEMORY_TARGET:g} {_verdict(r['bytes_pass'])}")
    out.append("")
    out.append("details (best wall time of the repeats; peak traced memory of a separate run):")
    for r in rows:
        n, w, pk, bpr = r["requests"], r["best_wall_s"], r["peak_bytes"], r["bytes_per_request"]
        out.append(
            f"  {r['model']:<8} horizon {r['horizon_s']:>9,.0f} s | simpy {n['simpy']:>9,} req "
            f"{w['simpy']:5.2f} s, peak {pk['simpy'] / 2**20:6.1f} MiB = {bpr['simpy']:5.1f} B/req"
            f" | simarch {n['simarch']:>9,} req {w['simarch']:5.2f} s, peak "
            f"{pk['simarch'] / 2**20:6.1f} MiB = {bpr['simarch']:5.1f} B/req")
    out.append("")
    out.append(f"sanity: mean response time (s), both sides within {MEAN_TOLERANCE:.0%} of each other:")
    for r in rows:
        m = r["mean_response_s"]
        out.append(
            f"  {r['model']:<8} simpy {m['simpy']:8.4f}  simarch {m['simarch']:8.4f}  "
            f"exact {m['exact']:8.4f}  diff {r['mean_rel_diff']:6.2%}  "
            f"{'OK' if r['mean_agree'] else 'DISAGREE'}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400_000,
                    help="expected requests per model and run (default 400000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs per side; the fastest is kept (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.requests < 1000 or args.repeat < 1:
        ap.error("--requests must be >= 1000 and --repeat >= 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"simarch {simarch.__version__}, simpy {simpy.__version__}, python "
        f"{sys.version.split()[0]}; {args.requests:,} requests per model, best of {args.repeat}")
    warm_up()
    rows = [bench_model(m, args.requests, args.repeat, log) for m in MODELS]
    if args.json:
        print(json.dumps({"requests": args.requests, "repeat": args.repeat, "models": rows},
                         indent=2))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
