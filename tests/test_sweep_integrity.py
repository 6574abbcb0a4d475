"""Sweep folders never mix or lose results: rows of another sweep are refused, two sweeps
cannot write one folder at once, a part cut short is run again, the folder reads as a plain
Parquet dataset, and a sweep killed at random points and resumed gives, row for row, the
dataset of an uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import warnings

import pandas as pd
import pytest
from cli_helpers import ENV, ROOT, SIMARCH
from filelock import FileLock

import simarch
from simarch import SpecError

SINGLE = ROOT / "architectures" / "single_server.yaml"
PARAMS = {"app.workers": [8, 16]}
KW = {"duration": "2s", "warmup": "1s", "executor": "serial", "progress": False}
METRICS = ["point_id", "load", "replication", "p50_ms", "p99_ms", "throughput_rps", "availability"]


def test_rows_of_another_design_are_refused(tmp_path):
    simarch.sweep(SINGLE, PARAMS, tmp_path, **KW)
    (tmp_path / "_simarch.json").unlink()  # as an interrupted sweep leaves the folder
    with pytest.raises(SpecError, match="rows of another sweep"):
        simarch.sweep(ROOT / "architectures" / "spof_single.yaml", {"api.workers": [4]}, tmp_path, **KW)
    with pytest.raises(SpecError, match="rows of another sweep"):  # same design, other points
        simarch.sweep(SINGLE, {"app.workers": [4]}, tmp_path, **KW)


def test_one_sweep_at_a_time_per_folder(tmp_path):
    with FileLock(str(tmp_path / ".simarch.lock")), pytest.raises(SpecError, match="another sweep"):
        simarch.sweep(SINGLE, PARAMS, tmp_path, **KW)


def test_a_part_cut_short_is_run_again(tmp_path):
    first = simarch.sweep(SINGLE, PARAMS, tmp_path, **KW)
    part = sorted(tmp_path.glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:40])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        again = simarch.sweep(SINGLE, PARAMS, tmp_path, **KW)
    assert any(part.name in str(x.message) for x in w)
    pd.testing.assert_frame_equal(first.sort_values("point_id")[METRICS].reset_index(drop=True),
                                  again.sort_values("point_id")[METRICS].reset_index(drop=True))


def test_the_folder_is_a_parquet_dataset(tmp_path):
    df = simarch.sweep(SINGLE, PARAMS, tmp_path, **KW)
    plain = pd.read_parquet(tmp_path)
    assert len(plain) == len(df) == 2
    assert set(plain["point_id"]) == set(df["point_id"])
    assert len(simarch.read_dataset(tmp_path)) == 2


@pytest.mark.slow
def test_killed_and_resumed_sweeps_match_an_uninterrupted_one(tmp_path):
    """Kill the sweep (SIGKILL) at random points, three times, then let it finish: every
    point is there exactly once, and each row equals the uninterrupted sweep's."""
    args = ["sweep", str(SINGLE), "--set", "app.workers=4,8,16,32", "--loads", "1x,2x",
            "--duration", "2s", "--warmup", "1s", "--serial"]
    clean = tmp_path / "clean"
    subprocess.run([*SIMARCH, *args, "--out", str(clean)], check=True, capture_output=True, env=ENV,
                   timeout=300)
    broken = tmp_path / "broken"
    rng = random.Random(7)
    for _ in range(3):
        p = subprocess.Popen([*SIMARCH, *args, "--out", str(broken)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
        time.sleep(rng.uniform(0.8, 2.5))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    subprocess.run([*SIMARCH, *args, "--out", str(broken)], check=True, capture_output=True, env=ENV,
                   timeout=300)
    a = simarch.read_dataset(clean).sort_values("point_id")[METRICS].reset_index(drop=True)
    b = simarch.read_dataset(broken).sort_values("point_id")[METRICS].reset_index(drop=True)
    assert len(a) == 8 and b["point_id"].is_unique
    pd.testing.assert_frame_equal(a, b)
    assert len(pd.read_parquet(broken)) == 8
