"""Parallel executors run tasks in batches, a few per worker, and still give the rows of the
serial executor, bit for bit and in the order given, with ``on_result`` called once per task
as each run ends."""

from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import pytest

import simarch
from simarch.study import experiment
from simarch.study.experiment import Task, batches, run_tasks

SPEC = simarch.load(Path(__file__).resolve().parents[1] / "architectures" / "cached_sharded.yaml")


def _tasks(n: int = 10, duration: float = 2.0) -> list[Task]:
    """Small runs of one design at two loads (the later ones longer), tagged with their index."""
    data, base = SPEC.to_dict(), str(SPEC.base_dir)
    return [Task(data, base, 1.0 + (i >= n // 2), duration, 0.5, 7, i % 5, {"index": i}) for i in range(n)]


def _assert_same_rows(got: list[dict], want: list[dict]) -> None:
    assert [r["index"] for r in got] == list(range(len(want)))
    for g, w in zip(got, want, strict=True):
        assert pickle.dumps(g) == pickle.dumps(w), g["index"]  # bit for bit, NaN included


def test_batches_deal_every_index_once():
    for n in (1, 2, 7, 8, 9, 100):
        for workers in (1, 2, 3, 8):
            got = batches(n, workers)
            assert len(got) == min(n, experiment.CHUNKS_PER_WORKER * workers)
            assert sorted(i for b in got for i in b) == list(range(n))
            assert max(map(len, got)) - min(map(len, got)) <= 1
    assert batches(10, 1) == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]


def test_process_batches_give_the_serial_rows_in_order():
    tasks = _tasks()
    serial = run_tasks(tasks, executor="serial", progress=False)
    seen: list[int] = []
    rows = run_tasks(tasks, executor="processes", workers=2, progress=False,
                     on_result=lambda i, row: seen.append(i))
    _assert_same_rows(rows, serial)
    assert sorted(seen) == list(range(len(tasks)))  # once per task


def test_dask_batches_give_the_serial_rows_in_order():
    tasks = _tasks(6, duration=1.0)
    serial = run_tasks(tasks, executor="serial", progress=False)
    seen: list[int] = []
    rows = run_tasks(tasks, executor="local", workers=2, progress=False,
                     on_result=lambda i, row: seen.append(i))
    _assert_same_rows(rows, serial)
    assert sorted(seen) == list(range(len(tasks)))


@pytest.fixture(scope="module")
def dask_client():
    """A Dask cluster of the caller's own, with 2 workers, and a client of it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def test_a_client_given_stays_open_and_its_workers_in_their_sessions(dask_client):
    tasks = _tasks(4, duration=0.5)
    serial = run_tasks(tasks, executor="serial", progress=False)
    seen: list[int] = []
    rows = run_tasks(tasks, executor=dask_client, progress=False, on_result=lambda i, row: seen.append(i))
    _assert_same_rows(rows, serial)
    assert sorted(seen) == list(range(len(tasks)))
    assert dask_client.status == "running"
    # the workers' sessions are theirs to choose: left as they were
    assert set(dask_client.run(os.getsid, 0).values()) == {os.getsid(0)}


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_a_row_is_reported_when_its_run_ends_not_with_its_batch(monkeypatch, request, executor):
    # one batch per worker: [0, 2] and [1, 3]; run 2 is long, so run 0 must be reported
    # (and saved, in a sweep) while run 2 is still going
    monkeypatch.setattr(experiment, "CHUNKS_PER_WORKER", 1)
    data, base = SPEC.to_dict(), str(SPEC.base_dir)
    tasks = [Task(data, base, 1.0, d, 0.0, 7, 0, {"index": i}) for i, d in enumerate([0.5, 0.5, 40.0, 0.5])]
    t0 = time.perf_counter()
    run_tasks(tasks[2:3], executor="serial", progress=False)
    long_run = time.perf_counter() - t0
    when: dict[int, float] = {}
    run_tasks(tasks, executor=request.getfixturevalue("dask_client") if executor == "dask" else executor,
              workers=2, progress=False, on_result=lambda i, row: when.setdefault(i, time.perf_counter()))
    assert when[2] - when[0] > 0.3 * long_run, (when, long_run)


def test_an_error_in_a_batch_is_raised():
    tasks = _tasks(4, duration=0.5)
    tasks[3] = Task(tasks[3].spec, 123, 1.0, 0.5, 0.0, 7, 0)  # Path(123): a TypeError, not a spec error
    with pytest.raises(TypeError):
        run_tasks(tasks, executor="processes", workers=2, progress=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sessions of their own on Linux only")
def test_pool_workers_run_in_sessions_of_their_own():
    # Linux shares the CPU between sessions: workers in the caller's session would share its slice
    def children() -> dict[int, int]:
        """The session of each child of this process."""
        out = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):  # a process that has just ended
                continue
            if int(fields[1]) == os.getpid():
                out[int(pid)] = int(fields[3])
        return out

    before = children()  # (e.g. multiprocessing's resource tracker, started by an earlier test)
    found: dict[int, int] = {}
    run_tasks(_tasks(4, duration=0.5), executor="processes", workers=2, progress=False,
              on_result=lambda i, row: found.update(children()))
    workers = {pid: sid for pid, sid in found.items() if pid not in before}
    assert len(workers) == 2 and os.getsid(0) not in workers.values(), workers
