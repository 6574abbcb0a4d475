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

import contextlib
import ctypes
import importlib
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SimarchError, SpecError, argument, excerpt
from ..model.architecture import Architecture
from ..model.stats import t_quantile
from ..model.units import parse_multiplier
from ..results.attribution import attribution_rows
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
    runner: Callable[[Task], dict[str, Any]] | None = None  # a module-level function that
    # runs the task instead of run_task's metrics row (a study of its own, e.g. stability)


def run_task(task: Task) -> dict[str, Any]:
    """Run one task and return a flat row: its tags, load, replication and the metrics.

    A spec error or a failure inside the run is returned as the row's ``error`` so that a
    sweep can record it and go on. A task with a ``runner`` is run by it instead.
    """
    if task.runner is not None:
        return task.runner(task)

    row: dict[str, Any] = {**task.tags, "load": task.load, "replication": task.replication,
                           "seed": task.seed, "error": None}
    try:
        arch = Architecture.from_dict(task.spec, base_dir=Path(task.base_dir) if task.base_dir else None)
        r = simulate(arch, load=task.load, duration=task.duration, warmup=task.warmup,
                     seed=replication_seed(task.seed, task.replication), progress=False,
                     stop_on_miss=bool(task.tags.get("stop_on_miss")), hops=bool(task.tags.get("attribution")))
    except SimarchError as e:  # a user's mistake at this point: recorded, the study goes on
        row["error"] = str(e)
        return row
    s = r.summary().loc["all"]
    for m in METRICS:
        row[m] = float(s[m])
    if "stale_reads" in s.index:  # a design whose copies can lag (or with a stale_reads SLO)
        row["stale_reads"] = float(s["stale_reads"])
    row["requests"] = int(s["requests"])
    row["errors"] = int(s["rejected"] + s["timeout"] + s["failed"] + s["unanswered"])
    row["slo_met"] = r.slo_met
    row["stable"] = bool(r.stable)
    row["warnings"] = " | ".join(r.all_warnings())
    comps = r.components()
    for comp, u in comps["utilization"].items():
        row[f"util.{comp}"] = float(u)
    for comp, w in comps["mean_wait_ms"].items():
        row[f"wait_ms.{comp}"] = float(w)
    for comp, w in comps["wait_probability"].items():
        row[f"wait_p.{comp}"] = float(w)
    if r.cost is not None:  # a design with prices: its monthly cost at the simulated rates
        row["cost_usd_month"] = r.cost.monthly_usd
    if task.tags.get("attribution"):  # where the time goes, per band: att.BAND.COMPONENT.PHASE
        for a in attribution_rows(r, ATTRIBUTION_BANDS, per_class=False):
            row[f"att.{a['band']}.{a['component']}.{a['phase']}"] = a["share"]
            row[f"att_ms.{a['band']}"] = a["band_mean_ms"]
    return row


ATTRIBUTION_BANDS = ("median", "p99")


# ---------------------------------------------------------------------------- executors
#
# Parallel executors send the tasks in batches: a few per worker (CHUNKS_PER_WORKER), each
# holding every k-th task (k = the number of batches), so the batches of a study whose later
# runs are longer (higher loads) cost about the same and the last one to finish is not the
# long pole. A worker reports each row the moment its run ends, through a side channel (a
# pipe for the process pool, scheduler events for Dask), and the batch's result repeats every
# row, so a row whose message is late or lost is still reported once. Start-up (the
# interpreter, the imports) is paid once per worker; a batch pays one round trip and ships
# a spec shared by its tasks once.

