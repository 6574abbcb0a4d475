"""Latency data for calibration: OpenTelemetry spans (OTLP/JSON) and CSV files of durations,
read into tables, and the visits and calls found in the spans.

**OTLP/JSON** is the protobuf JSON mapping of ``TracesData``: ``resourceSpans`` → ``scopeSpans``
→ ``spans``. Both lowerCamelCase and snake_case field names are read (the mapping allows
both), times as strings or integers, a span's ``kind`` as a number or as its enum name
(``SPAN_KIND_SERVER``), and a file may hold one ``TracesData`` object or one a line (JSON
lines, as the OpenTelemetry collector's file exporter writes). A span's service is its
resource's ``service.name`` (else a span attribute ``service.name``, then
``simarch.component``); its operation is its name.

**Visits.** A visit is one request's stay in one service: a ``SERVER`` or ``CONSUMER`` span,
or an ``INTERNAL``/``UNSPECIFIED`` span that no span of its own service encloses (a trace's
root, or a span whose parent belongs to another service). Spans of the same service under a
visit (``INTERNAL`` spans, and a ``SERVER`` span nested directly in another of the same
service, as two layers of instrumentation make) are part of it: its own work. A ``CLIENT`` or
``PRODUCER`` span, a span of another service and a new visit are *outgoing*: the visit is
waiting for them (or has handed work off).

**Exclusive time** of a visit: its duration minus the length of the union of the intervals of
its outgoing spans, each clipped to the visit's own interval. In a simarch trace of a design
whose services have no queueing and whose calls have no network latency, it is exactly the
service time of the visit; in general it also holds the time the visit waited for a worker
(and for a connection, a lock, a pause between retries). Taken at high utilisation it
includes queueing, so calibrate from traces taken at low load.

**Calls.** Each visit's callees are the nearest visits under its outgoing spans (client spans
skipped). An outgoing ``CLIENT``/``PRODUCER`` span under which no visit was traced (a
database, a third-party API) is a call to the service its attributes name (``peer.service``,
``db.system``, ``server.address``, ``net.peer.name``, ``messaging.destination.name``,
``rpc.service``), observed from the caller's side: its duration, network included, is that
callee's visit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from ..errors import SpecError, excerpt
from ..model.files import open_text
from ..model.units import DURATION_UNITS, parse_duration

__all__ = [
    "SPAN_KINDS",
    "SPAN_COLUMNS",
    "read_otlp",
    "read_durations_csv",
    "spans_from_otlp",
    "durations_from_frame",
    "analyse_spans",
    "call_graph",
]

#: The OpenTelemetry span kinds by number.
SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = range(6)
_KIND_NUMBERS = {name: k for k, name in SPAN_KINDS.items()}
STATUS_ERROR = 2

#: The columns of a table of spans (one row a span; times in integer nanoseconds).
SPAN_COLUMNS = ("trace_id", "span_id", "parent_id", "service", "name", "kind", "start_ns",
                "end_ns", "status", "peer", "retry")

# attributes that name a callee no span was traced in, in order of preference
_PEER_KEYS = ("peer.service", "db.system", "server.address", "net.peer.name",
              "messaging.destination.name", "messaging.system", "rpc.service")


# --------------------------------------------------------------------------- OTLP/JSON


def _get(obj: Mapping[str, Any], camel: str, snake: str, default: Any = None) -> Any:
    if camel in obj:
        return obj[camel]
    return obj.get(snake, default)


def _any_value(value: Any) -> Any:
    """The Python value of an OTLP ``AnyValue`` (``{"stringValue": "api"}`` and the like)."""
    if not isinstance(value, Mapping):
        return value
    for camel, snake in (("stringValue", "string_value"), ("intValue", "int_value"),
                         ("doubleValue", "double_value"), ("boolValue", "bool_value")):
        if camel in value or snake in value:
            v = _get(value, camel, snake)
            if camel == "intValue" and isinstance(v, str):
                try:
                    return int(v)
                except ValueError:
                    return v
            return v
    array = _get(value, "arrayValue", "array_value")
    if isinstance(array, Mapping):
        return [_any_value(v) for v in array.get("values") or []]
    return None


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _nanos(value: Any, what: str, where: str, source: str) -> int:
    if isinstance(value, bool) or value is None:
        raise SpecError(f"{where}: {what} is missing or not a number of nanoseconds, got "
                        f"{excerpt(value)}", (), source)
    number = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value):
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 20:
        number = int(value.strip())
    if number is not None and 0 <= number < 2**63:
        return number
    raise SpecError(f"{where}: {what} must be a number of nanoseconds since 1970 (a string or "
                    f"an integer), got {excerpt(value)}", (), source)


def _kind(value: Any, where: str, source: str) -> int:
    if value is None:
        return UNSPECIFIED
    if isinstance(value, int) and not isinstance(value, bool) and value in SPAN_KINDS:
        return value
    if isinstance(value, str):
        name = value.strip().lower().removeprefix("span_kind_")
        if name in _KIND_NUMBERS:
            return _KIND_NUMBERS[name]
        if name.isdigit() and int(name) in SPAN_KINDS:
            return int(name)
    raise SpecError(f"{where}: kind must be 0-5 or a name such as SPAN_KIND_SERVER, got "
                    f"{excerpt(value)}", (), source)


def _status(value: Any) -> int:
    if not isinstance(value, Mapping):
        return 0
    code = value.get("code", 0)
    if isinstance(code, str):
        return {"status_code_unset": 0, "status_code_ok": 1, "status_code_error": 2}.get(
            code.strip().lower(), int(code) if code.strip().isdigit() else 0)
    return int(code) if isinstance(code, int) and not isinstance(code, bool) else 0


def _retry(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _documents(text: str, source: str) -> list[tuple[Any, str]]:
    """The JSON documents of a file: one object (or a list of them), or one a line."""
    stripped = text.strip()
    if not stripped:
        raise SpecError("the file is empty: expected OTLP/JSON spans (an object with "
                        "'resourceSpans') or a CSV of durations", (), source)
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as first:
        if first.msg != "Extra data":
            raise SpecError(f"not valid JSON: line {first.lineno}, column {first.colno}: "
                            f"{first.msg}", (), source) from None
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append((json.loads(line), f"line {number}"))
            except json.JSONDecodeError as e:
                raise SpecError(f"not valid JSON lines: line {number}, column {e.colno}: {e.msg}",
                                (), source) from None
        return docs
    if isinstance(doc, list):
        return [(d, f"[{i}]") for i, d in enumerate(doc)]
    return [(doc, "")]


def spans_from_otlp(data: Any, *, source: str = "spans") -> pd.DataFrame:
    """A table of spans (:data:`SPAN_COLUMNS`) from OTLP/JSON already parsed: a ``TracesData``
    mapping, or a list of them. Raises :class:`~simarch.errors.SpecError` naming ``source``
    and the place in it on anything that is not OTLP/JSON."""
    docs = [(d, f"[{i}]") for i, d in enumerate(data)] if isinstance(data, list) else [(data, "")]
    return _spans(docs, source)


def _spans(docs: Sequence[tuple[Any, str]], source: str) -> pd.DataFrame:
    rows: list[tuple] = []
    for doc, at in docs:
        prefix = f"{at}: " if at else ""
        if not isinstance(doc, Mapping) or not ("resourceSpans" in doc or "resource_spans" in doc):
            got = f"an object with keys {', '.join(map(repr, list(doc)[:5]))}" if isinstance(doc, Mapping) \
                else f"a {type(doc).__name__}"
            raise SpecError(f"{prefix}not OTLP/JSON: expected an object with 'resourceSpans' "
                            f"(the JSON form of TracesData), got {got}", (), source)
        resources = _get(doc, "resourceSpans", "resource_spans") or []
        if not isinstance(resources, list):
            raise SpecError(f"{prefix}resourceSpans must be a list", (), source)
        for r, rs in enumerate(resources):
            where_r = f"{prefix}resourceSpans[{r}]"
            if not isinstance(rs, Mapping):
                raise SpecError(f"{where_r} must be an object", (), source)
            resource = rs.get("resource") or {}
            res_attrs = _attributes(resource.get("attributes") if isinstance(resource, Mapping) else None)
            scopes = _get(rs, "scopeSpans", "scope_spans")
            if scopes is None:  # before OTLP 0.15: instrumentationLibrarySpans
                scopes = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans") or []
            if not isinstance(scopes, list):
                raise SpecError(f"{where_r}.scopeSpans must be a list", (), source)
            for s, ss in enumerate(scopes):
                spans = ss.get("spans") if isinstance(ss, Mapping) else None
                if spans is None:
                    continue
                if not isinstance(spans, list):
                    raise SpecError(f"{where_r}.scopeSpans[{s}].spans must be a list", (), source)
                for i, sp in enumerate(spans):
                    rows.append(_span_row(sp, res_attrs, f"{where_r}.scopeSpans[{s}].spans[{i}]",
                                          source))
    if not rows:
        raise SpecError("no spans in the file (OTLP/JSON with empty resourceSpans)", (), source)
    frame = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    frame["kind"] = frame["kind"].astype(np.int8)
    frame["start_ns"] = frame["start_ns"].astype(np.int64)
    frame["end_ns"] = frame["end_ns"].astype(np.int64)
    return frame


def _span_row(sp: Any, res_attrs: Mapping[str, Any], where: str, source: str) -> tuple:
    if not isinstance(sp, Mapping):
        raise SpecError(f"{where} must be an object", (), source)
    trace = _get(sp, "traceId", "trace_id")
    span = _get(sp, "spanId", "span_id")
    for what, value in (("traceId", trace), ("spanId", span)):
        if not isinstance(value, str) or not value:
            raise SpecError(f"{where}: {what} is missing (a hex string)", (), source)
    parent = _get(sp, "parentSpanId", "parent_span_id") or ""
    if not isinstance(parent, str):
        raise SpecError(f"{where}: parentSpanId must be a hex string, got {excerpt(parent)}", (), source)
    start = _nanos(_get(sp, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano", where, source)
    end = _nanos(_get(sp, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano", where, source)
    if end < start:
        raise SpecError(f"{where} (span {span}): ends before it starts (duration "
                        f"{(end - start) / 1e6:g} ms): durations must not be negative", (), source)
    attrs = _attributes(sp.get("attributes"))
    service = res_attrs.get("service.name") or attrs.get("service.name") \
        or attrs.get("simarch.component") or "unknown_service"
    name = sp.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where} (span {span}): name is missing", (), source)
    peer = next((str(attrs[k]) for k in _PEER_KEYS if attrs.get(k) not in (None, "")), "")
    return (trace, span, parent if parent.strip("0") else "", str(service), name,
            _kind(sp.get("kind"), where, source), start, end, _status(sp.get("status")), peer,
            _retry(attrs.get("simarch.retry")))


def read_otlp(path: str | Path, *, source: str | None = None) -> pd.DataFrame:
    """Read an OTLP/JSON file (one ``TracesData`` object, a list of them, or one a line) into a
    table of spans (:data:`SPAN_COLUMNS`). Raises :class:`~simarch.errors.SpecError` naming
    the file on an empty, malformed or non-OTLP file."""
    path = Path(path)
    src = source or str(path)
    return _spans(_documents(_read_text(path, src), src), src)


def _read_text(path: Path, source: str) -> str:
    try:
        with open_text(path, "data") as handle:
            return handle.read()
    except ValueError as e:  # open_text's messages name the file
        raise SpecError(str(e)) from None


# --------------------------------------------------------------------------- CSV of durations

_SERVICE_COLUMNS = ("service", "service.name", "service_name", "component")
_OPERATION_COLUMNS = ("operation", "op", "name", "span_name", "endpoint", "route", "class", "request")
_DURATION_COLUMNS = {"duration_us": 1e-6, "duration_µs": 1e-6, "duration_ms": 1e-3,
                     "duration_s": 1.0, "duration": None}


def read_durations_csv(path: str | Path, *, service: str | None = None,
                       source: str | None = None) -> pd.DataFrame:
    """Read a CSV of durations: a header row, a duration column and optionally an operation and
    a service column. Returns a table with the columns ``service``, ``operation`` and
    ``duration_s``.

    The duration column is ``duration_ms``, ``duration_s`` or ``duration_us`` (bare numbers in
    that unit; a cell may also carry its own unit, ``4ms``), or ``duration``, whose cells must
    carry their unit (``4ms``, ``1.5s``, ``250us``): a bare number there is refused, since its
    unit would be a guess. The operation column is one of ``operation``, ``op``, ``name``,
    ``span_name``, ``endpoint``, ``route``, ``class``, ``request``; the service column one of
    ``service``, ``service.name``, ``service_name``, ``component`` (without it, every row
    belongs to ``service``, or to a service named after the file). Column names are matched
    without regard to case. Every duration must be > 0. Raises
    :class:`~simarch.errors.SpecError` naming the file, the line and the column.
    """
    path = Path(path)
    src = source or str(path)
    return _durations(_read_text(path, src), service or _name_from(path.stem) or "service", src)


def _durations(text: str, default_service: str, src: str) -> pd.DataFrame:
    if not text.strip():
        raise SpecError("the file is empty: expected a CSV with a header row and a duration "
                        "column (duration_ms, duration_s, duration_us or duration)", (), src)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except csv.Error as e:
        raise SpecError(f"not a readable CSV: {e}", (), src) from None
    names = [h.strip() for h in header]
    lower = [h.lower() for h in names]

    def find(options: Iterable[str]) -> int | None:
        for option in options:
            if option in lower:
                return lower.index(option)
        return None

    duration_col = find(_DURATION_COLUMNS)
    if duration_col is None:
        raise SpecError(f"no duration column: expected one of {', '.join(c for c in _DURATION_COLUMNS if c.isascii())}; the "
                        f"header has {', '.join(map(repr, names)) or 'no columns'}", (), src)
    factor = _DURATION_COLUMNS[lower[duration_col]]
    op_col = find(_OPERATION_COLUMNS)
    svc_col = find(_SERVICE_COLUMNS)
    rows = []
    column = names[duration_col]
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            line = reader.line_num
            if len(row) != len(names):
                raise SpecError(f"line {line}: {len(row)} cells where the header has {len(names)}",
                                (), src)
            seconds = _csv_duration(row[duration_col].strip(), factor, column, line, src)
            op = row[op_col].strip() if op_col is not None else "default"
            svc = row[svc_col].strip() if svc_col is not None else default_service
            if not op:
                raise SpecError(f"line {line}: {names[op_col]} is empty", (), src)
            if not svc:
                raise SpecError(f"line {line}: {names[svc_col]} is empty", (), src)
            rows.append((svc, op, seconds))
    except csv.Error as e:
        raise SpecError(f"not a readable CSV: line {reader.line_num}: {e}", (), src) from None
    if not rows:
        raise SpecError(f"no rows under the header: the file has no durations in {column!r}", (), src)
    return pd.DataFrame(rows, columns=["service", "operation", "duration_s"])


def _csv_duration(cell: str, factor: float | None, column: str, line: int, source: str) -> float:
    where = f"line {line}, column {column!r}"
    try:
        number = float(cell)
    except ValueError:
        number = None
    if number is not None:
        if factor is None:
            raise SpecError(f"{where}: {excerpt(cell)} has no unit: write it as '{cell}ms' (or s, "
                            "us), or name the column duration_ms, duration_s or duration_us",
                            (), source)
        seconds = number * factor
    else:
        try:
            seconds = parse_duration(cell)
        except ValueError:
            units = ", ".join(u for u in DURATION_UNITS if u.isascii())
            raise SpecError(f"{where}: expected a number or a duration such as '4ms' (units: "
                            f"{units}), got {excerpt(cell)}", (), source) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise SpecError(f"{where}: a duration must be > 0, got {excerpt(cell)}", (), source)
    return seconds


def durations_from_frame(frame: pd.DataFrame, *, service: str | None = None,
                         source: str = "DataFrame") -> pd.DataFrame:
    """A table of durations (``service``, ``operation``, ``duration_s``) from a DataFrame with the
    columns a CSV of durations has (see :func:`read_durations_csv`)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    lower = {str(c).strip().lower() for c in frame.columns}
    if "duration" in lower and not any(c in lower for c in _DURATION_COLUMNS if c != "duration"):
        col = next(c for c in frame.columns if str(c).strip().lower() == "duration")
        if pd.api.types.is_numeric_dtype(frame[col]):
            raise SpecError("column 'duration' holds bare numbers: name it duration_ms, "
                            "duration_s or duration_us, or give each value its unit", (), source)
    return _durations(buffer.getvalue(), service or "service", source)


