"""Hostile input: huge, deep, aliased, duplicated or special files and values fail fast with
exit code 2, one short line naming the file and field, and no traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cli_helpers import simarch_cli

import simarch
from simarch import SpecError
from simarch.errors import MAX_MESSAGE

BASE = "components: {a: {kind: service}}\n"
LAUGHS = "".join(
    f"{k}: &{k} [" + ",".join([f"*{p}" if p else '"lol"' for _ in range(9)]) + "]\n"
    for k, p in zip("abcdefghi", [None, *"abcdefgh"], strict=True))
CASES = {
    "fifty_mb_rate": ("workload: {rate: '" + "1" * 50_000_000 + "'}\n" + BASE, "workload.rate"),
    "billion_laughs": (LAUGHS + "workload: {rate: *i}\n" + BASE, "expands to more than"),
    "deep_list": ("workload: {rate: " + "[" * 5000 + "]" * 5000 + "}\n" + BASE, "nest"),
    "digits_400": ("workload: {rate: " + "9" * 400 + "}\n" + BASE, "400-digit integer"),
    "digits_6000": ("workload: {rate: " + "9" * 6000 + "}\n" + BASE, "unreadable value"),
    "duplicate_key": ("workload: {rate: 10}\ncomponents:\n  api: {kind: service}\n  api: {kind: service}\n",
                      "duplicate key 'api'"),
    "many_components": ("workload: {rate: 10}\ncomponents:\n"
                        + "".join(f"  c{i}: {{kind: service}}\n" for i in range(300_000)), "expands to more than"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_spec_fails_fast_with_one_line(case, tmp_path):
    text, expected = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    p = simarch_cli("validate", path)
    elapsed = time.perf_counter() - t0
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[:2000]
    assert lines[0].startswith(f"error: {path}") and expected in lines[0], lines[0][:500]
    assert len(lines[0]) < MAX_MESSAGE + len(str(path)) + 20
    assert elapsed < 10, f"{case} took {elapsed:.1f} s"  # a bound against hangs, not a timing test


@pytest.mark.parametrize("target", ["/dev/zero", "."])
def test_special_files_are_refused(target):
    p = simarch_cli("validate", target)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _trace_spec(tmp_path: Path, trace: str) -> dict:
    return {"workload": {"rate": 10, "profile": {"trace": trace}}, "components": {"a": {"kind": "service"}}}


@pytest.mark.parametrize("content,message", [
    (b"second,rate\n\xff\xfe,10\n", "not UTF-8"),
    (b"second,rate\nnan,10\n", "finite"),
    (None, "is a directory"),
])
def test_bad_trace_files(tmp_path, content, message):
    path = tmp_path / "trace.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(SpecError, match=message) as err:
        simarch.Architecture.from_dict(_trace_spec(tmp_path, str(path)))
    assert err.value.path == ("workload", "profile", "trace", "file")


def test_empirical_csv_at_a_device_is_refused():
    spec = {"workload": {"rate": 10},
            "components": {"a": {"kind": "service",
                                 "service_time": {"empirical": {"csv": "/dev/zero", "column": "x"}}}}}
    with pytest.raises(SpecError, match="not a regular file") as err:
        simarch.load(spec)
    assert err.value.path[:3] == ("components", "a", "service_time")


def test_error_messages_never_echo_a_whole_value():
    with pytest.raises(SpecError) as err:
        simarch.load({"workload": {"rate": "x" * 100_000}, "components": {"a": {"kind": "service"}}})
    assert len(str(err.value)) < 300 and "100,000 characters" in str(err.value)
    with pytest.raises(SpecError) as err:
        simarch.load({"workload": {"rate": 10}, "components": {"a": {"kind": "service", "workers": 10**400}}})
    assert "401-digit integer" in str(err.value) and len(str(err.value)) < 300


def _err(data: dict) -> SpecError:
    with pytest.raises(SpecError) as err:
        simarch.load(data)
    return err.value


def _one(comp: dict, **extra) -> dict:
    return {"workload": {"rate": 10}, "components": {"a": {"kind": "service", **comp}}, **extra}


def test_booleans_and_non_finite_numbers_are_not_numbers():
    e = _err(_one({"workers": True}))
    assert e.path == ("components", "a", "workers") and "got true" in e.message
    e = _err({"workload": {"rate": 10, "requests": {"r": {"keys": {"zipf": float("inf"), "n": 10}}}},
              "components": {"a": {"kind": "service"}}})
    assert e.path == ("workload", "requests", "r", "keys", "zipf") and "finite" in e.message
    e = _err({"workload": {"rate": 10, "profile": {"ramp": {"to": float("inf"), "over": "1s"}}},
              "components": {"a": {"kind": "service"}}})
    assert e.path == ("workload", "profile", "ramp", "to")


def test_bounds_on_what_has_no_meaning_past_them():
    two = {"workload": {"rate": 10},
           "components": {"a": {"kind": "service"}, "b": {"kind": "service"}}}
    e = _err({**two, "calls": [{"from": "a", "to": "b", "retries": {"attempts": 10**9, "backoff": "none"}}]})
    assert e.path == ("calls", 0, "retries", "attempts") and "<= 100" in e.message
    e = _err(_one({"workers": 1_000_000}))
    assert e.path == ("components", "a", "workers")
    t0 = time.perf_counter()
    e = _err({"workload": {"rate": 10}, "components": {"db": {"kind": "datastore", "shards": 1000, "vnodes": 10000}}})
    assert e.path == ("components", "db", "vnodes") and time.perf_counter() - t0 < 5


def test_backoff_never_overflows():
    from simarch.model.spec import RetrySpec
    from simarch.runtime.resilience import Resilience

    r = Resilience.__new__(Resilience)
    r.retries = RetrySpec(attempts=100, backoff="exponential", base=0.0, cap=1.0)
    assert r.backoff(2000, 0.0) == 0.0
    r.retries = RetrySpec(attempts=100, backoff="exponential", base=0.01, cap=1.0)
    assert r.backoff(2000, 0.0) == 1.0


def test_yaml_1_2_exponents_are_numbers(tmp_path):
    """``1e-1`` and ``2e8`` are floats in YAML 1.2 (YAML 1.1 loaders read them as strings)."""
    spec = tmp_path / "exp.yaml"
    spec.write_text("workload: {rate: 1e2}\n"
                    "components:\n"
                    "  a: {kind: service, workers: 4, service_time: {lognormal: {mu: -5.5, sigma: 1e-1}}}\n"
                    "simulation: {max_events: 2e8}\n")
    arch = simarch.load(spec)
    assert arch.spec.workload.rate == 100.0
    assert arch.spec.simulation.max_events == 2e8
    assert "12ms" in str(simarch.load({"workload": {"rate": 10}, "components": {
        "a": {"kind": "service", "service_time": "12ms"}}}).spec.components["a"].service_time)
