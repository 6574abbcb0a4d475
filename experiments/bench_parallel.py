"""Parallel-study benchmark: the speedup, efficiency and per-task overhead of each executor.

Everything goes through ``simarch.study.experiment.run_tasks``, the function ``compare`` and
``sweep`` run their simulations with, and is measured against the serial executor measured in
the same run:

* **replications** -- 8 replications of ``architectures/cached_sharded.yaml`` at 1x load,
  ``--duration`` 240 s after a ``--warmup`` of 30 s (about 3.5 s of work each). speedup =
  serial wall time / the executor's wall time; efficiency = speedup / workers. Target:
  efficiency >= 0.85 on 2 workers. Each executor's rows are checked to be the serial rows,
  bit for bit (``same rows``).
* **per-task overhead** -- two runs of tiny tasks (0.01 s simulated, some 15 ms of work each),
  ``--tiny`` of them and 6 x ``--tiny``: overhead per task = (the difference of the two wall
  times x workers - the same difference serially) / the difference in tasks, i.e. the worker
  time a task costs beyond its run. Start-up (starting a pool, a cluster, a client) is the
  same in both runs and cancels out; ``start-up s`` is what is left of the smaller run's wall
  time once its tasks are accounted for. Wall time counts CPUs the workers did not get, so the
  second table also gives the overhead in CPU time (of every process of this benchmark: the
  workers, and this process as it sends and collects), which other work on the machine does
  not inflate, and repeats both with one task per batch, the way the executors sent tasks
  before they were batched. The serial runs of tiny tasks are repeated before each executor's;
  still, figures within a millisecond or two of 0 (or below it) are noise.
* **own sessions** -- whether every worker ran in a session of its own (its session id is
  neither this script's nor another worker's). Linux's scheduler groups processes by session
  (autogroup: /proc/sys/kernel/sched_autogroup_enabled) and shares the CPU between the groups:
  workers left in the caller's session share one slice of the CPU with it whenever another
  session is busy, so two of them run no faster than one.
* **our CPUs, other CPUs** -- how many CPUs, on average over the run, this benchmark's
  processes (this one, its children, the Dask scheduler and workers it started) and all other
  processes kept busy (CPU time from /proc / wall time). On 2 workers ours should be near 2;
  other work on the machine shows as other CPUs above 0 and makes the parallel figures worse
  than the executors are: on a machine of 2 CPUs, 0.5 other CPUs already costs a quarter.

Executors: ``serial``; ``processes`` on 2 workers (with 1 worker it runs the tasks in this
process: that is the serial row); ``local``, a Dask LocalCluster that each call starts (its
start-up is in the wall time), on 1 and 2 workers; and ``tcp``: a Dask scheduler and workers
started here on 127.0.0.1, each in a session of its own, as ``setsid dask scheduler --host
127.0.0.1 --port P`` and ``setsid dask worker tcp://127.0.0.1:P --nthreads 1`` would, with one
worker and then two. Dask's nanny starts those workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
which slows the building of each run by about a third; ``--no-trim`` starts them without it,
as the LocalCluster simarch starts is.

The 1-minute load average is printed at the start and the end and before each measurement
(column ``load``). Other work on the machine makes the parallel figures worse than they are:
measure on an otherwise idle machine (``uptime``), or repeat and keep the fastest
(``--repeat``: each measurement is made that many times, the fastest kept, serial included).

Run it from the project root::

    .venv/bin/python experiments/bench_parallel.py
    .venv/bin/python experiments/bench_parallel.py --repeat 3
    .venv/bin/python experiments/bench_parallel.py --no-dask --json

The exit status is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import simarch
from simarch.study import experiment
from simarch.study.experiment import Task, run_tasks

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "architectures" / "cached_sharded.yaml"
TARGET = 0.85  # efficiency on 2 workers, at least
REPLICATIONS = 8
SEED = 1


def replications(n: int, duration: float, warmup: float) -> list[Task]:
    arch = simarch.load(SPEC)
    data, base = arch.to_dict(), str(arch.base_dir)
    return [Task(data, base, 1.0, duration, warmup, SEED, r) for r in range(n)]


def tiny(n: int) -> list[Task]:
    arch = simarch.load(SPEC)
    data, base = arch.to_dict(), str(arch.base_dir)
    return [Task(data, base, 1.0, 0.01, 0.0, SEED, r) for r in range(n)]


def load1() -> float:
    return os.getloadavg()[0]


# ----------------------------------------------------------------------------- sessions


def _children() -> dict[int, tuple[int, str]]:
    """The session id and command line of each child of this process."""
    out = {}
    pids = []
    for task in os.listdir("/proc/self/task"):  # a child's parent is a thread of this process
        try:
            pids += Path(f"/proc/self/task/{task}/children").read_text().split()
        except OSError:
            continue
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):  # a process that has just ended
            continue
        out[int(pid)] = (int(fields[3]), cmd)
    return out


@contextmanager
def watch_sessions():
    """Collect the session of every child started while the block runs (the last one seen,
    since a worker leaves the parent's session as it starts)."""
    before = set(_children()) if sys.platform.startswith("linux") else set()
    seen: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid, (sid, cmd) in _children().items():
                if pid not in before and "resource_tracker" not in cmd:  # multiprocessing's own
                    seen[pid] = sid
            stop.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    if sys.platform.startswith("linux"):
        t.start()
    try:
        yield seen
    finally:
        stop.set()
        if t.is_alive():
            t.join()


def own_sessions(sids: list[int]) -> str:
    if not sids:
        return "?"
    return "yes" if os.getsid(0) not in sids and len(set(sids)) == len(sids) else "no"


# ----------------------------------------------------------------------------- a Dask cluster


class Cluster:
    """A Dask scheduler and workers on 127.0.0.1, each started in a session of its own."""

    def __init__(self, logdir: Path, trim: bool = True) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        if not trim:  # the nannies leave MALLOC_TRIM_THRESHOLD_ out, as simarch's LocalCluster does
            (logdir / "no-trim.yaml").write_text(
                "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n")
            self.env["DASK_CONFIG"] = str(logdir)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--no-dashboard", "--idle-timeout", "300s"])

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.logdir / f"{name}-{len(self.procs)}.log", "w")  # noqa: SIM115 - kept open
        dask = Path(sys.executable).with_name("dask")
        cmd = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
        # start_new_session: setsid() in the child before it runs the command, as setsid(1) does
        self.procs.append(subprocess.Popen([*cmd, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True))

    def add_worker(self) -> None:
        self._start("worker", ["worker", self.address, "--nthreads", "1", "--nworkers", "1",
                               "--no-dashboard", "--memory-limit", "0", "--death-timeout", "60s",
                               "--local-directory", str(self.logdir)])

    def wait(self, n_workers: int) -> tuple[list[int], set[str]]:
        """Wait for ``n_workers``; their processes' session ids, and their MALLOC_TRIM_THRESHOLD_s."""
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=120)
            trim = client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_", "unset")  # (read in the worker)
            return sorted(client.run(os.getsid, 0).values()), set(trim.values())

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ----------------------------------------------------------------------------- measuring