_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _name_from(text: str) -> str:
    """``text`` as a simarch name (letters, digits, '_', '-', not starting with '-')."""
    name = _NOT_A_NAME.sub("_", text).strip("_")
    return name.lstrip("-") or ""


# --------------------------------------------------------------------------- visits and calls


def analyse_spans(spans: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The visits and the calls in a table of spans, and notes on what was left out.

    ``visits`` has a row per visit: ``trace_id``, ``span_id``, ``service``, ``operation`` (its
    span's name), ``entry_operation`` (the operation of the visit the trace started with),
    ``kind``, ``start_ns``, ``end_ns``, ``duration_s``, ``exclusive_s``, ``status``,
    ``parent`` (the ``span_id`` of the calling visit, ``""`` for none), ``parent_service``
    and ``observed`` (``"server"``, or ``"client"`` for a callee seen only through its
    caller's span). ``calls`` has a row per callee visit reached from a calling visit:
    ``trace_id``, ``parent`` and ``parent_service``, ``parent_operation``, ``child`` and
    ``service`` (the callee), ``call_span`` (the outgoing span the call went through, the
    client span if there is one), ``call_start_ns``, ``call_end_ns``, ``child_end_ns``,
    ``parent_end_ns``, ``retry`` (the ``simarch.retry`` attribute of the call span) and
    ``producer`` (the call span is a ``PRODUCER`` span).
    """
    n = len(spans)
    trace = spans["trace_id"].to_numpy(dtype=object)
    sid = spans["span_id"].to_numpy(dtype=object)
    pid = spans["parent_id"].to_numpy(dtype=object)
    service = spans["service"].to_numpy(dtype=object)
    kind = spans["kind"].to_numpy(dtype=np.int64)
    start = spans["start_ns"].to_numpy(dtype=np.int64)
    end = spans["end_ns"].to_numpy(dtype=np.int64)
    notes: list[str] = []

    index: dict[tuple[str, str], int] = {}
    duplicates = 0
    for i in range(n):
        key = (trace[i], sid[i])
        if key in index:
            duplicates += 1
            continue
        index[key] = i
    if duplicates:
        notes.append(f"{duplicates} span(s) appeared twice (same trace and span id): the first "
                     "copy is used")
    parent = np.full(n, -1, dtype=np.int64)
    children: list[list[int]] = [[] for _ in range(n)]
    orphans = 0
    for i in range(n):
        if index.get((trace[i], sid[i])) != i:
            continue  # a duplicate
        if pid[i]:
            p = index.get((trace[i], pid[i]))
            if p is None:
                orphans += 1
            else:
                parent[i] = p
                children[p].append(i)
    if orphans:
        notes.append(f"{orphans} span(s) name a parent that is not in the data: taken as the "
                     "start of their trace")

    # owner[i]: the visit whose own work span i is (i itself for a visit), -1 for an outgoing
    # client/producer span; processed parents first
    owner = np.full(n, -2, dtype=np.int64)
    is_visit = np.zeros(n, dtype=bool)
    order = _parents_first(parent, children, n)
    for i in order:
        p = parent[i]
        k = kind[i]
        if k in (CLIENT, PRODUCER):
            owner[i] = -1
            continue
        if p >= 0 and service[p] == service[i] and owner[p] >= 0 and \
                (k in (INTERNAL, UNSPECIFIED) or kind[p] not in (CLIENT, PRODUCER)):
            owner[i] = owner[p]
        elif p >= 0 and service[p] == service[i] and k in (INTERNAL, UNSPECIFIED) and \
                kind[p] in (CLIENT, PRODUCER):
            owner[i] = -1  # work inside a client span (e.g. its connection set-up)
        else:
            owner[i] = i
            is_visit[i] = True

    # outgoing spans of each visit: spans whose parent is the visit's own work, not their own
    outgoing: dict[int, list[int]] = {}
    for i in range(n):
        p = parent[i]
        if p >= 0 and owner[p] >= 0 and owner[i] != owner[p]:
            outgoing.setdefault(int(owner[p]), []).append(i)

    visit_ids = np.flatnonzero(is_visit)
    exclusive = {}
    for v in visit_ids:
        lo, hi = start[v], end[v]
        intervals = sorted((max(start[o], lo), min(end[o], hi)) for o in outgoing.get(int(v), ()))
        busy = 0
        cur_s = cur_e = None
        for s, e in intervals:
            if e <= s:
                continue
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    busy += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            busy += cur_e - cur_s
        exclusive[int(v)] = (hi - lo - busy) / 1e9

    # calls: the nearest visits under each outgoing span
    call_rows = []
    parent_visit: dict[int, int] = {}
    pseudo_rows = []
    unnamed = 0
    for v, outs in outgoing.items():
        for o in outs:
            found = _nearest_visits(o, children, is_visit)
            if not found:
                if kind[o] in (CLIENT, PRODUCER) and spans["peer"].iat[o]:
                    pseudo_rows.append(o)
                    found = [-1 - o]  # a callee seen from the caller's side
                else:
                    if kind[o] in (CLIENT, PRODUCER):
                        unnamed += 1
                    continue
            for c in found:
                if c >= 0:
                    parent_visit[c] = v
                child_end = end[c] if c >= 0 else end[o]
                call_rows.append((trace[v], sid[v], service[v], v, sid[c] if c >= 0 else sid[o],
                                  service[c] if c >= 0 else _name_from(spans["peer"].iat[o]) or "peer",
                                  sid[o], int(start[o]), int(end[o]), int(child_end), int(end[v]),
                                  int(spans["retry"].iat[o]), bool(kind[o] == PRODUCER)))
    if unnamed:
        notes.append(f"{unnamed} client span(s) reached no traced service and name no peer "
                     f"({', '.join(_PEER_KEYS[:3])}): left out of the call graph")

    names = spans["name"].to_numpy(dtype=object)
    status = spans["status"].to_numpy(dtype=np.int64)
    rows = []
    for v in visit_ids:
        v = int(v)
        p = parent_visit.get(v, -1)
        rows.append((trace[v], sid[v], service[v], names[v], int(kind[v]), int(start[v]),
                     int(end[v]), (end[v] - start[v]) / 1e9, exclusive[v], int(status[v]),
                     sid[p] if p >= 0 else "", service[p] if p >= 0 else "", "server", p))
    for o in pseudo_rows:
        callee = _name_from(spans["peer"].iat[o]) or "peer"
        caller = int(owner[parent[o]])
        rows.append((trace[o], sid[o], callee, names[o], int(kind[o]), int(start[o]), int(end[o]),
                     (end[o] - start[o]) / 1e9, (end[o] - start[o]) / 1e9, int(status[o]),
                     sid[caller], service[caller], "client", caller))
    visits = pd.DataFrame(rows, columns=["trace_id", "span_id", "service", "operation", "kind",
                                         "start_ns", "end_ns", "duration_s", "exclusive_s",
                                         "status", "parent", "parent_service", "observed", "_p"])
    # the operation of the visit each trace started with (a request's class in simarch's terms)
    keys = list(zip(visits["trace_id"], visits["span_id"], strict=True))
    op_of = dict(zip(keys, visits["operation"], strict=True))
    parent_of = dict(zip(keys, visits["parent"], strict=True))

    def entry_op(t: str, s: str) -> str:
        seen = 0
        while parent_of.get((t, s)) and seen < 10_000:
            s = parent_of[(t, s)]
            seen += 1
        return op_of[(t, s)]

    visits["entry_operation"] = [entry_op(t, s) for t, s in zip(visits["trace_id"], visits["span_id"],
                                                                 strict=True)]
    visits = visits.drop(columns="_p")
    calls = pd.DataFrame(call_rows, columns=["trace_id", "parent", "parent_service", "_pv", "child",
                                             "service", "call_span", "call_start_ns", "call_end_ns",
                                             "child_end_ns", "parent_end_ns", "retry", "producer"])
    calls["parent_operation"] = [names[p] for p in calls["_pv"]]
    calls["parent_entry_operation"] = [entry_op(t, s) for t, s in
                                       zip(calls["trace_id"], calls["parent"], strict=True)]
    calls = calls.drop(columns="_pv")
    return visits, calls, notes


def _parents_first(parent: np.ndarray, children: list[list[int]], n: int) -> list[int]:
    order: list[int] = []
    stack = [i for i in range(n) if parent[i] < 0]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(children[i])
    if len(order) < n:  # spans whose parent links form a loop: treat the rest as roots
        seen = set(order)
        order += [i for i in range(n) if i not in seen]
    return order


def _nearest_visits(o: int, children: list[list[int]], is_visit: np.ndarray) -> list[int]:
    if is_visit[o]:
        return [o]
    found, stack = [], list(children[o])
    while stack:
        c = stack.pop()
        if is_visit[c]:
            found.append(c)
        else:
            stack.extend(children[c])
    return found


# --------------------------------------------------------------------------- the call graph


def call_graph(visits: pd.DataFrame, calls: pd.DataFrame, *, operations: str = "span") -> nx.DiGraph:
    """The call graph between services that the visits and calls of :func:`analyse_spans` show.

    Nodes are services, with ``visits`` (their number), ``observed`` (``"server"``, or
    ``"client"`` for a service seen only from its callers' spans) and ``fanout``
    (``"parallel"`` when, in most of its visits that call two services or more, calls to
    different services overlap in time; else ``"sequential"``) and ``parallel_share`` (that
    share). An edge ``u -> v`` has: ``calls`` (first attempts from ``u``'s visits to ``v``;
    retries, marked by a ``simarch.retry`` attribute > 0, are not counted), ``visits`` (the
    visits of ``u``), ``mean`` (calls per visit of ``u``), ``probability`` (the share of
    ``u``'s visits that call ``v`` at least once, among those of the operations that make the
    call: ``eligible`` visits), ``by_operation`` (operation of ``u`` →
    probability), ``requests`` (the operations of ``u`` that make the call, or ``None`` when
    all do), ``parallel`` (the share of the calls that overlap a call to another service in the
    same visit), ``after_parent`` (the share of the callee's visits that end after the
    calling visit has ended), ``after_entry`` (the share that end after the trace's first
    visit has ended) and ``mode`` (``"call"``, ``"forward"`` when the callee mostly ends after
    its caller but before the request does, ``"async"`` when it mostly ends after the request
    or the call went through a ``PRODUCER`` span). ``operations`` is ``"span"`` (a visit's
    operation is its span name) or ``"entry"`` (the operation of the trace's first visit).
    """
    g = nx.DiGraph()
    op_col = "operation" if operations == "span" else "entry_operation"
    parent_op = "parent_operation" if operations == "span" else "parent_entry_operation"
    for svc, group in visits.groupby("service", sort=False):
        observed = "client" if (group["observed"] == "client").all() else "server"
        g.add_node(svc, visits=len(group), observed=observed, fanout="sequential",
                   parallel_share=0.0, operations=sorted(group[op_col].unique()))
    if calls.empty:
        return g
    entry_end = visits[visits["parent"] == ""].set_index("trace_id")["end_ns"]
    entry_end = entry_end[~entry_end.index.duplicated()]
    calls = calls[calls["service"] != calls["parent_service"]].copy()
    calls["entry_end_ns"] = calls["trace_id"].map(entry_end).fillna(np.iinfo(np.int64).max)

    # overlap of calls to different services within one calling visit: a call span overlaps
    # when a span of a call to another service is open during it
    calls = calls.reset_index(drop=True)
    overlap = np.zeros(len(calls), dtype=bool)
    multi: dict[str, list[bool]] = {}
    key = pd.factorize(calls["trace_id"] + "/" + calls["parent"])[0]
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    who_all = pd.factorize(calls["service"])[0]
    span_all = pd.factorize(calls["call_span"])[0]
    s_all = calls["call_start_ns"].to_numpy()
    e_all = calls["call_end_ns"].to_numpy()
    caller = calls["parent_service"].to_numpy(dtype=object)
    for rows in np.split(order, bounds):
        if rows.size < 2:
            continue
        who = who_all[rows]
        if (who == who[0]).all():
            continue
        s, e, sp = s_all[rows], e_all[rows], span_all[rows]
        hit = np.zeros(rows.size, dtype=bool)
        for lo in range(0, rows.size, 512):  # blocks bound the memory of a visit with many calls
            b = slice(lo, lo + 512)
            hit[b] = ((who[b, None] != who[None, :]) & (s[None, :] < e[b, None])
                      & (s[b, None] < e[None, :]) & (sp[b, None] != sp[None, :])).any(axis=1)
        overlap[rows] = hit
        multi.setdefault(caller[rows[0]], []).append(bool(hit.any()))
    calls["overlap"] = overlap
    for svc, flags in multi.items():
        share = float(np.mean(flags))
        g.nodes[svc]["parallel_share"] = share
        g.nodes[svc]["fanout"] = "parallel" if share > 0.5 else "sequential"

    visits_by_svc = visits.groupby("service").size()
    ops_by_svc = {svc: group.groupby(op_col).size() for svc, group in visits.groupby("service")}
    for (u, v), group in calls.groupby(["parent_service", "service"], sort=False):
        first = group[group["retry"] <= 0]
        n_u = int(visits_by_svc.get(u, 0))
        callers = first.drop_duplicates("parent")
        per_op = callers.groupby(parent_op).size()
        ops_u = ops_by_svc.get(u, pd.Series(dtype=int))
        by_op = {str(op): float(per_op.get(op, 0) / count) for op, count in ops_u.items()}
        making = [op for op, p in by_op.items() if p > 0]
        requests = None if len(making) == len(by_op) else sorted(making)
        eligible = int(sum(ops_u.get(op, 0) for op in making)) if making else n_u
        after_parent = float((group["child_end_ns"] > group["parent_end_ns"]).mean())
        after_entry = float((group["child_end_ns"] > group["entry_end_ns"]).mean())
        producer = bool(group["producer"].mean() > 0.5)
        if producer or (after_parent > 0.5 and after_entry > 0.5):
            mode = "async"
        elif after_parent > 0.5:
            mode = "forward"
        else:
            mode = "call"
        g.add_edge(u, v, calls=len(first), visits=n_u, eligible=eligible,
                   mean=len(first) / n_u if n_u else math.nan,
                   probability=len(callers) / eligible if eligible else math.nan,
                   by_operation=by_op, requests=requests,
                   parallel=float(group["overlap"].mean()),
                   after_parent=after_parent, after_entry=after_entry, mode=mode)
    return g
