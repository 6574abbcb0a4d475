"""Sampled requests as traces that tracing tools read: OpenTelemetry's OTLP/JSON (Jaeger,
Tempo, any OpenTelemetry collector) and the Chrome trace-event format (Perfetto,
``chrome://tracing``).

The spans are made from the hop records (:mod:`simarch.results.hops`); nothing is simulated
again. The span model, one trace per exported request:

* a **root span** of the request (kind CLIENT, service ``client``, named after the request
  class): from the request's arrival to its answer, so its duration is the request's latency;
* a **SERVER span per visit** of an instance (named after the request class, in the resource
  of that instance: ``service.name`` the component, ``service.instance.id`` the instance),
  with three span events for its phases: ``wait`` (at its arrival: waiting for a worker),
  ``service`` (when it got a worker: its service time) and ``calls`` (when its service ended,
  if it made calls while it held the worker); each event's ``duration_ms`` says how long the
  phase lasted;
* a **CLIENT span per call row**: a timed call, and each attempt of a retried or hedged call
  (named ``call <callee>``, in the caller's resource), whose ``simarch.retry`` is the
  attempt's number less one;
* an **INTERNAL span** per pause between attempts (``backoff``) and per wait before a hedge
  was sent (``hedge wait``).

Every span's parent is the span of its parent row: a visit's is the call that reached it (or
the visit that called it directly, when the call had no timeout or retries); the entry
visit's is the root span. Calls made while a visit held its worker lie within the visit's
span; a ``forward`` visit (attribute ``simarch.relation: forward``) starts when its parent
released its worker, a synchronous replica copy (``copy``) when the primary's visit ended,
and asynchronous work (``async``: fire-and-forget calls, a queue's consumers, asynchronous
replica copies, hedged attempts that lost) may outlive its parent and the request, as
OpenTelemetry allows. A callee's visit may also outlive a call that timed out.

Times are simulated seconds since the start of the run (the warm-up included), as integer
nanoseconds (``round(t * 1e9)``) after an epoch: :data:`EPOCH`, 2026-01-01T00:00:00Z, unless
``epoch=`` says otherwise, so that the same spec and seed give the same file, byte for byte.
Trace ids are derived from the design, its load, seed, warm-up and window, and the request's
root id; span ids are the row ids (plus one). Which requests are exported is decided by a
:class:`TraceSample`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..errors import SimarchError, SpecError, argument, excerpt
from ..model.status import OK, STATUS_NAMES, TIMEOUT
from ..model.units import parse_duration
from .hops import (
    ABANDONED,
    AFTER,
    ARRIVE,
    ASYNC,
    BACKOFF,
    CALL,
    CODE,
    COPY,
    END,
    HEDGE,
    ID,
    IN,
    PARENT,
    SERVED,
    START,
    VISIT,
    WHAT,
)
from .io import atomic_write

if TYPE_CHECKING:
    from .result import Result

__all__ = ["EPOCH", "LIMIT", "TraceExport", "TraceSample", "TraceSelection", "chrome_trace",
           "otlp_traces", "trace_format", "write_traces"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  #: simulated time 0 in the OTLP files, by default
LIMIT = 1000  #: traces exported at most, unless a rule says ``limit=N``
FORMATS = ("otlp", "chrome")

# OTLP span kinds and status codes (opentelemetry/proto/trace/v1/trace.proto)
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT = 1, 2, 3
STATUS_ERROR = 2
RELATIONS = {AFTER: "forward", ASYNC: "async", COPY: "copy"}
FAILURE = {1: "rejected", 2: "timed out", 3: "failed"}
CLIENT = "client"  # the service of the root spans


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class TraceSample:
    """Which recorded requests to export as traces: the union of the rules given, at most
    ``limit`` of them.

    ``every=N`` keeps one request in N by arrival order (the first, the N+1-th, ...);
    ``failed`` every request that did not succeed (rejected, timed out or failed);
    ``slower_than`` every request slower than a percentile of the successful requests'
    latency (``"p99"``, ``"p99.9"``, ``"p50"``) or than a duration (``"50ms"``, or seconds).
    With no rule at all, every request is kept. When more requests match than ``limit``
    (``None``: no cap), those matched by ``failed`` or ``slower_than`` go first, and within a
    group that does not fit, the ones kept are spread evenly over the window.

    :meth:`parse` reads the command line's form, ``"1/100,failed,>p99,limit=500"``.
    """

    every: int | None = None
    failed: bool = False
    slower_than: str | float | None = None
    limit: int | None = LIMIT

    def __post_init__(self) -> None:
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, int | np.integer)
                                       or self.every < 1):
            raise SpecError(f"every is a whole number N >= 1 (one request in N), got {excerpt(self.every)}",
                            ("every",))
        if not isinstance(self.failed, bool):
            raise SpecError(f"failed is true or false, got {excerpt(self.failed)}", ("failed",))
        if self.slower_than is not None:
            _slow_rule(self.slower_than)
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int | np.integer)
                                       or self.limit < 1):
            raise SpecError(f"limit is a whole number >= 1 or None (no cap), got {excerpt(self.limit)}",
                            ("limit",))

    @classmethod
    def of(cls, sample: TraceSample | str | None) -> TraceSample:
        """A sample from what the API takes: ``None`` (every request, capped at
        :data:`LIMIT`), a rule string (see :meth:`parse`) or a :class:`TraceSample`."""
        if sample is None:
            return cls()
        if isinstance(sample, TraceSample):
            return sample
        if isinstance(sample, str):
            return cls.parse(sample)
        raise SpecError(f"a trace sample is a TraceSample or a rule such as '1/100,failed,>p99', got "
                        f"{excerpt(sample)}", ("sample",))

    @classmethod
    def parse(cls, text: str) -> TraceSample:
        """Read rules separated by commas: ``1/N`` (one request in N), ``failed``, ``>p99``
        (slower than that percentile of the successful requests; ``>p99.9``, ``>p50``),
        ``>50ms`` (slower than a duration), ``all`` (every request) and ``limit=N`` (at most
        N traces; ``limit=none``: no cap). Raises :class:`SpecError` for anything else."""
        if not isinstance(text, str) or not text.strip():
            raise SpecError(f"give sampling rules such as '1/100,failed,>p99', got {excerpt(text)}", ("sample",))
        every: int | None = None
        failed = False
        slower: str | float | None = None
        limit: int | None = LIMIT
        for raw in text.split(","):
            tok = raw.strip().lower()
            m = re.fullmatch(r"1\s*/\s*(\d+)", tok)
            if m or tok == "all":
                n = int(m[1]) if m else 1
                if n < 1:
                    raise SpecError(f"'{raw.strip()}': one request in N needs N >= 1", ("sample",))
                if every is not None and every != n:
                    raise SpecError(f"give one '1/N' rule, got 1/{every} and '{raw.strip()}'", ("sample",))
                every = n
            elif tok in ("failed", "failures", "errors"):
                failed = True
            elif tok.startswith(">"):
                if slower is not None:
                    raise SpecError(f"give one '>' rule, got '>{slower}' and '{raw.strip()}'", ("sample",))
                slower = tok[1:].strip()
                with argument("sample"):
                    _slow_rule(slower)
            elif tok.startswith(("limit=", "max=")):
                value = tok.split("=", 1)[1].strip()
                if value in ("none", "all", "0"):
                    limit = None
                elif value.isdigit() and int(value) >= 1:
                    limit = int(value)
                else:
                    raise SpecError(f"'{raw.strip()}': the limit is a whole number >= 1 (or none)", ("sample",))
            else:
                raise SpecError(
                    f"unknown sampling rule {excerpt(raw.strip())}: the rules are 1/N (one request in "
                    "N), failed, >pNN (slower than a percentile, e.g. >p99), >DURATION (e.g. "
                    ">50ms), all, and limit=N, separated by commas", ("sample",))
        return cls(every=every, failed=failed, slower_than=slower, limit=limit)

    @property
    def rules(self) -> str:
        """The rules (without the limit), as :meth:`parse` reads them."""
        parts = []
        if self.every is not None:
            parts.append("all" if self.every == 1 else f"1/{self.every}")
        if self.failed:
            parts.append("failed")
        if self.slower_than is not None:
            s = self.slower_than
            parts.append(f">{s}" if isinstance(s, str) else f">{float(s):g}s")
        return ",".join(parts) or "all"

    def __str__(self) -> str:
        return f"{self.rules},limit={'none' if self.limit is None else self.limit}"

    def select(self, result: Result) -> TraceSelection:
        """The requests of ``result`` to export (indices of its request records, in arrival
        order). Raises :class:`~simarch.errors.SimarchError` when the run has no hop records."""
        hops = _hops_of(result)
        root = hops.request_root
        n = len(root)
        recorded = np.flatnonzero(root >= 0) if n else np.zeros(0, np.int64)
        order = recorded[np.argsort(result.start[recorded], kind="stable")]
        lat = result.latency[order]
        plain = self.every is None and not self.failed and self.slower_than is None
        by_every = np.zeros(len(order), bool)
        if plain or self.every is not None:
            by_every = np.arange(len(order)) % (1 if plain else self.every) == 0
        by_rule = np.zeros(len(order), bool)
        if self.failed:
            by_rule |= result.status[order] != OK
        threshold = None
        if self.slower_than is not None:
            threshold = _threshold(result, self.slower_than)
            if threshold is not None:
                by_rule |= lat > threshold
        first = order[by_rule]
        rest = order[by_every & ~by_rule]
        matched = len(first) + len(rest)
        if self.limit is not None and matched > self.limit:
            if len(first) >= self.limit:
                first, rest = _spread(first, self.limit), rest[:0]
            else:
                rest = _spread(rest, self.limit - len(first))
        keep = np.concatenate([first, rest]).astype(np.int64)
        keep = keep[np.argsort(result.start[keep], kind="stable")]
        return TraceSelection(requests=keep, matched=matched, recorded=len(recorded), total=n,
                              sample=self, threshold=threshold, every=hops.every)


def _slow_rule(value: str | float) -> tuple[str, float]:
    """``("p", percentile)`` or ``("s", seconds)`` for a ``slower_than`` rule."""
    if isinstance(value, str):
        s = value.strip().lower()
        m = re.fullmatch(r"p(\d+(?:\.\d+)?)", s)
        if m:
            q = 99.9 if m[1] == "999" else float(m[1])
            if not 0 < q < 100:
                raise SpecError(f"a percentile is between p0 and p100 (p99, p99.9), got {excerpt(value)}",
                                ("slower_than",))
            return "p", q
        try:
            return "s", parse_duration(s)
        except ValueError:
            raise SpecError(f"'>' takes a percentile (p99, p99.9) or a duration (50ms), got "
                            f"{excerpt(value)}", ("slower_than",)) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise SpecError(f"slower_than is a percentile ('p99') or a duration ('50ms', or seconds >= 0), "
                        f"got {excerpt(value)}", ("slower_than",))
    return "s", float(value)


def _threshold(result: Result, rule: str | float) -> float | None:
    """Seconds a request must exceed to match a ``slower_than`` rule (``None``: no successful
    request to take a percentile of)."""
    kind, x = _slow_rule(rule)
    if kind == "s":
        return x
    ok = result.latency[result.status == OK]
    return float(np.percentile(ok, x)) if len(ok) else None


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``idx`` (in arrival order), evenly spread: the first, the last, and between."""
    n = len(idx)
    if k >= n:
        return idx
    if k == 1:
        return idx[:1]
    return idx[np.arange(k) * (n - 1) // (k - 1)]


@dataclass(frozen=True)
class TraceSelection:
    """What a :class:`TraceSample` picked: ``requests`` (indices of the request records, in
    arrival order), how many ``matched`` the rules before the limit, how many requests were
    ``recorded`` hop by hop of the ``total``, the latency ``threshold`` (s) of a
    ``slower_than`` rule, and the run's hop sampling (``every``: one request in N recorded)."""

    requests: np.ndarray
    matched: int
    recorded: int
    total: int
    sample: TraceSample
    threshold: float | None = None
    every: int = 1

    @property
    def capped(self) -> bool:
        return len(self.requests) < self.matched

    def describe(self) -> str:
        """One line: what was kept, and why not more."""
        rules = f"'{self.sample.rules}'"
        if self.threshold is not None and _slow_rule(self.sample.slower_than)[0] == "p":
            rules += f" (>{self.sample.slower_than}: slower than {self.threshold * 1e3:.4g} ms)"
        text = f"{len(self.requests):,} of {self.total:,} requests"
        if self.capped:
            text += f": {self.matched:,} matched {rules}, capped at limit={self.sample.limit:,}"
        else:
            text += f" matched {rules}"
        if self.every > 1:
            text += (f"; the run recorded one request in {self.every} hop by hop, so only those could be "
                     "exported (run with hops=True for all)")
        return text


def _hops_of(result: Result):
    hops = getattr(result, "hops", None)
    if hops is None:
        raise SimarchError("this run has no hop records (it was run with hops=False), so it has no "
                           "traces: run it again with hop records on (the default, or hops=True)")
    return hops


# --------------------------------------------------------------------------- the spans


@dataclass(slots=True)
class _Span:
    """One span, in neither format yet (times: integer ns since the start of the run)."""

    trace: int  # index of the trace in the export
    span_id: int
    parent_id: int  # 0: none
    kind: int  # an OTLP span kind
    cat: str  # request, visit, call, backoff, hedge
    name: str
    start: int
    end: int
    resource: int  # the pool index of its resource; -1: the client
    attrs: dict[str, Any]
    events: list[tuple[str, int, int]] = field(default_factory=list)  # (name, at, duration), ns
    error: str | None = None
    depth: int = 0
    free_from: int = 0  # a visit: when its own phases end (its service), so calls may begin


def _ns(t: float) -> int:
    return round(t * 1e9)


class _Builder:
    """Spans of the selected requests of one result, one request at a time."""

    def __init__(self, result: Result, selection: TraceSelection):
        self.result = result
        self.hops = _hops_of(result)
        self.selection = selection
        self.salt = _salt(result)

    def trace_id(self, root: int) -> str:
        return hashlib.blake2b(f"{self.salt}\x00{root}".encode(), digest_size=16).hexdigest()

    def traces(self) -> Iterator[tuple[int, str, list[_Span]]]:
        for t, req in enumerate(self.selection.requests.tolist()):
            root = int(self.hops.request_root[req])
            yield t, self.trace_id(root), self.spans(t, req, root)

    def spans(self, t: int, req: int, root: int) -> list[_Span]:
        r, hops = self.result, self.hops
        cls_name = r.classes[int(r.cls[req])]
        key = int(hops.request_key[req]) if len(hops.request_key) > req else -1
        status = int(r.status[req])
        base = {"simarch.class": cls_name}
        if key >= 0:
            base["simarch.key"] = key
        top = _Span(t, root + 1, 0, KIND_CLIENT, "request", cls_name, _ns(r.start[req]), _ns(r.end[req]), -1,
                    {**base, "simarch.status": STATUS_NAMES[status], "simarch.request": req},
                    error=_failure(status, "request {}"))
        out = [top]
        idx = hops.rows_of(req)
        if not len(idx):
            return out
        rows = hops.rows[idx]
        rows = rows[np.argsort(rows[:, ID], kind="stable")].tolist()
        pos = {int(row[ID]): k for k, row in enumerate(rows)}
        has_calls = {int(row[PARENT]) for row in rows}  # parent codes: id * 4 + relation
        depth: dict[int, int] = {}
        owner: dict[int, int] = {}

        def place(k: int) -> tuple[int, int]:
            """The depth of row ``k`` and the pool of its resource (its visit, or its caller's)."""
            chain = []
            j = k
            while j not in depth:
                chain.append(j)
                if len(chain) > len(rows):
                    raise SimarchError(f"the hop records of request {req} have a cycle of parents")
                p = pos.get(int(rows[j][PARENT]) // 4)
                if p is None:
                    break
                j = p
            d, pool = (depth[j], owner[j]) if j in depth else (0, -1)
            for j in reversed(chain):
                row = rows[j]
                d += 1
                if (int(row[CODE]) // 4) % 4 == VISIT:
                    pool = int(row[WHAT])
                depth[j], owner[j] = d, pool
            return depth[k], owner[k]

        comps, pools = hops.components, hops.pool_names
        for k, row in enumerate(rows):
            rid, pcode, code = int(row[ID]), int(row[PARENT]), int(row[CODE])
            parent, rel = pcode // 4, pcode % 4
            kind, st = (code // 4) % 4, code % 4
            d, pool = place(k)
            parent_span = parent + 1 if parent in pos or parent == root else root + 1
            a, s, sv, e = _ns(row[ARRIVE]), _ns(row[START]), _ns(row[SERVED]), _ns(row[END])
            if kind == VISIT:
                comp = comps[int(hops.pool_component[int(row[WHAT])])]
                attrs = {"simarch.component": comp, "simarch.instance": pools[int(row[WHAT])], **base,
                         "simarch.status": STATUS_NAMES[st]}
                if rel != IN:
                    attrs["simarch.relation"] = RELATIONS[rel]
                events = [("wait", a, s - a), ("service", s, sv - s)]
                if rid * 4 + IN in has_calls:
                    events.append(("calls", sv, e - sv))
                out.append(_Span(t, rid + 1, parent_span, KIND_SERVER, "visit", cls_name, a, e, pool, attrs,
                                 events, _failure(st, "{} at " + pools[int(row[WHAT])]), d, sv))
                continue
            callee = comps[int(row[WHAT])]
            attrs = {"simarch.component": callee}
            attempt = (code % ABANDONED) // 16
            if kind == CALL:
                attrs["peer.service"] = callee
                attrs.update(base)
                abandoned = bool(code & ABANDONED)
                if abandoned:
                    attrs["simarch.abandoned"] = True
                else:
                    attrs["simarch.status"] = STATUS_NAMES[st]
                if attempt >= 1:
                    attrs["simarch.retry"] = attempt - 1
                if st == TIMEOUT and not abandoned:
                    attrs["simarch.timeout"] = True
                if rel != IN:
                    attrs["simarch.relation"] = RELATIONS[rel]
                out.append(_Span(t, rid + 1, parent_span, KIND_CLIENT, "call", f"call {callee}", a, e, pool,
                                 attrs, error=None if abandoned else _failure(st, f"call to {callee} {{}}"),
                                 depth=d, free_from=a))
            elif kind in (BACKOFF, HEDGE):
                attrs.update(base)
                # a backoff follows attempt n and precedes retry n; a hedge wait is in attempt n
                attrs["simarch.retry"] = attempt if kind == BACKOFF else attempt - 1
                name, cat = ("backoff", "backoff") if kind == BACKOFF else ("hedge wait", "hedge")
                out.append(_Span(t, rid + 1, parent_span, KIND_INTERNAL, cat, name, a, e, pool, attrs,
                                 depth=d, free_from=a))
        return out


def _failure(status: int, text: str) -> str | None:
    """The message of a span's ERROR status: ``text`` with how it ended in its ``{}``."""
    return None if status == OK else text.format(FAILURE[status])


def _salt(result: Result) -> str:
    """What makes one run's trace ids differ from another's: design, load, seed, window."""
    seed = result.seed
    if isinstance(seed, np.random.SeedSequence):
        seed = f"{seed.entropy}/{tuple(seed.spawn_key)}"
    return f"simarch\x00{result.design}\x00{float(result.load)!r}\x00{seed}\x00{float(result.warmup)!r}\x00" \
           f"{float(result.duration)!r}"


def _selection(result: Result, sample: TraceSample | str | None) -> TraceSelection:
    with argument("sample"):
        return TraceSample.of(sample).select(result)


# --------------------------------------------------------------------------- OTLP/JSON


def otlp_traces(result: Result, *, sample: TraceSample | str | None = None,
                epoch: datetime | str | float = EPOCH) -> dict[str, Any]:
    """The sampled requests of ``result`` as an OTLP/JSON ``TracesData`` document.

    One ``resourceSpans`` per instance that has spans (``service.name`` its component,
    ``service.instance.id`` the instance) and one for the clients (``service.name: client``,
    the root spans), each with one ``scopeSpans`` whose scope is ``simarch`` and its version.
    Ids are hex strings and times decimal strings of integer nanoseconds, as the OTLP/JSON
    encoding has them; ``epoch`` is the wall-clock time of simulated time 0 (a timezone-aware
    ``datetime``, an ISO 8601 string, or seconds since 1970). ``sample`` picks the requests
    (:class:`TraceSample`; default: all of them, at most :data:`LIMIT`). See the module
    docstring for the span model.
    """
    return _otlp(result, _selection(result, sample), epoch)


def _otlp(result: Result, selection: TraceSelection, epoch: datetime | str | float) -> dict[str, Any]:
    with argument("epoch"):
        at = _epoch_ns(epoch)
    b = _Builder(result, selection)
    hops = b.hops
    by_resource: dict[int, list[dict[str, Any]]] = {}
    for _, trace_id, spans in b.traces():
        for sp in spans:
            by_resource.setdefault(sp.resource, []).append(_otlp_span(sp, trace_id, at))
    kinds = {name: c.get("kind") for name, c in (result.spec.get("components") or {}).items()
             if isinstance(c, dict)}
    scope = {"name": "simarch", "version": __version__}
    out = []
    for res in sorted(by_resource):
        if res < 0:
            attrs = {"service.name": CLIENT, "service.namespace": result.design}
        else:
            comp = hops.components[int(hops.pool_component[res])]
            attrs = {"service.name": comp, "service.namespace": result.design,
                     "service.instance.id": hops.pool_names[res]}
            if kinds.get(comp):
                attrs["simarch.kind"] = kinds[comp]
        out.append({"resource": {"attributes": _attributes(attrs)},
                    "scopeSpans": [{"scope": scope, "spans": by_resource[res]}]})
    return {"resourceSpans": out}


def _otlp_span(sp: _Span, trace_id: str, at: int) -> dict[str, Any]:
    d: dict[str, Any] = {"traceId": trace_id, "spanId": f"{sp.span_id:016x}"}
    if sp.parent_id:
        d["parentSpanId"] = f"{sp.parent_id:016x}"
    d.update(name=sp.name, kind=sp.kind, startTimeUnixNano=str(at + sp.start),
             endTimeUnixNano=str(at + sp.end), attributes=_attributes(sp.attrs))
    if sp.events:
        d["events"] = [{"timeUnixNano": str(at + t), "name": name,
                        "attributes": _attributes({"duration_ms": dur / 1e6})}
                       for name, t, dur in sp.events]
    if sp.error is not None:
        d["status"] = {"code": STATUS_ERROR, "message": sp.error}
    return d


def _attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in attrs.items()]


def _value(v: Any) -> dict[str, Any]:
    """An OTLP ``AnyValue``: int64 is a decimal string in the protobuf JSON mapping."""
    t = type(v)
    if t is str:
        return {"stringValue": v}
    if t is bool:
        return {"boolValue": v}
    if t is int:
        return {"intValue": str(v)}
    if t is float:
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _epoch_ns(epoch: datetime | str | float) -> int:
    """Nanoseconds since 1970-01-01T00:00:00Z of ``epoch``."""
    if isinstance(epoch, str):
        try:
            epoch = datetime.fromisoformat(epoch.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"an epoch is an ISO 8601 time such as '2026-01-01T00:00:00Z', got "
                             f"{excerpt(epoch)}") from None
    if isinstance(epoch, datetime):
        if epoch.tzinfo is None:
            raise ValueError("an epoch needs a timezone (e.g. '2026-01-01T00:00:00Z' or "
                             "datetime(..., tzinfo=UTC))")
        delta = epoch - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(epoch, bool) or not isinstance(epoch, int | float) or not epoch >= 0:
        raise ValueError(f"an epoch is a datetime, an ISO 8601 string or seconds since 1970 (>= 0), got "
                         f"{excerpt(epoch)}")
    return epoch * 10**9 if isinstance(epoch, int) else round(epoch * 1e9)


# --------------------------------------------------------------------------- Chrome trace events


def chrome_trace(result: Result, *, sample: TraceSample | str | None = None) -> dict[str, Any]:
    """The sampled requests of ``result`` in the Chrome trace-event format (JSON object form),
    which Perfetto and ``chrome://tracing`` open.

    Each process (``pid``) is a component (``client`` holds the root spans of the requests);
    each request has a thread (``tid``) of its own in every process it visits, named after its
    class and index (``read #17``), and more threads (``read #17 (2)``) where its slices would
    overlap without nesting, as the viewers need slices on one thread to nest. Every span is a
    complete event (``"ph": "X"``) with its attributes, trace and span ids in ``args``; a
    visit's ``wait`` and ``service`` phases are slices nested at its start, and its calls sit
    inside it after them. ``ts`` and ``dur`` are whole microseconds of simulated time since
    the start of the run (the format's unit; Perfetto would truncate fractions, which could
    break the nesting), so a phase shorter than half a microsecond shows as 0.
    """
    return _chrome(result, _selection(result, sample))


def _us(ns: int) -> int:
    return (ns + 500) // 1000


def _chrome(result: Result, selection: TraceSelection) -> dict[str, Any]:
    b = _Builder(result, selection)
    hops = b.hops
    n_traces = len(selection.requests)
    meta: list[dict[str, Any]] = []
    slices: list[tuple[tuple, dict[str, Any]]] = []
    procs: set[int] = set()
    threads: dict[tuple[int, int], tuple[int, str, int]] = {}  # (pid, tid) -> (trace, name, lane)
    lane_tid: dict[tuple[int, int, int], int] = {}  # (pid, trace, lane > 0) -> its tid
    last_tid: dict[int, int] = {}  # pid -> the last tid given to an extra lane
    for t, trace_id, spans in b.traces():
        label = f"{spans[0].name} #{int(selection.requests[t])}"
        by_pid: dict[int, list[_Span]] = {}
        for sp in spans:
            pid = 1 if sp.resource < 0 else 2 + int(hops.pool_component[sp.resource])
            by_pid.setdefault(pid, []).append(sp)
        for pid, group in by_pid.items():
            procs.add(pid)
            for sp, lane in _lanes(group):
                if lane == 0:
                    tid = t + 1  # a request's first thread has the same tid in every process
                elif (pid, t, lane) in lane_tid:
                    tid = lane_tid[(pid, t, lane)]
                else:
                    tid = lane_tid[(pid, t, lane)] = last_tid[pid] = last_tid.get(pid, n_traces) + 1
                threads.setdefault((pid, tid), (t, label if lane == 0 else f"{label} ({lane + 1})", lane))
                start, end = _us(sp.start), _us(sp.end)
                args: dict[str, Any] = dict(sp.attrs)
                if sp.resource >= 0:
                    args["simarch.instance"] = args.get("simarch.instance", hops.pool_names[sp.resource])
                if sp.error is not None:
                    args["error"] = sp.error
                args.update(trace_id=trace_id, span_id=f"{sp.span_id:016x}")
                if sp.parent_id:
                    args["parent_span_id"] = f"{sp.parent_id:016x}"
                ev = {"name": sp.name, "cat": sp.cat, "ph": "X", "ts": start, "dur": end - start,
                      "pid": pid, "tid": tid, "args": args}
                slices.append(((pid, tid, start, -(end - start), sp.depth, 0, sp.span_id), ev))
                for k, (name, at, dur) in enumerate(sp.events):
                    if name == "calls":
                        continue
                    a, z = _us(at), _us(at + dur)
                    if z > a:
                        slices.append(((pid, tid, a, -(z - a), sp.depth, 1 + k, sp.span_id),
                                       {"name": name, "cat": "phase", "ph": "X", "ts": a, "dur": z - a,
                                        "pid": pid, "tid": tid,
                                        "args": {"duration_ms": dur / 1e6, "trace_id": trace_id,
                                                 "span_id": f"{sp.span_id:016x}"}}))
    names = {1: CLIENT} | {2 + i: c for i, c in enumerate(hops.components)}
    for pid in sorted(procs):
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": names[pid]}})
        meta.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    for (pid, tid), (t, name, lane) in sorted(threads.items()):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        meta.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                     "args": {"sort_index": (t + 1) * 1024 + lane}})
    slices.sort(key=lambda s: s[0])
    other = {"simarch_version": __version__, "design": result.design, "load": float(result.load),
             "seed": str(result.seed), "sample": str(selection.sample), "traces": n_traces,
             "matched": selection.matched,
             "time": "simulated microseconds since the start of the run (warm-up included)"}
    return {"traceEvents": meta + [ev for _, ev in slices], "displayTimeUnit": "ms", "otherData": other}


def _lanes(spans: list[_Span]) -> Iterator[tuple[_Span, int]]:
    """Give each span a lane (0, 1, ...) so that the spans on a lane nest: each lies within
    the one it overlaps, or touches none; a span inside a visit begins after the visit's own
    phases (its service), which are drawn as slices of their own. Times in whole µs."""
    order = sorted(spans, key=lambda sp: (_us(sp.start), -_us(sp.end), sp.depth, sp.span_id))
    stacks: list[list[tuple[int, int]]] = []  # per lane: the open (end, free_from), innermost last
    for sp in order:
        a, e = _us(sp.start), _us(sp.end)
        lane = -1
        for k, stack in enumerate(stacks):
            while stack and stack[-1][0] <= a:
                stack.pop()  # ended: spans come in order of their start
            if not stack or (e <= stack[-1][0] and a >= stack[-1][1]):
                lane = k
                break
        if lane < 0:
            lane = len(stacks)
            stacks.append([])
        stacks[lane].append((e, _us(sp.free_from) if sp.cat == "visit" else a))
        yield sp, lane


# --------------------------------------------------------------------------- files


def trace_format(path: str | Path, format: str | None = None) -> str:
    """The format to write ``path`` in: ``format`` if given (``"otlp"`` or ``"chrome"``), else
    ``"chrome"`` for a name ending in ``.chrome.json`` and ``"otlp"`` for any other."""
    if format is not None:
        f = str(format).strip().lower()
        if f not in FORMATS:
            raise SpecError(f"a trace format is otlp or chrome, got {excerpt(format)}", ("format",))
        return f
    return "chrome" if Path(path).name.lower().endswith(".chrome.json") else "otlp"


@dataclass(frozen=True)
class TraceExport:
    """What :func:`write_traces` wrote: the ``path``, the ``format`` and the
    :class:`TraceSelection`; ``str()`` is the line the command line prints."""

    path: Path
    format: str
    selection: TraceSelection

    @property
    def traces(self) -> int:
        return len(self.selection.requests)

    def __str__(self) -> str:
        label = "OTLP/JSON" if self.format == "otlp" else "Chrome trace events"
        n = self.traces
        return f"wrote {n:,} trace{'' if n == 1 else 's'} ({label}) to {self.path}: {self.selection.describe()}"


def write_traces(result: Result, path: str | Path, *, format: str | None = None,
                 sample: TraceSample | str | None = None, epoch: datetime | str | float = EPOCH) -> TraceExport:
    """Write the sampled requests of ``result`` as traces to ``path`` and say what was written.

    ``format`` is ``"otlp"`` (:func:`otlp_traces`) or ``"chrome"`` (:func:`chrome_trace`);
    by default it follows the name (:func:`trace_format`: ``*.chrome.json`` is Chrome, any
    other OTLP). An OTLP file is one line of JSON, so it is also a JSON-lines file, which the
    OpenTelemetry collector's ``otlpjsonfile`` receiver reads. Missing folders on the path
    are created; the file is written to a temporary name and renamed, so no reader sees half
    of it. ``sample`` and ``epoch`` as in :func:`otlp_traces`.
    """
    path = Path(path)
    fmt = trace_format(path, format)
    selection = _selection(result, sample)
    if fmt == "otlp":
        text = json.dumps(_otlp(result, selection, epoch), separators=(",", ":")) + "\n"
    else:
        text = _chrome_text(_chrome(result, selection))
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)
    return TraceExport(path, fmt, selection)


def _chrome_text(doc: dict[str, Any]) -> str:
    """The Chrome document with one event a line (valid JSON, and readable in a diff)."""
    dump = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
    events = ",\n".join(dump(ev) for ev in doc["traceEvents"])
    rest = "".join(f",\n{dump(k)}:{dump(v)}" for k, v in doc.items() if k != "traceEvents")
    return f'{{"traceEvents":[\n{events}\n]{rest}\n}}\n'