@dataclass
class Row:
    executor: str
    workers: int
    wall_s: float = float("nan")
    speedup: float = float("nan")
    efficiency: float = float("nan")
    batched: Overhead | None = None
    unbatched: Overhead | None = None  # one task per batch
    same_rows: bool | None = None
    own_sessions: str = "-"
    our_cpus: float = float("nan")
    other_cpus: float = float("nan")
    load: float = float("nan")
    sessions: list[int] = field(default_factory=list)


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy() -> int:
    """CPU time (ticks) the machine has spent busy, every process and CPU together."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def ours(sessions: set[int]) -> tuple[int, dict[int, int]]:
    """CPU time (ticks) of this process with its ended children, and of each process that is a
    child of this one or in one of ``sessions`` (a cluster started here)."""
    own, live = 0, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # a process that has just ended
            continue
        if int(pid) == os.getpid():
            own = int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])  # utime stime cutime cstime
        elif int(v[1]) == os.getpid() or int(v[3]) in sessions:
            live[int(pid)] = int(v[11]) + int(v[12])
    return own, live


class Meter:
    """Wall time, and the CPUs this benchmark's processes and all others kept busy meanwhile
    (CPU seconds / wall seconds). A child that ends in between is counted through this
    process's children's time; one that started before and ends in between is not (none does)."""

    def __init__(self, sessions: set[int]) -> None:
        self.sessions = sessions
        self.t0, self.busy0, (self.own0, self.live0) = time.perf_counter(), machine_busy(), ours(sessions)

    def stop(self) -> tuple[float, float, float]:
        wall = time.perf_counter() - self.t0
        busy = machine_busy() - self.busy0
        own, live = ours(self.sessions)
        mine = own - self.own0 + sum(t - self.live0.get(pid, 0) for pid, t in live.items())
        return wall, mine / CLK_TCK / wall, max(0.0, (busy - mine) / CLK_TCK / wall)


CLUSTER_SESSIONS: set[int] = set()  # the sessions of the Dask scheduler and workers started here


@dataclass
class Run:
    wall: float  # s
    rows: list[dict]
    sessions: list[int]  # of the workers (children of this process) seen during the run
    our_cpus: float
    other_cpus: float

    @property
    def cpu(self) -> float:
        """CPU seconds this benchmark's processes used in the run."""
        return self.our_cpus * self.wall


