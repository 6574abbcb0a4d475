"""Trace export: OTLP/JSON checked against the real schema (``opentelemetry-proto``), the
Chrome trace-event format checked for the structure the viewers need, the sampling rules
counted, a golden trace of a tiny design compared byte for byte, and the command line.

Regenerate the golden traces (only on purpose, in a commit that says why)::

    .venv/bin/python tests/golden/traces/make.py
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import math
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import simarch_cli
from google.protobuf import json_format
from opentelemetry.proto.trace.v1 import trace_pb2

import simarch
from simarch.errors import SimarchError, SpecError
from simarch.results import traces
from simarch.results.hops import ABANDONED, CALL, CODE, ID, VISIT
from simarch.results.traces import (
    EPOCH,
    LIMIT,
    TraceSample,
    TraceSelection,
    chrome_trace,
    otlp_traces,
    trace_format,
    write_traces,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "traces"
sys.path.insert(0, str(GOLDEN))
import make as golden  # noqa: E402

MIX = ROOT / "tests" / "golden" / "specs" / "resilience_mix.yaml"
EPOCH_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
SERVER, CLIENT, INTERNAL = 2, 3, 1


@pytest.fixture(scope="module")
def mix():
    """A design with every kind of row: retries, backoffs, timeouts, hedges, a fallback,
    parallel fan-out, sync replica copies, crashes and errors (failed requests)."""
    return simarch.simulate(MIX, duration="20s", warmup="5s", progress=False)


@pytest.fixture(scope="module")
def closed():
    """Forward and async calls, a queue with consumers, async replica copies."""
    return simarch.simulate(ROOT / "tests" / "golden" / "specs" / "closed_queue.yaml", duration="4s",
                            warmup="2s", progress=False)


# --------------------------------------------------------------------------- helpers


def parse(doc: dict) -> trace_pb2.TracesData:
    """The document read by protobuf's own JSON parser into the real ``TracesData``."""
    return json_format.Parse(json.dumps(doc), trace_pb2.TracesData())


def parse_strict(doc: dict) -> trace_pb2.TracesData:
    """As :func:`parse`, with the ids turned from OTLP/JSON's hex into the base64 of the
    canonical protobuf JSON mapping first, so that the bytes of each id are checked too."""
    doc = copy.deepcopy(doc)
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = b64(sp[k])
    return json_format.Parse(json.dumps(doc), trace_pb2.TracesData())