CHUNKS_PER_WORKER = 4


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
    scheduler); or a ``distributed.Client``. ``workers`` is how many processes (or Dask
    workers) to run; for an existing cluster, how many to split the tasks for (default: the
    threads it has). Parallel executors send the tasks in batches, a few per worker, and
    ``on_result(index, row)`` is still called once per task as each run finishes (in
    completion order), e.g. to save it at once.
    """
    n = len(tasks)
    rows: list[dict[str, Any] | None] = [None] * n
    bar = _progress(n, desc, progress)

    def done(i: int, row: dict[str, Any]) -> None:
        if rows[i] is not None:  # a row both streamed and returned with its batch
            return
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


def batches(n: int, workers: int) -> list[list[int]]:
    """The indices 0..n-1 in ``min(n, CHUNKS_PER_WORKER * workers)`` batches, batch ``j``
    holding ``j, j + k, j + 2k...`` (``k`` the number of batches)."""
    k = max(1, min(n, CHUNKS_PER_WORKER * max(1, workers)))
    return [list(range(j, n, k)) for j in range(k)]


_emit: Callable[[int, dict[str, Any]], None] | None = None  # in a pool's worker: send one row


def _run_batch(batch: Sequence[tuple[int, Task]],
               emit: Callable[[int, dict[str, Any]], None] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Run a batch of ``(index, task)`` pairs in order; each row is sent with ``emit`` (or the
    worker's ``_emit``) as its run ends, and all of them are returned."""
    emit = emit or _emit
    out = []
    for i, t in batch:
        row = run_task(t)
        out.append((i, row))
        if emit is not None:
            emit(i, row)
    return out


def _collect(futures: Sequence[Any], inbox: queue.SimpleQueue,
             done: Callable[[int, dict[str, Any]], None]) -> None:
    """Report rows until every batch has ended. ``inbox`` gets ``(index, row)`` pairs as the
    workers send them and each batch's future as it ends (its done-callback); an ended batch
    reports what its worker's messages have not, or raises what the batch raised."""
    pending = set(futures)
    while pending:
        try:
            item = inbox.get(timeout=0.5)  # a timeout keeps Ctrl-C prompt
        except queue.Empty:
            continue
        if isinstance(item, tuple):
            done(*item)
        else:
            pending.discard(item)
            for i, row in item.result():
                done(i, row)


def _worker_init(send: Any = None, lock: Any = None) -> None:
    """In each worker process: die with the parent, leave Ctrl-C to the parent, run in a
    session of its own, import the simulation stack before the first task, and send rows
    down ``send`` (shared by the workers, hence ``lock``)."""
    global _emit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the parent dies
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
        else:
            _own_session()
        if os.getppid() == 1:  # the parent died before the line above ran
            os._exit(1)
    for module in _SIMULATION_STACK:
        importlib.import_module(module)
    if send is not None:
        def emit(i: int, row: dict[str, Any]) -> None:
            with lock:
                send.send((i, row))
        _emit = emit


# What a run imports. This module imports it too, so a forked worker has it already and a
# spawned one gets it as it loads the initializer; the list keeps that so if those imports
# ever become lazy: a worker's first batch never pays for them.
_SIMULATION_STACK = ("simarch.model.architecture", "simarch.kinds", "simarch.run.simulate",
                     "simarch.results.result")


def _own_session() -> int:
    """Start a session of this process's own and return its id.

    Linux's scheduler shares the CPU between sessions (autogroups) rather than between
    processes, so workers left in the caller's session would share its one slice of the CPU
    whenever another session is busy. A worker in a session of its own also no longer gets the
    terminal's Ctrl-C, which its parent handles; it still dies with its parent (above).
    """
    try:
        return os.setsid()
    except OSError:  # already a session (or process group) leader
        return os.getsid(0)


def _forward(receive: Any, inbox: queue.SimpleQueue, stop: threading.Event) -> None:
    """In the parent: pass the rows the pool's workers send on to ``inbox`` until ``stop``."""
    try:
        while not stop.is_set():
            if receive.poll(0.2):
                inbox.put(receive.recv())
    except (EOFError, OSError, pickle.UnpicklingError):  # the pool is gone
        pass


def _run_processes(tasks: Sequence[Task], n_workers: int, done: Callable[[int, dict[str, Any]], None]) -> None:
    """Run tasks in batches in a pool of local processes. On Ctrl-C (or any error) pending
    batches are cancelled and the workers stopped at once, not waited for."""
    ctx = multiprocessing.get_context()
    receive, send = ctx.Pipe(duplex=False)
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    reader = threading.Thread(target=_forward, args=(receive, inbox, stop), name="simarch-rows", daemon=True)
    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(send, ctx.Lock()))
    try:
        futures = []
        for batch in batches(len(tasks), n_workers):  # (at least n_workers: every worker starts)
            fut = pool.submit(_run_batch, [(i, tasks[i]) for i in batch])
            fut.add_done_callback(inbox.put)
            futures.append(fut)
        reader.start()  # after the workers have started: no thread is running when they fork
        _collect(futures, inbox, done)
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())  # stop running tasks too
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        stop.set()
        send.close()  # with the workers gone too, the reader sees the end of the pipe at once
        if reader.is_alive():
            reader.join(timeout=1.0)
        if not reader.is_alive():  # (else it is stuck on a message a killed worker cut short)
            receive.close()


