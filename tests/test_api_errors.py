"""Every user mistake through the Python API raises SpecError (a SimarchError) with the path
of the argument or field, and the CLI names the option."""

from __future__ import annotations

import pytest
from cli_helpers import ROOT, simarch_cli

import simarch
from simarch import Architecture, SpecError

SINGLE = ROOT / "architectures" / "single_server.yaml"
ARCH = simarch.load(SINGLE)

CASES = {
    "with_changes index out of range": (lambda: ARCH.with_changes({"calls.7.timeout": "1s"}), ("calls", 7)),
    "with_changes index not a number": (lambda: ARCH.with_changes({"calls.x.timeout": "1s"}), ("calls", "x")),
    "with_changes path not a string": (lambda: ARCH.with_changes({3: 1}), ()),
    "with_changes not a mapping": (lambda: ARCH.with_changes(["a"]), ()),
    "workload not a mapping": (lambda: Architecture("x", workload=5), ("workload",)),
    "kind a list": (lambda: Architecture("x").add("a", kind=["service"]), ("components", "a", "kind")),
    "capacity load text": (lambda: simarch.capacity_report(ARCH, load="zz"), ("load",)),
    "capacity load negative": (lambda: simarch.capacity_report(ARCH, load=-1), ("load",)),
    "spof window": (lambda: simarch.spof(ARCH, window="zz"), ("window",)),
    "compare loads": (lambda: simarch.compare([ARCH], loads=["zz"]), ("loads",)),
    "compare no loads": (lambda: simarch.compare([ARCH], loads=[]), ("loads",)),
    "compare no designs": (lambda: simarch.compare([]), ("designs",)),
    "compare replications": (lambda: simarch.compare([ARCH], replications=0), ("replications",)),
    "compare executor": (lambda: simarch.compare([ARCH], loads=[1], replications=1, duration="1s",
                                                 executor="bogus"), ("executor",)),
    "sweep values not a list": (lambda: simarch.sweep(ARCH, {"server.workers": 3}, "/tmp/never"),
                                ("params", "server.workers")),
    "sweep replications": (lambda: simarch.sweep(ARCH, {"server.workers": [1]}, "/tmp/never",
                                                 replications=0), ("replications",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_api_mistakes_raise_spec_errors_with_a_path(case):
    call, path = CASES[case]
    with pytest.raises(SpecError) as err:
        call()
    assert err.value.path[: len(path)] == path, err.value


@pytest.mark.parametrize("args,option", [
    (("run", SINGLE, "--fault", "crash:server,at=[1"), "--fault"),
    (("sweep", SINGLE, "--set", "server.workers=[1", "--out", "{tmp}/s"), "--set"),
    (("sweep", SINGLE, "--set", "calls.x.timeout=1s", "--out", "{tmp}/s2", "--duration", "1s"), "calls.x"),
    (("compare", SINGLE, "--loads", ","), "--loads"),
    (("spof", SINGLE, "--window", "zz"), "--window"),
    (("compare", SINGLE, "--scheduler", "bogus", "--loads", "1", "--replications", "1", "--duration", "1s"),
     "--scheduler"),
])
def test_cli_names_the_option(args, option, tmp_path):
    p = simarch_cli(*(str(a).replace("{tmp}", str(tmp_path)) for a in args))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()
    assert len(line) == 1 and option in line[0], p.stderr


def test_studies_are_bounded():
    with pytest.raises(SpecError, match="from 1 to 100,000") as err:
        simarch.sweep(ARCH, {"app.workers": [1]}, "/tmp/never", replications=10**14)
    assert err.value.path == ("replications",)
    with pytest.raises(SpecError, match="simulations"):
        simarch.sweep(ARCH, {"app.workers": list(range(1, 101))}, "/tmp/never", loads=[1, 2],
                      replications=1000)