def spans_of(msg: trace_pb2.TracesData) -> list[tuple[dict, trace_pb2.Span]]:
    """Every span with the attributes of its resource."""
    out = []
    for rs in msg.resource_spans:
        res = {a.key: a.value.string_value for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            assert ss.scope.name == "simarch" and ss.scope.version == simarch.__version__
            out += [(res, sp) for sp in ss.spans]
    return out


def attrs(sp) -> dict:
    out = {}
    for a in sp.attributes:
        which = a.value.WhichOneof("value")
        out[a.key] = getattr(a.value, which)
    return out


def hex_id(b: bytes) -> int:
    """The number of an id read by :func:`parse_strict`."""
    return int.from_bytes(b, "big")


def caller(spans: dict, sp) -> str:
    """The component whose visit made the call ``sp`` (``client`` above the entry)."""
    while sp.parent_span_id:
        _, sp = spans[sp.parent_span_id]
        if sp.kind == SERVER:
            return attrs(sp)["simarch.component"]
    return "client"


def ns(t: float) -> int:
    return EPOCH_NS + round(t * 1e9)


def check_otlp(result, doc: dict) -> dict[str, int]:
    """Every check of an OTLP document against the result it came from, on the message
    parsed by protobuf (:func:`parse_strict`); returns counts of what was seen."""
    msg = parse_strict(doc)
    for _, sp in spans_of(msg):
        assert len(sp.trace_id) == 16 and len(sp.span_id) == 8
        assert sp.parent_span_id == b"" or len(sp.parent_span_id) == 8
    hops = result.hops
    row_of = {int(r[ID]): r for r in hops.rows}
    traces: dict[bytes, dict[bytes, tuple[dict, trace_pb2.Span]]] = defaultdict(dict)
    for res, sp in spans_of(msg):
        assert sp.span_id not in traces[sp.trace_id], "span ids are unique within a trace"
        traces[sp.trace_id][sp.span_id] = (res, sp)
    seen: dict[str, int] = defaultdict(int)
    for spans in traces.values():
        roots = [sp for _, sp in spans.values() if not sp.parent_span_id]
        assert len(roots) == 1, "one root span per trace"
        root = roots[0]
        a = attrs(root)
        req = a["simarch.request"]
        assert root.kind == CLIENT and root.name == result.classes[result.cls[req]]
        assert root.start_time_unix_nano == ns(result.start[req])
        assert root.end_time_unix_nano == ns(result.end[req])
        lat = root.end_time_unix_nano - root.start_time_unix_nano
        assert abs(lat - result.latency[req] * 1e9) <= 1.0, "the root span lasts the request's latency"
        assert a["simarch.status"] == simarch.model.status.STATUS_NAMES[result.status[req]]
        for res, sp in spans.values():
            if sp is root:
                assert res["service.name"] == "client"
                continue
            assert sp.parent_span_id in spans, "every parent is a span of the same trace"
            _, parent = spans[sp.parent_span_id]
            row = row_of[hex_id(sp.span_id) - 1]
            kind = (int(row[CODE]) // 4) % 4
            assert sp.start_time_unix_nano == ns(row[3]) and sp.end_time_unix_nano == ns(row[6])
            sa = attrs(sp)
            rel = sa.get("simarch.relation")
            pa = attrs(parent)
            outlives = pa.get("simarch.timeout") or pa.get("simarch.abandoned")
            if rel is None and not outlives:
                assert parent.start_time_unix_nano <= sp.start_time_unix_nano
                assert sp.end_time_unix_nano <= parent.end_time_unix_nano, (sp, parent)
            elif rel in ("forward", "copy"):
                assert sp.start_time_unix_nano >= parent.end_time_unix_nano
            if kind == VISIT:
                assert sp.kind == SERVER and sp.name == root.name
                assert res["service.name"] == sa["simarch.component"]
                assert res["service.instance.id"] == sa["simarch.instance"]
                ev = {e.name: e for e in sp.events}
                assert ev["wait"].time_unix_nano == ns(row[3])
                assert ev["service"].time_unix_nano == ns(row[4])
                if "calls" in ev:
                    assert ev["calls"].time_unix_nano == ns(row[5])
                    seen["calls"] += 1
                assert (sp.status.code == 2) == (sa["simarch.status"] != "ok")
                seen["visit"] += 1
                seen[rel or "in"] += 1
            elif kind == CALL:
                assert sp.kind == CLIENT and sp.name == f"call {sa['simarch.component']}"
                assert res["service.name"] == caller(spans, sp), "a call is in its caller's resource"
                seen["call"] += 1
                seen["retry"] += sa.get("simarch.retry", 0) > 0
                seen["timeout"] += bool(sa.get("simarch.timeout"))
                seen["abandoned"] += bool(sa.get("simarch.abandoned"))
                assert bool(sa.get("simarch.abandoned")) == bool(int(row[CODE]) & ABANDONED)
            else:
                assert sp.kind == INTERNAL and sp.name in ("backoff", "hedge wait")
                seen[sp.name] += 1
        seen["traces"] += 1
    return seen


def check_chrome(doc: dict) -> dict[str, int]:
    """The structure of a Chrome trace-event document: every event well formed, every
    process named, and on every thread the complete events nest (no partial overlap)."""
    assert set(doc) >= {"traceEvents", "displayTimeUnit"} and doc["displayTimeUnit"] == "ms"
    named = set()
    threads: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for ev in doc["traceEvents"]:
        assert {"name", "ph", "pid", "tid"} <= set(ev), ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "process_sort_index", "thread_name", "thread_sort_index")
            if ev["name"] == "process_name":
                named.add(ev["pid"])
            continue
        assert ev["ph"] == "X", ev
        assert isinstance(ev["ts"], int) and isinstance(ev["dur"], int) and ev["dur"] >= 0
        assert isinstance(ev.get("args", {}), dict)
        threads[(ev["pid"], ev["tid"])].append(ev)
    assert {p for p, _ in threads} <= named, "every process has a name"
    for evs in threads.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[int] = []
        for e in evs:
            a, z = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1] <= a:
                stack.pop()
            assert not stack or z <= stack[-1], f"partial overlap on a thread: {e}"
            stack.append(z)
    return {"threads": len(threads), "slices": sum(len(v) for v in threads.values())}


# --------------------------------------------------------------------------- OTLP


