"""Fuzzing harness over the CLI and the API: random mutations of valid specs, of option
values and of results folders. For every case the command exits 0 or 2 (3 for a missed SLO
with --fail-on-slo) and never 1, prints at most one error line and no traceback, and returns
within a bounded time; the API raises SimarchError or nothing.

``make test`` runs a small fixed budget (``FUZZ_EXAMPLES``, derandomised so it is the same
every run); ``make fuzz`` a larger one (``SIMARCH_FUZZ_EXAMPLES=2000``, random).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spec_properties import BAD_VALUES, DURATION_TYPOS, designs, mutated_designs

import simarch
from simarch import SimarchError, cli

BIG = "SIMARCH_FUZZ_EXAMPLES" in os.environ
FUZZ_EXAMPLES = int(os.environ.get("SIMARCH_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=not BIG,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
CASE_SECONDS = 20.0  # a bound against hangs, far above what a case takes
BUDGET = ["--max-events", "2e5"]  # keeps every simulated case small


def run_cli(*args: str) -> tuple[int, str, str, float]:
    """Run ``simarch ARGS`` in this process through the real entry point."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["simarch", *map(str, args)]
    t0 = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # noqa: BLE001 - a traceback is what we look for
        import traceback

        err.write("".join(traceback.format_exception(e)))
        code = 1
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def check(code: int, err: str, elapsed: float, allowed=(0, 2)) -> None:
    assert code in allowed, f"exit {code}\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) <= 1, err[-2000:]
    if code == 2:
        assert len(errors) == 1 and len(errors[0]) < 1000, err[-2000:]
    assert elapsed < CASE_SECONDS, f"took {elapsed:.1f} s"


def _write(tmp: Path, spec) -> Path:
    path = tmp / "spec.yaml"
    try:
        text = yaml.safe_dump(spec, sort_keys=False)
    except yaml.YAMLError:
        text = repr(spec)
    path.write_text(text)
    return path


@pytest.mark.slow  # (many CLI processes; make test and make fuzz run it)
@FUZZ
@given(spec=mutated_designs(), command=st.sampled_from(["validate", "run"]))
def test_cli_on_mutated_specs(tmp_path_factory, spec, command):
    path = _write(tmp_path_factory.mktemp("fz"), spec)
    args = [command, path] + (["--duration", "1s", "--warmup", "0s", *BUDGET] if command == "run" else [])
    code, _, err, elapsed = run_cli(*args)
    check(code, err, elapsed)


OPTION_VALUES = st.one_of(BAD_VALUES.map(str), DURATION_TYPOS, st.text(max_size=30),
                          st.sampled_from(["1x", "0.5x", "2s", "1e-320", "1e400", ",", "[1", "{a: 1",
                                           "crash:app,at=[1", "crash:app,at=1s", "slow:db,factor=3",
                                           "-1", "nan", "inf", "0", "99999999999999999999999"]))
OPTIONS = st.sampled_from(["--load", "--duration", "--warmup", "--seed", "--fault", "--max-events"])


@FUZZ
@given(option=OPTIONS, value=OPTION_VALUES)
def test_cli_options(option, value):
    args = ["run", ROOT / "architectures" / "single_server.yaml", "--duration", "1s", "--warmup", "0s",
            *BUDGET, option, value]
    code, _, err, elapsed = run_cli(*args)
    check(code, err, elapsed, allowed=(0, 2))


@FUZZ
@given(command=st.sampled_from(["spof", "compare", "sweep"]), value=OPTION_VALUES,
       option=st.sampled_from(["--window", "--loads", "--replications", "--set", "--scheduler"]))
def test_study_command_options(tmp_path_factory, command, option, value):
    spec = ROOT / "architectures" / "single_server.yaml"
    out = tmp_path_factory.mktemp("st") / "out"
    base = {"spof": ["spof", spec, "--static"],
            "compare": ["compare", spec, "--replications", "1", "--duration", "1s", "--warmup", "0s",
                        "--no-knee", "--serial", "--loads", "1"],
            "sweep": ["sweep", spec, "--set", "app.workers=2", "--duration", "1s", "--warmup", "0s",
                      "--serial", "--out", out]}[command]
    code, _, err, elapsed = run_cli(*base, option, value)
    check(code, err, elapsed)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs") / "run"
    simarch.simulate(ROOT / "architectures" / "single_server.yaml", duration="2s", warmup="1s").save(folder)
    return folder


TAMPER = st.sampled_from(["delete", "truncate", "garbage", "empty", "json-list", "json-type", "dir"])


@pytest.mark.slow  # (many CLI processes; make test and make fuzz run it)
@FUZZ
@given(name=st.sampled_from(["simarch.json", "result.json", "summary.parquet", "components.parquet",
                             "requests.parquet", "timeseries.parquet", "spec.yaml", "faults.parquet"]),
       how=TAMPER)
def test_report_on_tampered_results(run_folder, tmp_path_factory, name, how):
    folder = tmp_path_factory.mktemp("tamper") / "run"
    shutil.copytree(run_folder, folder)
    target = folder / name
    if how == "delete":
        target.unlink()
    elif how == "truncate":
        target.write_bytes(target.read_bytes()[: max(1, len(target.read_bytes()) // 3)])
    elif how == "garbage":
        target.write_bytes(b"\x00\xffnot what it should be" * 10)
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "json-list":
        target.write_text("[1, 2, 3]")
    elif how == "json-type":
        target.write_text('{"type": "run", "loads": "abc", "load": "x", "duration_s": "zz"}')
    else:
        target.unlink()
        target.mkdir()
    code, _, err, elapsed = run_cli("report", folder, "--html", folder.parent / "r.html")
    check(code, err, elapsed)


@FUZZ
@given(spec=designs(), changes=st.dictionaries(
    st.one_of(st.sampled_from(["workload.rate", "calls.0.timeout", "calls.x", "nope", "", "a..b",
                               "simulation.duration", "components"]), st.integers()),
    st.one_of(BAD_VALUES, st.just("1s")), max_size=3))
def test_api_raises_only_simarch_errors(spec, changes):
    try:
        arch = simarch.load(spec)
        arch = arch.with_changes(changes)
        simarch.capacity_report(arch)
        simarch.simulate(arch, duration="1s", warmup="0s", max_events=2e5)
    except SimarchError:
        pass
