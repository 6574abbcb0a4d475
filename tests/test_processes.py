"""Processes of parallel studies: Ctrl-C stops a parallel comparison within seconds and says
what was saved, and a killed sweep's workers do not outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from cli_helpers import ENV, ROOT, SIMARCH

pytestmark = pytest.mark.slow
SPEC = ROOT / "architectures" / "cached_sharded.yaml"
LONG = ["--loads", "1x,2x,4x,8x", "--replications", "4", "--duration", "120s", "--warmup", "10s"]


def _default_sigint() -> None:
    """Let the child take Ctrl-C (a shell's background job inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split()[2] != "Z"


def _wait_for_workers(p: subprocess.Popen, n: int = 1, timeout: float = 30.0) -> list[int]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        kids = _children(p.pid)
        if len(kids) >= n:
            time.sleep(1.0)  # let them start work
            return kids
        time.sleep(0.2)
    raise AssertionError("the pool's workers never started")


def test_ctrl_c_stops_a_parallel_comparison_within_seconds():
    p = subprocess.Popen([*SIMARCH, "compare", str(SPEC), *LONG], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=_default_sigint)
    kids = _wait_for_workers(p)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert p.returncode == 130, err[-2000:]
    assert "interrupted: nothing was saved" in err and "Traceback" not in err
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    time.sleep(0.5)
    assert not any(_alive(k) for k in kids), "workers outlived the interrupt"


def test_sweep_workers_die_with_a_killed_parent(tmp_path):
    p = subprocess.Popen([*SIMARCH, "sweep", str(SPEC), "--set", "api.workers=8,16,32,64",
                          "--loads", "1x,2x", "--duration", "120s", "--out", str(tmp_path / "s")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    kids = _wait_for_workers(p)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids), "workers outlived their parent"


def test_ctrl_c_on_a_sweep_says_how_to_resume(tmp_path):
    out = tmp_path / "s"
    p = subprocess.Popen([*SIMARCH, "sweep", str(SPEC), "--set", "api.workers=8,16,32,64", "--duration",
                          "120s", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV, preexec_fn=_default_sigint)
    _wait_for_workers(p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and f"saved in {out}/" in err and "resume" in err