def test_otlp_parses_into_traces_data_and_matches_the_records(mix):
    sample = TraceSample.parse("1/20,failed,>p99,limit=none")
    doc = otlp_traces(mix, sample=sample)
    msg = parse(doc)  # as the file is: OTLP/JSON's hex ids read as protobuf bytes
    services = {a.value.string_value for rs in msg.resource_spans for a in rs.resource.attributes
                if a.key == "service.name"}
    assert services == {"client", *mix.hops.components}
    seen = check_otlp(mix, doc)
    assert seen["traces"] == len(sample.select(mix).requests)
    # every kind of span of the design shows up
    for what in ("visit", "call", "retry", "timeout", "backoff", "hedge wait", "copy", "calls"):
        assert seen[what] > 0, what


def test_abandoned_hedges(mix):
    """The few hedged attempts still running when their call ended are flagged."""
    rows = np.flatnonzero(mix.hops.rows[:, CODE].astype(int) & ABANDONED)
    requests = np.unique(mix.hops.request_of()[rows])
    selection = TraceSelection(requests=requests, matched=len(requests), recorded=len(mix.start),
                               total=len(mix.start), sample=TraceSample())
    doc = traces._otlp(mix, selection, EPOCH)
    check_otlp(mix, doc)
    flagged = sum(1 for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]
                  if {"key": "simarch.abandoned", "value": {"boolValue": True}} in sp["attributes"])
    assert flagged == int((mix.hops.rows[:, CODE].astype(int) & ABANDONED > 0).sum()) > 0


def test_otlp_forward_and_async_links(closed):
    doc = otlp_traces(closed, sample="1/5")
    seen = check_otlp(closed, doc)
    assert seen["forward"] > 0 and seen["async"] > 0


def test_span_attributes_and_events(mix):
    doc = otlp_traces(mix, sample="failed,limit=50")
    msg = parse(doc)
    spans = [sp for _, sp in spans_of(msg)]
    assert spans
    visits = [sp for sp in spans if sp.kind == SERVER]
    for sp in visits:
        a = attrs(sp)
        assert set(a) >= {"simarch.component", "simarch.instance", "simarch.class", "simarch.status"}
        names = [e.name for e in sp.events]
        assert names[:2] == ["wait", "service"]
        wait = next(e for e in sp.events if e.name == "wait")
        d = {x.key: x.value.double_value for x in wait.attributes}["duration_ms"]
        assert d >= 0
        if a["simarch.status"] != "ok":
            assert sp.status.code == 2 and sp.status.message
    roots = [sp for sp in spans if not sp.parent_span_id]
    assert all(attrs(sp)["simarch.status"] != "ok" and sp.status.code == 2 for sp in roots)


def test_same_run_same_document_other_seed_other_ids(mix):
    again = simarch.simulate(MIX, duration="20s", warmup="5s", progress=False)
    assert json.dumps(otlp_traces(mix, sample="1/50")) == json.dumps(otlp_traces(again, sample="1/50"))
    other = simarch.simulate(MIX, duration="2s", warmup="5s", seed=2, progress=False)
    ids = {sp.trace_id for _, sp in spans_of(parse(otlp_traces(mix, sample="1/50")))}
    ids2 = {sp.trace_id for _, sp in spans_of(parse(otlp_traces(other, sample="1/50")))}
    assert ids and ids2 and not ids & ids2


def test_epoch(mix):
    doc = otlp_traces(mix, sample="1/1000", epoch="2020-01-01T00:00:00Z")
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert int(first["startTimeUnixNano"]) == 1_577_836_800 * 10**9 + round(mix.start[np.argmin(mix.start)] * 1e9)
    assert otlp_traces(mix, sample="1/1000", epoch=EPOCH) == otlp_traces(mix, sample="1/1000")
    assert otlp_traces(mix, sample="1/1000", epoch=1_767_225_600) == otlp_traces(mix, sample="1/1000")
    with pytest.raises(SpecError, match="epoch"):
        otlp_traces(mix, epoch="yesterday")


# --------------------------------------------------------------------------- sampling


def count(result, sample) -> int:
    return len(TraceSample.of(sample).select(result).requests)