def _run_dask(tasks: Sequence[Task], executor: Any, workers: int | None,
              done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the install
        raise SimarchError("Dask is not installed: pip install 'simarch[dask]'") from None
    own_cluster = own_client = None
    slots = workers or 0
    if isinstance(executor, str):
        if executor == "local":
            slots = workers or os.cpu_count() or 1
            try:  # (the preload is this module: its dask_setup runs in each worker as it starts)
                with dask.config.set(_LOCAL_CLUSTER_CONFIG):
                    own_cluster = LocalCluster(n_workers=slots, threads_per_worker=1, processes=True,
                                               dashboard_address=None, preload=[__name__])
            except Exception as e:  # noqa: BLE001 - a cluster that cannot start is explained
                main = sys.modules.get("__main__")
                guard = ("; a script that starts a local Dask cluster needs its code under "
                         "'if __name__ == \"__main__\":' (worker processes import the script)"
                         if main is not None and getattr(main, "__spec__", None) is None else "")
                raise SimarchError(f"the local Dask cluster did not start ({excerpt(str(e), 120, quote=False)})"
                                   f"{guard}") from None
            client = own_client = Client(own_cluster)
        elif executor.startswith(("tcp://", "tls://", "ws://", "inproc://")):
            client = own_client = Client(executor)
        else:
            raise SimarchError(f"unknown executor {executor!r} (allowed: serial, processes, local, "
                               "tcp://host:port)")
    else:
        client = executor
    # Rows travel as scheduler events on a topic named after the client: the scheduler keeps
    # the last events of a topic (distributed.admin.low-level-log-length, 1,000) and clears
    # those of a client's topic once the client has left, so they do not pile up. (Two studies
    # at once on one client share its topic: the later one's rows stream, the earlier one's
    # come with their batches.)
    topic, study = client.id, uuid.uuid4().hex
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def on_event(event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and msg.get("simarch-study") == study:
            inbox.put((msg["index"], pickle.loads(msg["row"])))

    subscribed, futures = False, []
    try:
        slots = slots or sum(client.nthreads().values())
        client.subscribe_topic(topic, on_event)
        subscribed = True
        futures = client.map(_run_dask_batch, [[(i, tasks[i]) for i in b] for b in batches(len(tasks), slots)],
                             topic=topic, study=study, pure=False)
        for fut in futures:
            fut.add_done_callback(inbox.put)
        _collect(futures, inbox, done)
    except BaseException:
        if futures and own_cluster is None:  # (a cluster of our own is closed below)
            with contextlib.suppress(Exception):  # the batches left stop on the cluster too
                client.cancel(futures)
        raise
    finally:
        if subscribed:
            client.unsubscribe_topic(topic)
        if own_client is not None:  # a client given is left open, and its cluster running
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


# Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory
# back to the system), which also turns off glibc's sliding mmap threshold: every large array
# is then mapped and unmapped afresh, and building a run's runtime (its key-to-shard tables,
# its samplers' buffers) takes about a third longer. A LocalCluster started here for one study
# leaves the variable out (one set in this process's environment still applies).
_LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, for the workers of a ``LocalCluster`` started by :func:`run_tasks`
    (``dask worker --preload simarch.study.experiment`` does the same for others): the
    simulation stack is imported as the worker starts (this module's imports), and the worker
    gets a session of its own, as a process pool's workers do."""
    _own_session()


def _run_dask_batch(batch: Sequence[tuple[int, Task]], topic: str, study: str) -> list[tuple[int, dict[str, Any]]]:
    """A batch on a Dask worker: each row is also sent to the client as an event as it ends."""
    from distributed import get_worker

    worker = get_worker()

    def emit(i: int, row: dict[str, Any]) -> None:
        worker.log_event(topic, {"simarch-study": study, "index": i, "row": pickle.dumps(row)})

    return _run_batch(batch, emit)


def rows_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))
