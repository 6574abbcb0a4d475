"""Replications and executors: many independent runs, in parallel, with identical results
whichever executor runs them.

A :class:`Task` is everything one run needs (the spec as a mapping, its folder, the load,
the durations and a ``SeedSequence``); :func:`run_tasks` runs a list of them serially, in
local processes, or on a Dask cluster, and returns one flat metrics row per task in the
order given. Replication ``r`` of an experiment seeded ``s`` uses
``SeedSequence(s, spawn_key=(r,))``: the same for every design and load, so designs that
share a workload see the same arrivals (common random numbers).
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SimarchError, SpecError, argument, excerpt
from ..model.architecture import Architecture
from ..model.stats import t_quantile
from ..model.units import parse_multiplier
from ..run.simulate import simulate

METRICS = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "throughput_rps",
           "availability")


# ---------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, lower and upper bounds of the t confidence interval, and the sample SD.

    NaN values are ignored; with fewer than two values the interval is NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half, sd


# ---------------------------------------------------------------------------- tasks


def parse_loads(loads: Any) -> list[float]:
    """A non-empty list of load multipliers, sorted; a :class:`SpecError` on ``loads`` else."""
    if isinstance(loads, (str, int, float)):
        loads = [loads]
    try:
        values = list(loads)
    except TypeError:
        raise SpecError(f"a list of load multipliers, got {excerpt(loads)}", ("loads",)) from None
    if not values:
        raise SpecError("give at least one load multiplier", ("loads",))
    with argument("loads"):
        return sorted(parse_multiplier(x) for x in values)


MAX_RUNS = 100_000  # simulations one study may ask for


def positive_int(value: Any, name: str, most: int = MAX_RUNS) -> int:
    """A whole number from 1 to ``most``, else a :class:`SpecError` on ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
        raise SpecError(f"a whole number from 1 to {most:,}, got {excerpt(value)}", (name,))
    return int(value)


def check_runs(n: int, what: str) -> None:
    """Refuse a study of more than MAX_RUNS simulations before building it."""
    if n > MAX_RUNS:
        raise SpecError(f"this {what} would be {n:,} simulations, more than the {MAX_RUNS:,} a study "
                        "may run: fewer parameter values, loads or replications", ("replications",))


def replication_seed(seed: int, replication: int) -> np.random.SeedSequence:
    """The seed of replication ``replication`` of an experiment seeded ``seed``."""
    return np.random.SeedSequence(int(seed), spawn_key=(int(replication),))


@dataclass(frozen=True)
class Task:
    """One simulation run, self-contained so it can be shipped to another process."""

    spec: dict[str, Any]
    base_dir: str | None
    load: float
    duration: float | None
    warmup: float | None
    seed: int
    replication: int
    tags: dict[str, Any] = field(default_factory=dict)  # copied into the result row


def run_task(task: Task) -> dict[str, Any]:
    """Run one task and return a flat row: its tags, load, replication and the metrics.

    A spec error or a failure inside the run is returned as the row's ``error`` so that a
    sweep can record it and go on.
    """

    row: dict[str, Any] = {**task.tags, "load": task.load, "replication": task.replication,
                           "seed": task.seed, "error": None}
    try:
        arch = Architecture.from_dict(task.spec, base_dir=Path(task.base_dir) if task.base_dir else None)
        r = simulate(arch, load=task.load, duration=task.duration, warmup=task.warmup,
                     seed=replication_seed(task.seed, task.replication), progress=False,
                     stop_on_miss=bool(task.tags.get("stop_on_miss")))
    except SimarchError as e:  # a user's mistake at this point: recorded, the study goes on
        row["error"] = str(e)
        return row
    s = r.summary().loc["all"]
    for m in METRICS:
        row[m] = float(s[m])
    row["requests"] = int(s["requests"])
    row["errors"] = int(s["rejected"] + s["timeout"] + s["failed"] + s["unanswered"])
    row["slo_met"] = r.slo_met
    row["warnings"] = " | ".join(r.all_warnings())
    util = r.components()["utilization"]
    for comp, u in util.items():
        row[f"util.{comp}"] = float(u)
    return row