def fastest(repeat: int, tasks: list[Task], executor: str, workers: int) -> Run:
    """The fastest of ``repeat`` runs of ``tasks``."""
    best: Run | None = None
    for _ in range(repeat):
        with watch_sessions() as seen:
            meter = Meter(CLUSTER_SESSIONS)
            rows = run_tasks(tasks, executor=executor, workers=workers, progress=False)
            wall, cpus, other = meter.stop()
        if best is None or wall < best.wall:
            best = Run(wall, rows, sorted(seen.values()), cpus, other)
    assert best is not None
    return best


@contextmanager
def one_task_per_batch():
    saved = experiment.CHUNKS_PER_WORKER
    experiment.CHUNKS_PER_WORKER = 10**9  # as many batches as tasks
    try:
        yield
    finally:
        experiment.CHUNKS_PER_WORKER = saved


@dataclass
class Overhead:
    wall_ms: float  # worker wall time a task costs beyond its run
    cpu_ms: float  # CPU time a task costs beyond its run (any process of this benchmark)
    startup_s: float
    other_cpus: float  # the most other processes kept busy in these runs


def overhead(repeat: int, small: list[Task], big: list[Task], executor: str, workers: int,
             serial: tuple[Run, Run]) -> Overhead:
    """Per-task overhead and start-up, from runs of ``small`` and of ``big`` tiny tasks."""
    a, b = fastest(repeat, small, executor, workers), fastest(repeat, big, executor, workers)
    sa, sb = serial
    dn = len(big) - len(small)
    per_task = ((b.wall - a.wall) * workers - (sb.wall - sa.wall)) / dn
    per_task_cpu = ((b.cpu - a.cpu) - (sb.cpu - sa.cpu)) / dn
    startup = a.wall - len(small) * (sa.wall / len(small) + per_task) / workers
    return Overhead(per_task * 1e3, per_task_cpu * 1e3, startup, max(a.other_cpus, b.other_cpus))


