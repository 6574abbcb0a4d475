"""Start-up: ``import simarch`` and the command line's help load none of the heavy libraries
(pandas, pyarrow, matplotlib, networkx, numpy) until a name that needs them is used, and every
public name still resolves. Each check runs in a fresh interpreter, since this process has
imported everything already. How fast a start is lives in the benchmarks, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

import simarch
from simarch import cli

HEAVY = {"pandas", "pyarrow", "matplotlib", "networkx", "numpy"}
MARK = "modules loaded: "
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")


def _fresh(code: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``code`` in a new interpreter; return the process and the top-level packages it
    had imported by the end (even if the code exits)."""
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print({MARK!r} + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        + code
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, env=ENV)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(MARK)]
    assert lines, f"the probe printed no module list:\n{proc.stderr}"
    return proc, {m.partition(".")[0] for m in json.loads(lines[-1][len(MARK):])}


def test_import_simarch_loads_no_heavy_library():
    proc, loaded = _fresh("import simarch")
    assert proc.returncode == 0, proc.stderr
    # nor the spec models or the engine: the version and the errors only
    assert not loaded & (HEAVY | {"pydantic", "yaml", "simpy", "scipy", "jinja2"}), sorted(loaded)


def test_errors_and_version_need_no_heavy_library():
    proc, loaded = _fresh("import simarch\nsimarch.SpecError, simarch.SimarchError, simarch.__version__")
    assert proc.returncode == 0, proc.stderr
    assert not loaded & HEAVY, sorted(loaded)


def _commands() -> list[str]:
    return sorted(typer.main.get_command(cli.app).commands)


@pytest.mark.parametrize("args", [["--help"], ["--version"], []] + [[c, "--help"] for c in _commands()],
                         ids=lambda a: " ".join(a) or "no-args")
def test_command_line_help_loads_no_heavy_library(args):
    """What the installed ``simarch`` command runs (``simarch.cli:main``), with these
    arguments: the help of each command, the version and the bare command (its help)."""
    proc, loaded = _fresh(f"sys.argv = ['simarch', *{args!r}]\nfrom simarch.cli import main\nmain()")
    assert proc.returncode == 0, proc.stderr
    assert ("simarch " if args == ["--version"] else "Usage:") in proc.stdout
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_a_public_name_loads_its_stage_when_used():
    proc, loaded = _fresh("import simarch\nsimarch.simulate")
    assert proc.returncode == 0, proc.stderr
    assert {"numpy", "simpy"} <= loaded


def test_a_run_needs_no_pandas_until_a_table_is_asked_for():
    proc, loaded = _fresh("import simarch\n"
                          "a = simarch.Architecture('x', workload={'rate': 5.0})"
                          ".add('s', kind='service', service_time={'exponential': '10ms'})\n"
                          "r = simarch.simulate(a, duration=20, warmup=0, seed=1)\n"
                          "assert len(r.latency) > 0")
    assert proc.returncode == 0, proc.stderr
    assert not loaded & {"pandas", "pyarrow", "matplotlib"}, sorted(loaded & {"pandas", "pyarrow", "matplotlib"})
    proc, loaded = _fresh("import simarch\n"
                          "a = simarch.Architecture('x', workload={'rate': 5.0})"
                          ".add('s', kind='service', service_time={'exponential': '10ms'})\n"
                          "simarch.simulate(a, duration=20, warmup=0, seed=1).summary()")
    assert proc.returncode == 0, proc.stderr
    assert "pandas" in loaded


def test_every_public_name_resolves():
    for name in simarch.__all__:
        assert getattr(simarch, name) is not None, name
    assert set(simarch.__all__) <= set(dir(simarch))
    assert simarch.plots.__name__ == "simarch.plots"
    from simarch.run.simulate import simulate
    from simarch.study.sweep import sweep

    assert simarch.simulate is simulate and simarch.sweep is sweep  # the functions, not modules
    assert not hasattr(simarch, "no_such_name")


def test_every_public_name_imports_in_a_fresh_interpreter():
    code = ("import simarch\n"
            "ns = {}\n"
            "exec('from simarch import *', ns)\n"
            "missing = [n for n in simarch.__all__ if n not in ns]\n"
            "assert not missing, missing\n"
            "assert set(simarch.__all__) <= set(dir(simarch))\n")
    proc, _ = _fresh(code)
    assert proc.returncode == 0, proc.stderr