# ---------------------------------------------------------------------------- executors


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    """A ``tqdm.auto`` bar (terminal or notebook) shown after 2 s, or nothing at all."""
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", delay=2.0, leave=False)


def run_tasks(tasks: Sequence[Task], *, executor: str | Any = "processes", workers: int | None = None,
              progress: bool = True, desc: str = "simulating",
              on_result: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``tasks`` and return their rows in the order given.

    ``executor``: ``"serial"``; ``"processes"`` (local processes, all cores by default);
    ``"local"`` (a Dask ``LocalCluster``); ``"tcp://host:port"`` (an existing Dask
    scheduler); or a ``distributed.Client``. ``on_result(index, row)`` is called as each run
    finishes (in completion order), e.g. to save it at once.
    """
    n = len(tasks)
    rows: list[dict[str, Any] | None] = [None] * n
    bar = _progress(n, desc, progress)

    def done(i: int, row: dict[str, Any]) -> None:
        rows[i] = row
        if on_result is not None:
            on_result(i, row)
        bar.update(1)

    if isinstance(executor, str) and executor not in ("serial", "processes", "local") and "://" not in executor:
        raise SpecError(f"unknown executor {excerpt(executor)}: 'serial', 'processes', 'local' (a Dask "
                        "cluster on this machine), a scheduler address such as 'tcp://host:8786', or a "
                        "distributed.Client", ("executor",))
    try:
        if executor == "serial" or n <= 1:
            for i, t in enumerate(tasks):
                done(i, run_task(t))
        elif executor == "processes":
            n_workers = min(workers or os.cpu_count() or 1, n)
            if n_workers <= 1:
                for i, t in enumerate(tasks):
                    done(i, run_task(t))
            else:
                _run_processes(tasks, n_workers, done)
        else:
            _run_dask(tasks, executor, workers, done)
    finally:
        bar.close()
    return [r for r in rows if r is not None]


def _worker_init() -> None:
    """In each worker process: die with the parent, and leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the parent dies
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
        if os.getppid() == 1:  # the parent died before the line above ran
            os._exit(1)


def _run_processes(tasks: Sequence[Task], n_workers: int, done: Callable[[int, dict[str, Any]], None]) -> None:
    """Run tasks in a pool of local processes. On Ctrl-C (or any error) pending tasks are
    cancelled and the workers stopped at once, not waited for."""
    pool = ProcessPoolExecutor(max_workers=n_workers, initializer=_worker_init)
    try:
        futures = {pool.submit(run_task, t): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())  # stop running tasks too
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    else:
        pool.shutdown(wait=True)


def _run_dask(tasks: Sequence[Task], executor: Any, workers: int | None,
              done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:  # pragma: no cover - depends on the install
        raise SimarchError("Dask is not installed: pip install 'simarch[dask]'") from None
    own_cluster = None
    if isinstance(executor, str):
        if executor == "local":
            try:
                own_cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
            except Exception as e:  # noqa: BLE001 - a cluster that cannot start is explained
                main = sys.modules.get("__main__")
                guard = ("; a script that starts a local Dask cluster needs its code under "
                         "'if __name__ == \"__main__\":' (worker processes import the script)"
                         if main is not None and getattr(main, "__spec__", None) is None else "")
                raise SimarchError(f"the local Dask cluster did not start ({excerpt(str(e), 120, quote=False)})"
                                   f"{guard}") from None
            client = Client(own_cluster)
        elif executor.startswith(("tcp://", "tls://", "ws://", "inproc://")):
            client = Client(executor)
        else:
            raise SimarchError(f"unknown executor {executor!r} (allowed: serial, processes, local, "
                               "tcp://host:port)")
    else:
        client = executor
    try:
        futures = client.map(run_task, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in dask_completed(futures):
            done(index[fut.key], fut.result())
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()


def rows_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))