def measure(row: Row, args, reps: list[Task], small: list[Task], big: list[Task], serial: Run,
            serial_tiny: tuple[Run, Run], executor: str) -> Row:
    row.load = load1()
    run = fastest(args.repeat, reps, executor, row.workers)
    row.wall_s, row.our_cpus, row.other_cpus = run.wall, run.our_cpus, run.other_cpus
    row.speedup = serial.wall / row.wall_s
    row.efficiency = row.speedup / row.workers
    row.same_rows = [pickle.dumps(r) for r in run.rows] == [pickle.dumps(r) for r in serial.rows]
    # the serial reference again, just before: the machine's speed drifts by a few per cent
    serial_tiny = (fastest(args.repeat, small, "serial", 1), fastest(args.repeat, big, "serial", 1))
    row.batched = overhead(args.repeat, small, big, executor, row.workers, serial_tiny)
    with one_task_per_batch():
        row.unbatched = overhead(args.repeat, small, big, executor, row.workers, serial_tiny)
    row.sessions = row.sessions or run.sessions
    row.own_sessions = own_sessions(row.sessions)
    print(f"  {row.executor:<10} {row.workers} worker(s): {row.wall_s:.2f} s, efficiency "
          f"{row.efficiency:.2f}; CPUs busy: ours {row.our_cpus:.2f}, others' {row.other_cpus:.2f} "
          f"(load {row.load:.2f})", file=sys.stderr, flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=240.0, help="simulated seconds measured per replication")
    ap.add_argument("--warmup", type=float, default=30.0, help="simulated seconds of warm-up per replication")
    ap.add_argument("--tiny", type=int, default=40, help="tiny tasks in the smaller overhead run (x6 in the larger)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the fastest is kept")
    ap.add_argument("--no-dask", action="store_true", help="leave out the Dask executors")
    ap.add_argument("--no-trim", action="store_true",
                    help="start the tcp workers without Dask's MALLOC_TRIM_THRESHOLD_=65536, as simarch's LocalCluster")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON as well")
    args = ap.parse_args()

    start = os.getloadavg()
    print(f"load average at start: {start[0]:.2f} {start[1]:.2f} {start[2]:.2f}; "
          f"{os.cpu_count()} CPUs; sched_autogroup_enabled={_autogroup()}", flush=True)
    reps = replications(REPLICATIONS, args.duration, args.warmup)
    small, big = tiny(args.tiny), tiny(6 * args.tiny)

    serial = Row("serial", 1, load=load1())
    serial_run = fastest(args.repeat, reps, "serial", 1)
    serial_tiny = (fastest(args.repeat, small, "serial", 1), fastest(args.repeat, big, "serial", 1))
    serial.wall_s, serial.our_cpus, serial.other_cpus = serial_run.wall, serial_run.our_cpus, serial_run.other_cpus
    serial.speedup = serial.efficiency = 1.0
    serial.same_rows = True
    print(f"  serial: {serial.wall_s:.2f} s, {serial.wall_s / REPLICATIONS:.2f} s per replication; "
          f"tiny tasks {1e3 * serial_tiny[1].wall / len(big):.1f} ms each; CPUs busy: ours "
          f"{serial.our_cpus:.2f}, others' {serial.other_cpus:.2f}", file=sys.stderr, flush=True)
    table = [serial]
    common = (args, reps, small, big, serial_run, serial_tiny)
    table.append(measure(Row("processes", 2), *common, "processes"))
    if not args.no_dask:
        for n in (1, 2):
            table.append(measure(Row("local", n), *common, "local"))
        with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
            cluster = Cluster(Path(tmp), trim=not args.no_trim)
            CLUSTER_SESSIONS.update(p.pid for p in cluster.procs)  # each started a session
            try:
                for n in (1, 2):
                    cluster.add_worker()
                    CLUSTER_SESSIONS.update(p.pid for p in cluster.procs)
                    sids, trim = cluster.wait(n)
                    print(f"  tcp workers' MALLOC_TRIM_THRESHOLD_: {', '.join(sorted(trim))}", file=sys.stderr)
                    table.append(measure(Row("tcp", n, sessions=sids), *common, cluster.address))
            finally:
                cluster.close()
    end = os.getloadavg()

    print()
    print(f"{REPLICATIONS} replications of {SPEC.relative_to(ROOT)}, {args.duration:g} s after a "
          f"{args.warmup:g} s warm-up; fastest of {args.repeat}")
    head = (f"{'executor':<10} {'workers':>7} {'wall s':>7} {'speedup':>7} {'efficiency':>10} "
            f"{'per-task overhead ms':>20} {'start-up s':>10} {'same rows':>9} {'own sessions':>12} "
            f"{'our CPUs':>8} {'other CPUs':>10} {'load':>5}")
    print(head)
    print("-" * len(head))
    for r in table:
        o = r.batched
        print(f"{r.executor:<10} {r.workers:>7} {r.wall_s:>7.2f} {r.speedup:>7.2f} {r.efficiency:>10.2f} "
              f"{_num(o and o.wall_ms, 1):>20} {_num(o and o.startup_s, 2):>10} {_yes(r.same_rows):>9} "
              f"{r.own_sessions:>12} {r.our_cpus:>8.2f} {r.other_cpus:>10.2f} {r.load:>5.2f}")
    print()
    print(f"per-task overhead in ms of worker wall time and of CPU time, batched and one task per batch "
          f"({len(small)} and {len(big)} tiny tasks of {1e3 * serial_tiny[1].wall / len(big):.1f} ms)")
    head2 = (f"{'executor':<10} {'workers':>7} {'batched wall':>12} {'batched CPU':>11} "
             f"{'1/batch wall':>12} {'1/batch CPU':>11} {'start-up s':>10} {'other CPUs':>10}")
    print(head2)
    print("-" * len(head2))
    for r in table[1:]:
        b, u = r.batched, r.unbatched
        print(f"{r.executor:<10} {r.workers:>7} {b.wall_ms:>12.1f} {b.cpu_ms:>11.1f} {u.wall_ms:>12.1f} "
              f"{u.cpu_ms:>11.1f} {b.startup_s:>10.2f} {max(b.other_cpus, u.other_cpus):>10.2f}")
    print()
    print(f"load average at start: {start[0]:.2f} {start[1]:.2f} {start[2]:.2f}; "
          f"at end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")
    two = [r for r in table if r.workers == 2]
    for r in two:
        verdict = "meets" if r.efficiency >= TARGET else "misses"
        print(f"{r.executor} on 2 workers: efficiency {r.efficiency:.2f} {verdict} the target of {TARGET}")
    if args.json:
        print(json.dumps({"load_start": start, "load_end": end, "rows": [asdict(r) for r in table]}, indent=2))
    return 0


def _autogroup() -> str:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "n/a"


def _num(x: float | None, digits: int) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def _yes(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


if __name__ == "__main__":  # the Dask LocalCluster's workers import this file
    sys.exit(main())
