"""The command line as a user meets it: bad input gives one clear line and exit code 2.

Every case writes a small spec to a temporary folder and runs the installed ``simarch``
command in a subprocess. A bad spec or option must print exactly one line on stderr,
``error: FILE: field.path: message``, that names the file, the field and what is allowed
or what was given; exit with code 2; and never show a traceback.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import simarch_cli

import simarch

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = sorted((ROOT / "architectures").glob("*.yaml"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit code 2, a single ``error: ...`` line on stderr containing every ``expected``
    fragment, and no traceback anywhere. Returns the line."""
    everything = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr, everything
    assert proc.returncode == 2, f"exit code {proc.returncode}\n{everything}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}\n{everything}"
    line = lines[0]
    assert line.startswith("error: "), everything
    for fragment in expected:
        assert fragment in line, f"{fragment!r} not in the error line\n{line}"
    return line


# --------------------------------------------------------------------------- spec errors

# name -> (file text, fragments the one error line must contain besides the file name)
SPEC_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "unknown_field": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, wrokers: 4, service_time: 4ms}
        """,
        ("components.api.wrokers", "unknown field 'wrokers'", "did you mean 'workers'"),
    ),
    "unknown_top_level_field": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
        slos: {p99: 50ms}
        """,
        ("slos", "unknown field 'slos'", "did you mean 'slo'"),
    ),
    "misspelt_required_top_level_field": (
        """\
        worklaod: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("worklaod", "unknown field", "workload"),
    ),
    "negative_rate": (
        """\
        workload: {rate: -5}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.rate", "negative", "-5"),
    ),
    "call_to_missing_component": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
        calls:
          - {from: api, to: db}
        """,
        ("calls.0.to", "unknown component 'db'", "api"),
    ),
    "call_cycle": (
        """\
        workload: {rate: 10, entry: a}
        components:
          a: {kind: service, service_time: 4ms}
          b: {kind: service, service_time: 4ms}
          c: {kind: service, service_time: 4ms}
        calls:
          - {from: a, to: b}
          - {from: b, to: c}
          - {from: c, to: b}
        """,
        ("calls.", "cycle", "b -> c", "c -> b"),
    ),
    "self_call": (
        """\
        workload: {rate: 10}
        components:
          a: {kind: service, service_time: 4ms}
        calls:
          - {from: a, to: a}
        """,
        ("calls.0", "'a' calls itself"),
    ),
    "duration_unit_typo": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4 msec}
        """,
        ("components.api.service_time", "'4 msec'", "ms", "units"),
    ),
    "zipf_over_zero_keys": (
        """\
        workload:
          rate: 10
          requests:
            get: {keys: {zipf: 1.0, n: 0}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.requests.get.keys.n", ">= 1", "0"),
    ),
    "unknown_component_kind": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: servise, service_time: 4ms}
        """,
        ("components.api", "'servise'", "service", "load_balancer", "datastore"),
    ),
    "unknown_distribution_in_call_latency": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
          db: {kind: datastore, service_time: 1ms}
        calls:
          - {from: api, to: db, latency: {expo: 1ms}}
        """,
        ("calls.0.latency", "'expo'", "exponential", "lognormal"),
    ),
    "unknown_distribution_in_service_time": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: {exponentail: 4ms}}
        """,
        ("components.api.service_time", "'exponentail'", "exponential"),
    ),
    "unknown_distribution_parameters": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: {lognormal: {median: 4ms, p95: 20ms}}}
        """,
        ("components.api.service_time", "lognormal", "p95", "p99"),
    ),
    "service_time_for_unknown_class": (
        """\
        workload:
          rate: 10
          requests:
            get: {weight: 0.9}
            post: {weight: 0.1}
        components:
          api: {kind: service, service_time: {get: 4ms, pst: 9ms}}
        """,
        ("components.api.service_time.pst", "'pst'", "get", "post"),
    ),
    "on_miss_from_non_cache": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
          db: {kind: datastore, service_time: 1ms}
        calls:
          - {from: api, to: db, on: miss}
        """,
        ("calls.0.on", "cache", "'api' is a service"),
    ),
    "lru_cache_without_request_keys": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
          cache: {kind: cache, capacity: 1000, service_time: 0.3ms}
        calls:
          - {from: api, to: cache}
        """,
        ("components.cache.capacity", "keys", "hit_ratio"),
    ),
    "rate_and_users": (
        """\
        workload: {rate: 10, users: 5, think_time: 1s}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "'rate'", "'users'", "not both"),
    ),
    "daily_active_users_zero": (
        """\
        workload: {daily_active_users: 0, requests_per_user: 50}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.daily_active_users", ">= 1", "0"),
    ),
    "daily_active_users_not_a_number": (
        """\
        workload: {daily_active_users: 2 million, requests_per_user: 50}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.daily_active_users", "'2 million'", "'2M'", "M = million"),
    ),
    "peak_to_mean_below_one": (
        """\
        workload: {daily_active_users: 2M, requests_per_user: 50, peak_to_mean: 0.5}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.peak_to_mean", ">= 1", "0.5"),
    ),
    "daily_active_users_and_rate": (
        """\
        workload: {rate: 10, daily_active_users: 2M, requests_per_user: 50}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "'rate'", "'daily_active_users'", "not both"),
    ),
    "daily_active_users_and_users": (
        """\
        workload: {users: 10, think_time: 1s, daily_active_users: 2M, requests_per_user: 50}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "'users'", "'daily_active_users'", "not both"),
    ),
    "daily_active_users_without_requests_per_user": (
        """\
        workload: {daily_active_users: 2M}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "needs 'requests_per_user'", "per day"),
    ),
    "peak_to_mean_with_rate": (
        """\
        workload: {rate: 10, peak_to_mean: 3}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "'peak_to_mean' goes with 'daily_active_users'"),
    ),
    "storage_retention_without_size": (
        """\
        workload: {rate: 10, storage: {retention: 5y}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.storage", "'retention' needs a size", "'per_write'", "'per_request'"),
    ),
    "storage_size_unit_typo": (
        """\
        workload: {rate: 10, storage: {per_write: 2XB, retention: 5y}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.storage.per_write", "'2XB'", "KB", "KiB", "powers of 1024"),
    ),
    "storage_retention_unit_typo": (
        """\
        workload: {rate: 10, storage: {per_request: 2KB, retention: 5 years}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.storage.retention", "'5 years'", "d, y"),
    ),
    "storage_per_write_without_a_writing_class": (
        """\
        workload: {rate: 10, requests: {browse: {weight: 1}}, storage: {per_write: 2KB}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload.storage.per_write", "no request class writes", "browse", "op: write", "per_request"),
    ),
    "storage_with_closed_loop_users": (
        """\
        workload: {users: 10, think_time: 1s, storage: {per_request: 2KB}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "'storage'", "mean rate", "'daily_active_users'"),
    ),
    "workers_zero": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, workers: 0, service_time: 4ms}
        """,
        ("components.api.workers", ">= 1", "0"),
    ),
    "workers_not_a_number": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, workers: many, service_time: 4ms}
        """,
        ("components.api.workers", "integer", "'many'"),
    ),
    "policy_not_allowed": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, policy: fastest, service_time: 4ms}
        """,
        ("components.api.policy", "'fastest'", "round_robin", "least_connections"),
    ),
    "availability_over_100_percent": (
        """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: 4ms}
        slo: {availability: 120%}
        """,
        ("slo.availability", "120%", "between 0 and 1"),
    ),
    "missing_workload": (
        """\
        components:
          api: {kind: service, service_time: 4ms}
        """,
        ("workload", "missing"),
    ),
    "no_components": (
        """\
        workload: {rate: 10}
        components: {}
        """,
        ("components", "empty"),
    ),
}


def _check_spec_case(path: Path, proc: subprocess.CompletedProcess[str], case: str) -> None:
    line = assert_one_line_error(proc, path.name, *SPEC_CASES[case][1])
    # the file comes first, then the field path: "error: FILE: field.path: message"
    assert line.startswith(f"error: {path}: "), line


@pytest.fixture(scope="module")
def validated_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """``simarch validate`` on every spec case, run a few at a time (each run starts Python)."""
    folder = tmp_path_factory.mktemp("spec_cases")
    paths = {case: write(folder, f"{case}.yaml", text) for case, (text, _) in SPEC_CASES.items()}
    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = {case: pool.submit(simarch_cli, "validate", path) for case, path in paths.items()}
        return {case: (paths[case], fut.result()) for case, fut in procs.items()}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_validate_spec_error_is_one_line(validated_cases: dict, case: str) -> None:
    path, proc = validated_cases[case]
    _check_spec_case(path, proc, case)


@pytest.mark.parametrize("case", ["unknown_field", "lru_cache_without_request_keys"])
def test_run_spec_error_is_one_line(tmp_path: Path, case: str) -> None:
    path = write(tmp_path, f"{case}.yaml", SPEC_CASES[case][0])
    _check_spec_case(path, simarch_cli("run", path, "--duration", "1s", "--warmup", "0s"), case)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "no_such_design.yaml"
    assert_one_line_error(simarch_cli("validate", path), "no_such_design.yaml", "does not exist")


def test_broken_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", """\
        workload: {rate: 10
        components:
          api: {kind: service}
        """)
    assert_one_line_error(simarch_cli("validate", path), "broken.yaml", "YAML", "line 2")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "designs"
    folder.mkdir()
    assert_one_line_error(simarch_cli("validate", folder), "designs", "directory")
    assert_one_line_error(simarch_cli("run", folder), "designs", "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.yaml", "")
    assert_one_line_error(simarch_cli("validate", path), "empty.yaml", "mapping", "workload")


def test_yaml_list_instead_of_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "list.yaml", """\
        - workload: {rate: 10}
        - components: {api: {kind: service}}
        """)
    assert_one_line_error(simarch_cli("validate", path), "list.yaml", "mapping", "list")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"workload: {rate: 10}\ncomponents: {api: {kind: service, zone: \xff\xfe}}\n")
    assert_one_line_error(simarch_cli("validate", path), "binary.yaml")


# --------------------------------------------------------------------------- simarch fit

# file name -> (contents, fragments the one error line must contain besides the file name)
FIT_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "empty.json": ("", ("the file is empty",)),
    "malformed.json": ('{"resourceSpans": [{"scopeSpans": [}', ("not valid JSON", "line 1")),
    "not_otlp.json": ('{"traces": []}', ("not OTLP/JSON", "'resourceSpans'")),
    "backwards.json": ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", '
                       '"spanId": "b7ad6b7169203331", "name": "read", "kind": 2, '
                       '"startTimeUnixNano": "1700000000002000000", "endTimeUnixNano": "1700000000001000000"}]}]}]}',
                       ("spans[0]", "b7ad6b7169203331", "ends before it starts")),
    "no_duration.csv": ("operation,latency\nread,4ms\n", ("no duration column", "duration_ms", "'latency'")),
    "bare_duration.csv": ("operation,duration\nread,4\n", ("line 2", "'4' has no unit", "duration_ms")),
    "zero_duration.csv": ("operation,duration_ms\nread,3\nread,0\n", ("line 3", "must be > 0")),
    "header_only.csv": ("operation,duration_ms\n", ("no rows",)),
}


@pytest.fixture(scope="module")
def fit_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """``simarch fit`` on every bad file, a few at a time (each run starts Python)."""
    folder = tmp_path_factory.mktemp("fit_cases")
    paths = {}
    for name, (text, _) in FIT_CASES.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = {name: pool.submit(simarch_cli, "fit", path) for name, path in paths.items()}
        return {name: (paths[name], fut.result()) for name, fut in procs.items()}


@pytest.mark.slow  # (a simarch fit process per case, each importing scipy; make test runs them)
@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_bad_data_is_one_line(fit_cases: dict, case: str) -> None:
    path, proc = fit_cases[case]
    line = assert_one_line_error(proc, *FIT_CASES[case][1])
    assert line.startswith(f"error: {path}: "), line


def test_fit_missing_file_and_options(tmp_path: Path) -> None:
    good = tmp_path / "d.csv"
    good.write_text("operation,duration_ms\n" + "read,4\n" * 25, encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "simarch.json").write_text('{"type": "run"}')
    spans = tmp_path / "spans.csv"
    spans.write_text("service,operation,duration_ms\napi,read,4\n", encoding="utf-8")
    cases = [
        (("fit", tmp_path / "spans.json"), ("spans.json", "does not exist")),
        (("fit", tmp_path), (str(tmp_path), "is a directory")),
        (("fit", good, "--format", "xml"), ("--format", "otlp, csv or auto", "'xml'")),
        (("fit", good, "--operations", "root"), ("--operations", "'span' or 'entry'")),
        (("fit", good, "--out", tmp_path / "other"), ("--out", "results of a run")),
        (("fit", spans, "--service", "db"), ("spans.csv", "no service 'db'", "api")),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = [pool.submit(simarch_cli, *args) for args, _ in cases]
        for (_, expected), proc in zip(cases, procs, strict=True):
            assert_one_line_error(proc.result(), *expected)


# --------------------------------------------------------------------------- option errors

@pytest.fixture
def good_spec(tmp_path: Path) -> Path:
    return write(tmp_path, "good.yaml", """\
        workload: {rate: 10}
        components:
          api: {kind: service, workers: 2, service_time: 4ms}
        """)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_load_value(good_spec: Path, command: str) -> None:
    line = assert_one_line_error(simarch_cli(command, good_spec, "--load", "10q"), "--load", "'10q'")
    assert "10x" in line  # what is allowed


@pytest.mark.parametrize("value", ["5q", "-5s"])
def test_bad_duration_value(good_spec: Path, value: str) -> None:
    assert_one_line_error(simarch_cli("run", good_spec, "--duration", value), "--duration", repr(value))


def test_bad_warmup_value(good_spec: Path) -> None:
    assert_one_line_error(simarch_cli("run", good_spec, "--duration", "1s", "--warmup", "1 parsec"),
                          "--warmup", "'1 parsec'")


def test_negative_seed(good_spec: Path) -> None:
    assert_one_line_error(simarch_cli("run", good_spec, "--duration", "1s", "--seed", "-1"),
                          "--seed", "-1")


# --------------------------------------------------------------------------- extreme values

EXTREME_CASES = {
    "zipf_over_10e30_keys": """\
        workload:
          rate: 10
          requests:
            get: {keys: {zipf: 1.0, n: 1000000000000000000000000000000}}
        components:
          api: {kind: service, service_time: 4ms}
        """,
    "lognormal_with_overflowing_mean": """\
        workload: {rate: 10}
        components:
          api: {kind: service, service_time: {lognormal: {mu: 0, sigma: 1.0e+10}}}
        """,
    "datastore_with_10e30_shards": """\
        workload: {rate: 10}
        components:
          db: {kind: datastore, shards: 1000000000000000000000000000000, service_time: 1ms}
        """,
    "a_hundred_billion_users_storing_petabytes": """\
        workload:
          daily_active_users: 100B
          requests_per_user: 1B
          peak_to_mean: 1e6
          storage: {per_request: 1PB, retention: 1e9y}
        components:
          db: {kind: datastore, shards: 2000, replicas: 100, service_time: 1ms}
        """,
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "a_hundred_billion_users_storing_petabytes"
                                  else c for c in EXTREME_CASES])  # (that one takes 17 s)
def test_extreme_values_never_show_a_traceback(tmp_path: Path, case: str) -> None:
    """Absurd but syntactically valid numbers: either a report (exit 0) or one error line."""
    path = write(tmp_path, f"{case}.yaml", EXTREME_CASES[case])
    proc = simarch_cli("validate", path)
    if proc.returncode != 0:
        assert_one_line_error(proc, path.name)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


# --------------------------------------------------------------------------- what works


def test_help() -> None:
    proc = simarch_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("run", "validate", "--help"):
        assert word in proc.stdout


def test_run_help() -> None:
    proc = simarch_cli("run", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--load", "--duration", "--warmup", "--seed", "--json", "--out"):
        assert option in proc.stdout, option


def test_validate_help() -> None:
    proc = simarch_cli("validate", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--load" in proc.stdout


@pytest.mark.parametrize("spec", ARCHITECTURES, ids=[p.stem for p in ARCHITECTURES])
def test_validate_examples(spec: Path) -> None:
    proc = simarch_cli("validate", spec)
    assert proc.returncode == 0, proc.stderr
    assert "Bottleneck" in proc.stdout
    assert proc.stderr == "" or "Traceback" not in proc.stderr


def test_examples_exist() -> None:
    assert len(ARCHITECTURES) >= 4
    assert {p.name for p in ARCHITECTURES} >= {"single_server.yaml", "cached_sharded.yaml"}


def _number_or_none(v: object) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def test_run_json() -> None:
    proc = simarch_cli("run", ROOT / "architectures/single_server.yaml",
                       "--duration", "5s", "--warmup", "1s", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    s = doc["summary"]
    assert isinstance(s["requests"], int) and s["requests"] > 0
    assert s["throughput_rps"] > 0
    assert 0.0 <= s["availability"] <= 1.0
    for key in ("mean", "p50", "p90", "p95", "p99", "p999", "max"):
        assert _number_or_none(s["latency_ms"][key]), key
    lat = s["latency_ms"]
    assert lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    for key in ("rejected", "timeout", "failed"):
        assert isinstance(s["errors"][key], int), key
    assert set(doc["components"]) == {"app", "db"}
    for name, comp in doc["components"].items():
        for key in ("utilization", "throughput_rps", "mean_queue"):
            assert key in comp, (name, key)
            assert _number_or_none(comp[key]), (name, key, comp[key])


def test_run_json_cache_hit_ratio() -> None:
    proc = simarch_cli("run", ROOT / "architectures/cached_sharded.yaml",
                       "--duration", "2s", "--warmup", "0.5s", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    hit = doc["components"]["cache"]["hit_ratio"]
    assert isinstance(hit, float) and 0.0 <= hit <= 1.0


def test_run_out_directory(tmp_path: Path) -> None:
    out = tmp_path / "run1"
    proc = simarch_cli("run", ROOT / "architectures/single_server.yaml",
                       "--duration", "2s", "--warmup", "0.5s", "--out", out)
    assert proc.returncode == 0, proc.stderr
    for name in ("requests.parquet", "summary.parquet", "components.parquet",
                 "timeseries.parquet", "result.json", "spec.yaml"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert doc["summary"]["requests"] > 0
    again = simarch.load(out / "spec.yaml")
    original = simarch.load(ROOT / "architectures/single_server.yaml")
    assert list(again.spec.components) == list(original.spec.components)
    assert again.entry == original.entry


def test_run_tables_include_slo() -> None:
    proc = simarch_cli("run", ROOT / "architectures/cached_sharded.yaml",
                       "--duration", "2s", "--warmup", "0.5s")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in ("End to end", "Components", "SLO", "cache", "hit_ratio"):
        assert word in proc.stdout, word