def test_sampling_rules_count(mix):
    n = len(mix.start)
    lat, ok = mix.latency, mix.status == 0
    p99 = np.percentile(lat[ok], 99)
    failed = int((~ok).sum())
    slow = int((lat > p99).sum())
    assert failed > 0 and slow > 0
    assert count(mix, "all,limit=none") == n
    assert count(mix, "1/7,limit=none") == math.ceil(n / 7)
    assert count(mix, "failed,limit=none") == failed
    assert count(mix, ">p99,limit=none") == slow
    assert count(mix, ">p99.9,limit=none") == int((lat > np.percentile(lat[ok], 99.9)).sum())
    assert count(mix, ">20ms,limit=none") == int((lat > 0.02).sum())
    union = TraceSample.parse("1/7,failed,>p99,limit=none").select(mix)
    order = np.argsort(mix.start, kind="stable")
    every = np.zeros(n, bool)
    every[order[::7]] = True
    assert len(union.requests) == int((every | ~ok | (lat > p99)).sum())
    assert np.all(np.diff(mix.start[union.requests]) >= 0), "in arrival order"


def test_sampling_cap(mix):
    assert count(mix, None) == min(LIMIT, len(mix.start))
    sel = TraceSample.parse("all,failed,limit=10").select(mix)
    assert len(sel.requests) == 10 and sel.capped and sel.matched == len(mix.start)
    assert np.all(mix.status[sel.requests] != 0), "failed requests come first under the cap"
    assert "capped at limit=10" in sel.describe()
    spread = TraceSample.parse("all,limit=3").select(mix).requests
    assert spread[0] == np.argmin(mix.start) and spread[-1] == np.argmax(mix.start)


def test_sample_rules_parse():
    s = TraceSample.parse(" 1/100 , failed, >p99 , limit=500")
    assert s == TraceSample(every=100, failed=True, slower_than="p99", limit=500)
    assert TraceSample.parse(str(s)) == s
    assert TraceSample.parse("limit=none").limit is None
    assert str(TraceSample()) == f"all,limit={LIMIT}"
    for bad, fragment in [("", "sampling rules"), ("1/0", "N >= 1"), ("sometimes", "unknown sampling rule"),
                          (">p200", "percentile"), (">soon", "'>' takes"), ("limit=-1", "limit"),
                          ("1/10,1/20", "one '1/N'")]:
        with pytest.raises(SpecError, match=fragment):
            TraceSample.parse(bad)
    with pytest.raises(SpecError):
        TraceSample(every=0)
    with pytest.raises(SpecError):
        TraceSample(slower_than=-1.0)


