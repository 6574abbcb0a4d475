"""Hop records after the run: where each recorded request spent its time.

The runtime writes one row per visit and per call the caller timed itself (the layout is in
:mod:`simarch.runtime.hops`). :class:`Hops` holds them as columns and answers three
questions:

* which request each row belongs to (its root, found by pointer jumping over the parent ids);
* each request's **critical path**: a cover of its whole latency, ``[arrival, answer]``, by
  pieces ``(component, phase, seconds)`` that add up to the latency exactly
  (:meth:`Hops.timeline`, :meth:`Hops.phase_matrix`);
* the attribution of a latency band to components and phases (``Result.attribution``).

How the cover is made. A request's time is a window, ``[arrival, answer]``, filled by its
entry visit. A visit's own time is its **wait** for a worker and its **service**; the time
before it reached the component, after its caller sent it, is its **network** time. Its
window from the end of its service to the release of its worker is filled by the calls it
made while holding the worker, and the time after the release by its ``forward`` calls and
its synchronous replica copies (whose callers wait for them). Windows are filled backwards
from their end: the member that ended last at or before the point reached covers its own
extent, and the point moves to where it arrived; so in a parallel fan-out the slowest call
is the one on the path (and only one member of a parallel group ever is), and in a chain of
calls every call is. A gap between two members is the later one's network time (the only
thing the engine does between a call's start and the callee's arrival is the network
latency); a gap at the end of a window, where no member follows, is network time of the
window's owner (a call lost on a cut link).

The caller's own rows lump their whole extent into one phase: **timeout** (a call that
timed out: the caller waited the whole timeout for it, whatever the callee did),
**failed** (an attempt that failed and was retried or fell back), **backoff** (the pause
between attempts) and **hedge** (the wait for the first attempt before the hedge that won
was sent). Each is charged to the component called. Asynchronous calls, queue consumers'
visits, losing hedged attempts and asynchronous replica copies are on no request's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.status import OK, TIMEOUT

# the layout of a row (simarch.runtime.hops); repeated here, as the results read plain arrays
ID, PARENT, WHAT, ARRIVE, START, SERVED, END, CODE = range(8)
STRIDE = 8
IN, AFTER, ASYNC, COPY = 0, 1, 2, 3
VISIT, CALL, BACKOFF, HEDGE = 0, 1, 2, 3
ABANDONED = 1 << 12

PHASES: tuple[str, ...] = ("network", "wait", "service", "backoff", "hedge", "timeout", "failed")
NETWORK, WAIT, SERVICE, P_BACKOFF, P_HEDGE, P_TIMEOUT, P_FAILED = range(len(PHASES))
N_PHASES = len(PHASES)
ROW_BYTES = 8 * STRIDE


@dataclass
class Hops:
    """The hop records of one run, as columns (see :mod:`simarch.runtime.hops`).

    ``rows`` is an ``(n, 8)`` float64 array; ``components`` the component names (the
    ``what`` of call rows indexes it), ``pool_component`` the component of each instance
    (the ``what`` of a visit indexes it) and ``pool_names`` its name; ``parallel`` says which
    components fan out in parallel. ``request_root`` gives, per request record of the
    result, its root id (-1 when it was not recorded) and ``request_key`` its key;
    ``every`` is the sampling (one request in ``every`` was recorded).
    """

    rows: np.ndarray
    components: list[str]
    pool_component: np.ndarray
    pool_names: list[str]
    parallel: np.ndarray
    request_root: np.ndarray
    request_key: np.ndarray
    every: int = 1
    _index: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.request_root.nbytes + self.request_key.nbytes)

    # ------------------------------------------------------------------ decoding
    def component_of(self) -> np.ndarray:
        """The component index of every row (a visit's component, a call row's callee)."""
        what = self.rows[:, WHAT].astype(np.int64)
        kind = self.kind()
        out = what.copy()
        visit = kind == VISIT
        out[visit] = self.pool_component[what[visit]]
        return out

    def kind(self) -> np.ndarray:
        return (self.rows[:, CODE].astype(np.int64) // 4) % 4

    def relation(self) -> np.ndarray:
        return self.rows[:, PARENT].astype(np.int64) % 4

    def status(self) -> np.ndarray:
        return self.rows[:, CODE].astype(np.int64) % 4

    def attempt(self) -> np.ndarray:
        return (self.rows[:, CODE].astype(np.int64) % ABANDONED) // 16

    def request_of(self) -> np.ndarray:
        """The index of the request record each row belongs to (-1: a request that did not
        finish in the window, e.g. a queue consumer's visit after the run's end)."""
        if "request" in self._index:
            return self._index["request"]
        n = self.n_rows
        ids = self.rows[:, ID].astype(np.int64)
        parent = self.rows[:, PARENT].astype(np.int64) // 4
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]

        def row_of(x: np.ndarray) -> np.ndarray:
            pos = np.searchsorted(sorted_ids, x)
            pos = np.minimum(pos, max(n - 1, 0))
            hit = (sorted_ids[pos] == x) if n else np.zeros(len(x), bool)
            return np.where(hit, order[pos], -1)

        # pointer doubling: anc[i] is a row above row i until its root id is known (top[i])
        up = row_of(parent)
        top = np.where(up < 0, parent, -1)
        anc = up
        while True:
            idx = np.flatnonzero(anc >= 0)
            if not len(idx):
                break
            a = anc[idx]
            t, nxt = top[a], anc[a]  # (read before this pass changes them)
            reached = t >= 0
            top[idx[reached]] = t[reached]
            anc[idx[reached]] = -1
            anc[idx[~reached]] = nxt[~reached]
        roots = self.request_root
        r_order = np.argsort(roots, kind="stable")
        r_sorted = roots[r_order]
        pos = np.searchsorted(r_sorted, top)
        pos = np.minimum(pos, max(len(r_sorted) - 1, 0))
        hit = (r_sorted[pos] == top) & (top >= 0) if len(r_sorted) else np.zeros(n, bool)
        req = np.where(hit, r_order[pos], -1)
        self._index["request"] = req
        return req

    def _groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows sorted by request, and the start of each request's run of rows."""
        if "groups" not in self._index:
            req = self.request_of()
            order = np.argsort(req, kind="stable")
            bounds = np.searchsorted(req[order], np.arange(len(self.request_root) + 1))
            self._index["groups"] = (order, bounds)
        return self._index["groups"]

    def rows_of(self, request: int) -> np.ndarray:
        """The rows of request record ``request`` (row indices)."""
        order, bounds = self._groups()
        return order[bounds[request]:bounds[request + 1]]

    # ------------------------------------------------------------------ the critical path
    def pieces(self, request: int, t0: float, t1: float) -> list[tuple[int, int, float]]:
        """The cover of request ``request``'s window ``[t0, t1]``: ``(component, phase,
        seconds)`` pieces, in no particular order, adding up to ``t1 - t0``."""
        out: list[tuple[int, int, float]] = []
        _Cover(self, self.rows_of(request), out).request(t0, t1)
        return out

    def timeline(self, request: int, t0: float, t1: float) -> list[tuple[str, str, float, float]]:
        """Request ``request``'s critical path in time order: ``(component, phase, start,
        end)`` segments covering ``[t0, t1]``."""
        segs: list[tuple[int, int, float, float]] = []
        _Cover(self, self.rows_of(request), None, segs).request(t0, t1)
        segs.sort(key=lambda s: (s[2], s[3]))
        return [(self.components[c], PHASES[p], a, b) for c, p, a, b in segs]

    def phase_matrix(self, requests: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Seconds per request (rows, in the order of ``requests``) and (component, phase)
        (columns ``component * N_PHASES + phase``)."""
        width = len(self.components) * N_PHASES
        m = np.zeros((len(requests), width))
        for i, (r, a, b) in enumerate(zip(requests.tolist(), t0.tolist(), t1.tolist(), strict=True)):
            acc = [0.0] * width
            for c, p, d in self.pieces(r, a, b):
                acc[c * N_PHASES + p] += d
            m[i] = acc
        return m


class _Cover:
    """The critical-path cover of one request (see the module docstring)."""

    def __init__(self, hops: Hops, idx: np.ndarray, out: list | None, segs: list | None = None):
        rows = hops.rows[idx]
        self.hops = hops
        self.out = out
        self.segs = segs
        self.rows = rows.tolist()
        ids = rows[:, ID].astype(np.int64).tolist()
        self.by_id = dict(zip(ids, range(len(ids)), strict=True))
        self.children: dict[int, list[int]] = {}
        for i, r in enumerate(self.rows):
            p = int(r[PARENT])
            self.children.setdefault(p, []).append(i)  # keyed by the parent code (id * 4 + relation)
        self.pool_component = hops.pool_component
        self.parallel = hops.parallel
        self._ext: dict[int, float] = {}

    # -- output
    def add(self, comp: int, phase: int, a: float, b: float) -> None:
        if b <= a:
            return
        if self.out is not None:
            self.out.append((comp, phase, b - a))
        if self.segs is not None:
            self.segs.append((comp, phase, a, b))

    # -- rows
    def comp(self, i: int) -> int:
        r = self.rows[i]
        what = int(r[WHAT])
        return int(self.pool_component[what]) if (int(r[CODE]) // 4) % 4 == VISIT else what

    def kids(self, rid: int, rel: int) -> list[int]:
        return self.children.get(rid * 4 + rel, ())

    def extent_end(self, i: int) -> float:
        """When the caller of row ``i`` went on: its end, or the end of what follows it
        (forward calls, synchronous copies)."""
        e = self._ext.get(i)
        if e is None:
            r = self.rows[i]
            rid = int(r[ID])
            e = r[END]
            for j in self.kids(rid, AFTER):
                e = max(e, self.extent_end(j))
            for j in self.kids(rid, COPY):
                e = max(e, self.extent_end(j))
            self._ext[i] = e
        return e

    # -- windows
    def request(self, t0: float, t1: float) -> None:
        # the root is the one parent id that is no row's id
        tops = [p for p in self.children if p % 4 == IN and p // 4 not in self.by_id]
        members = self.children[tops[0]] if tops else []
        self.window(members, t0, t1, -1, None)

    def window(self, members: list[int], lo: float, hi: float, owner: int, parallel_group: Any) -> None:
        """Fill ``[lo, hi]`` backwards with ``members`` (row indices); ``owner`` is the
        component charged for a gap with no member after it (-1: none). Members in the
        set ``parallel_group`` exclude one another: at most one of them is on the path."""
        cand = sorted(members, key=lambda j: self.extent_end(j))
        tau = hi
        nxt = -1
        used_group = False
        k = len(cand) - 1
        while k >= 0:
            j = cand[k]
            k -= 1
            ej = self.extent_end(j)
            if ej > tau:
                continue
            if parallel_group is not None and j in parallel_group:
                if used_group:
                    continue
                used_group = True
            self.gap(tau, ej, nxt, owner)
            self.member(j)
            tau = self.rows[j][ARRIVE]
            nxt = j
        self.gap(tau, lo, nxt, owner)

    def gap(self, hi: float, lo: float, nxt: int, owner: int) -> None:
        """``[lo, hi]``, before member ``nxt`` (-1: at the window's end): its network time."""
        if hi <= lo:
            return
        comp = self.comp(nxt) if nxt >= 0 else owner
        if comp >= 0:
            self.add(comp, NETWORK, lo, hi)

    def member(self, i: int) -> None:
        """Cover row ``i``'s extent: ``[arrive, extent_end]``."""
        r = self.rows[i]
        kind = (int(r[CODE]) // 4) % 4
        comp = self.comp(i)
        rid = int(r[ID])
        a, e = r[ARRIVE], r[END]
        if kind == VISIT:
            self.add(comp, WAIT, a, r[START])
            self.add(comp, SERVICE, r[START], r[SERVED])
            inner = list(self.kids(rid, IN))
            par = set(inner) if self.parallel[comp] else None
            self.window(inner, r[SERVED], e, comp, par)
            after = list(self.kids(rid, AFTER))
            copies = list(self.kids(rid, COPY))
            if after or copies:
                self.window(after + copies, e, self.extent_end(i), comp, set(copies) or None)
            return
        if kind == BACKOFF:
            self.add(comp, P_BACKOFF, a, e)
            return
        if kind == HEDGE:
            self.add(comp, P_HEDGE, a, e)
            return
        status = int(r[CODE]) % 4
        if status == TIMEOUT:
            self.add(comp, P_TIMEOUT, a, e)
        elif status != OK:
            self.add(comp, P_FAILED, a, e)
        else:
            self.window(list(self.kids(rid, IN)), a, e, comp, None)


def band_bounds(band: Any) -> tuple[str, float, float]:
    """A latency band as ``(label, lower quantile, upper quantile)``: ``"median"`` (p45 to
    p55), ``"p99"`` (p99 to p99.9), ``"p99.9"`` (beyond p99.9), ``"all"``, or a pair of
    quantiles in [0, 1] (``(0.9, 0.99)``)."""
    named = {"median": ("median", 0.45, 0.55), "p50": ("median", 0.45, 0.55),
             "p99": ("p99", 0.99, 0.999), "p99.9": ("p99.9", 0.999, 1.0), "tail": ("p99.9", 0.999, 1.0),
             "all": ("all", 0.0, 1.0)}
    if isinstance(band, str):
        key = band.strip().lower()
        if key in named:
            return named[key]
        raise ValueError(f"a latency band is one of {', '.join(sorted(set(named)))} or a pair of "
                         f"quantiles such as (0.9, 0.99), got {band!r}")
    try:
        lo, hi = (float(x) for x in band)
    except (TypeError, ValueError):
        raise ValueError(f"a latency band is a name or a pair of quantiles, got {band!r}") from None
    if not (0.0 <= lo < hi <= 1.0):
        raise ValueError(f"a band's quantiles satisfy 0 <= lo < hi <= 1, got ({lo:g}, {hi:g})")
    return f"p{_pct(lo)}-p{_pct(hi)}", lo, hi


def _pct(q: float) -> str:
    return f"{100 * q:g}"


def in_band(lat: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Which of the latencies ``lat`` lie in the band between quantiles ``lo`` and ``hi``
    (inclusive of the band's lower edge; the top band includes the maximum)."""
    if not len(lat):
        return np.zeros(0, bool)
    a = np.quantile(lat, lo) if lo > 0 else -math.inf
    b = np.quantile(lat, hi) if hi < 1 else math.inf
    return (lat >= a) & (lat < b) if hi < 1 else (lat >= a)