def test_without_hop_records_says_how_to_get_them(tmp_path):
    r = simarch.simulate(golden.SPEC, duration="1s", warmup="0.2s", hops=False, progress=False)
    with pytest.raises(SimarchError, match="hops=True"):
        otlp_traces(r)
    with pytest.raises(SimarchError, match="hop records"):
        write_traces(r, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_one_in_n_hop_records_exports_the_recorded_ones():
    r = simarch.simulate(MIX, duration="3s", warmup="5s", hops=4, progress=False)
    sel = TraceSample.parse("all,limit=none").select(r)
    assert len(sel.requests) == int((r.hops.request_root >= 0).sum()) < len(r.start)
    assert "one request in 4" in sel.describe()
    check_otlp(r, otlp_traces(r, sample="failed,>p99"))


# --------------------------------------------------------------------------- Chrome


def test_chrome_structure(mix):
    sample = TraceSample.parse("1/10,failed,>p99,limit=none")
    doc = chrome_trace(mix, sample=sample)
    check_chrome(doc)
    x = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    cats = {e["cat"] for e in x}
    assert cats == {"request", "visit", "call", "backoff", "hedge", "phase"}
    # every span once; a visit's phases inside it, on its thread, wait then service
    sel = sample.select(mix)
    rows = np.concatenate([mix.hops.rows_of(i) for i in sel.requests])
    spans = [e for e in x if e["cat"] != "phase"]
    assert len(spans) == len(rows) + len(sel.requests)
    assert len({(e["args"]["trace_id"], e["args"]["span_id"]) for e in spans}) == len(spans)
    visits = {(e["args"]["trace_id"], e["args"]["span_id"]): e for e in x if e["cat"] == "visit"}
    assert len(visits) == int((mix.hops.kind()[rows] == VISIT).sum())
    phases = [e for e in x if e["cat"] == "phase"]
    assert {e["name"] for e in phases} == {"wait", "service"}
    for e in phases:
        v = visits[(e["args"]["trace_id"], e["args"]["span_id"])]
        assert (v["pid"], v["tid"]) == (e["pid"], e["tid"])
        assert v["ts"] <= e["ts"] and e["ts"] + e["dur"] <= v["ts"] + v["dur"]
    json.loads(json.dumps(doc))


def test_chrome_closed_loop(closed):
    check_chrome(chrome_trace(closed, sample="all,limit=300"))


def test_written_files_load(mix, tmp_path):
    ex = write_traces(mix, tmp_path / "deep" / "t.json", sample="failed,>p99")
    assert ex.format == "otlp" and str(ex).startswith(f"wrote {ex.traces:,} traces (OTLP/JSON) to ")
    text = (tmp_path / "deep" / "t.json").read_text()
    assert text.count("\n") == 1, "one line: also a JSON-lines file for a collector's file receiver"
    check_otlp(mix, json.loads(text))
    ex = write_traces(mix, tmp_path / "t.chrome.json", sample="failed")
    assert ex.format == "chrome"
    check_chrome(json.loads((tmp_path / "t.chrome.json").read_text()))
    assert write_traces(mix, tmp_path / "t.trace", format="chrome", sample="1/500").format == "chrome"
    assert trace_format("a.json") == "otlp" and trace_format("a.CHROME.json") == "chrome"
    with pytest.raises(SpecError, match="otlp or chrome"):
        trace_format("a.json", "zipkin")


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize("name", sorted(golden.FILES))
def test_golden_trace(name):
    path = GOLDEN / name
    assert path.exists(), f"no golden trace {name}: run python tests/golden/traces/make.py"
    actual = golden.render(name)
    expected = path.read_text()
    if actual != expected:
        lines = lambda text: json.dumps(json.loads(text), indent=1).splitlines(True)  # noqa: E731
        diff = "".join(difflib.unified_diff(lines(expected), lines(actual), "golden", "now", n=3))
        pytest.fail(f"{name} differs from its golden trace\n{diff[:4000]}")


def test_golden_design_shows_each_kind_of_span():
    r = golden.run()
    doc = json.loads((GOLDEN / "tiny.otlp.json").read_text())
    seen = check_otlp(r, doc)
    assert seen["retry"] and seen["timeout"] and seen["backoff"] and seen["async"], seen
    check_chrome(json.loads((GOLDEN / "tiny.chrome.json").read_text()))


# --------------------------------------------------------------------------- command line


def test_cli_writes_traces(tmp_path):
    common = ("run", golden.SPEC, "--duration", "1s", "--warmup", "0.5s", "--no-progress")
    otlp, chrome = tmp_path / "t.json", tmp_path / "deep" / "t.chrome.json"
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(simarch_cli, *common, "--traces", otlp, "--trace-sample", "1/2,failed")
        b = pool.submit(simarch_cli, *common, "--json", "--traces", chrome)
        a, b = a.result(), b.result()
    assert a.returncode == 0, a.stderr
    assert f"traces (OTLP/JSON) to {otlp}: " in a.stdout and "matched '1/2,failed'" in a.stdout
    parse(json.loads(otlp.read_text()))
    assert b.returncode == 0, b.stderr
    json.loads(b.stdout)  # with --json the line goes to standard error
    assert "(Chrome trace events)" in b.stderr
    check_chrome(json.loads(chrome.read_text()))


def test_cli_bad_trace_options(tmp_path):
    """A bad rule, format or path: one error line, exit code 2, before the run."""
    (tmp_path / "a_file").write_text("x")
    ok = tmp_path / "t.json"
    cases = [
        (["--traces", ok, "--trace-sample", "sometimes"], "--trace-sample: unknown sampling rule 'sometimes'"),
        (["--traces", ok, "--trace-sample", ">p1000"], "--trace-sample: a percentile is between"),
        (["--traces", ok, "--trace-format", "zipkin"], "--trace-format: a trace format is otlp or chrome"),
        (["--trace-sample", "failed"], "--trace-sample needs --traces"),
        (["--traces", tmp_path], "--traces: "),
        (["--traces", tmp_path / "a_file" / "t.json"], "--traces: cannot write to"),
    ]
    with ThreadPoolExecutor(3) as pool:
        procs = list(pool.map(lambda c: simarch_cli("run", golden.SPEC, "--duration", "1s", *c[0]), cases))
    for (_, fragment), proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
        assert proc.stdout == "", "refused before the run"
    assert not ok.exists()
