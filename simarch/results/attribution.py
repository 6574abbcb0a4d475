"""Tail attribution: where the time of the requests in a latency band goes, per component
and phase (network, wait, service, backoff, hedge, timeout, failed), from each request's
critical path (:mod:`simarch.results.hops`).

A band is a range of quantiles of the successful requests' latency, taken within each
request class (and over all classes for the class ``all``): the median band p45-p55, the
p99 band p99-p99.9 and the slowest requests beyond p99.9 by default. For each band the
table gives the mean time per request spent in each (component, phase) and its share of the
band's mean latency; the shares of a band add up to 1, because the pieces of every request
add up to its latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SimarchError
from .hops import N_PHASES, PHASES, Hops, band_bounds, in_band

DEFAULT_BANDS = ("median", "p99", "p99.9")
MAX_PER_BAND = 20_000  # requests a band is measured on, at most (chosen evenly by arrival)
COLUMNS = ["band", "lo", "hi", "class", "component", "phase", "requests", "mean_ms", "share",
           "band_mean_ms"]


def _spread(idx: np.ndarray, cap: int) -> np.ndarray:
    if len(idx) <= cap:
        return idx
    return idx[np.linspace(0, len(idx) - 1, cap).round().astype(np.int64)]


def attribution_rows(result: Any, bands: Any = DEFAULT_BANDS, *, classes: Sequence[str] | None = None,
                     per_class: bool = True) -> list[dict[str, Any]]:
    """The attribution of ``result``'s latency bands, as plain rows (see :data:`COLUMNS`).

    ``bands`` is one band or a list of them (see :func:`~simarch.results.hops.band_bounds`);
    ``classes`` limits the request classes (default: all, and the class ``all``);
    ``per_class=False`` gives only the class ``all``."""
    hops: Hops | None = result.hops
    if hops is None:
        raise SimarchError("this result has no hop records: run it with hops on (the default for "
                           "runs of up to 2 million requests; simulate(..., hops=True))")
    if isinstance(bands, str) or (isinstance(bands, tuple) and len(bands) == 2
                                  and all(isinstance(x, (int, float)) for x in bands)):
        bands = [bands]
    parsed = []
    for b in bands:
        try:
            parsed.append(band_bounds(b))
        except ValueError as e:
            raise SimarchError(str(e)) from None
    lat = result.end - result.start
    base = (result.status == 0) & (hops.request_root >= 0)
    groups: list[tuple[str, np.ndarray]] = [("all", np.flatnonzero(base))]
    if per_class and len(result.classes) > 1:
        groups += [(c, np.flatnonzero(base & (result.cls == i))) for i, c in enumerate(result.classes)]
    if classes is not None:
        unknown = [c for c in classes if c not in result.classes and c != "all"]
        if unknown:
            raise SimarchError(f"no request class {unknown[0]!r}; the classes are "
                               f"{', '.join(result.classes)}")
        groups = [(c, idx) for c, idx in groups if c in classes]
    picks: list[tuple[str, str, float, float, np.ndarray]] = []
    for cname, idx in groups:
        for label, lo, hi in parsed:
            sel = idx[in_band(lat[idx], lo, hi)]
            picks.append((cname, label, lo, hi, _spread(sel, MAX_PER_BAND)))
    need = np.unique(np.concatenate([p[4] for p in picks])) if picks else np.zeros(0, np.int64)
    matrix = hops.phase_matrix(need, result.start[need], result.end[need]) if len(need) else np.zeros((0, 0))
    where = {int(r): i for i, r in enumerate(need.tolist())}
    rows: list[dict[str, Any]] = []
    for cname, label, lo, hi, sel in picks:
        if not len(sel):
            continue
        m = matrix[[where[int(r)] for r in sel.tolist()]]
        mean = m.mean(axis=0)
        band_mean = float(lat[sel].mean())
        for col in np.flatnonzero(mean > 0):
            comp, phase = divmod(int(col), N_PHASES)
            rows.append({"band": label, "lo": lo, "hi": hi, "class": cname,
                         "component": hops.components[comp], "phase": PHASES[phase],
                         "requests": int(len(sel)), "mean_ms": 1e3 * float(mean[col]),
                         "share": float(mean[col]) / band_mean if band_mean > 0 else float("nan"),
                         "band_mean_ms": 1e3 * band_mean})
    return rows


def contrast(rows: list[dict[str, Any]], tail: str = "p99", base: str = "median", cls: str = "all",
             top: int = 3) -> dict[str, Any] | None:
    """What sets the ``tail`` band apart from the ``base`` band, for class ``cls``: its
    ``top`` contributors (component, phase, share in the tail, share in the base) and the
    (component, phase) whose share grows most. ``None`` when either band is empty."""
    t = [r for r in rows if r["band"] == tail and r["class"] == cls]
    b = {(r["component"], r["phase"]): r for r in rows if r["band"] == base and r["class"] == cls}
    if not t or not b:
        return None
    t.sort(key=lambda r: -r["share"])
    entries = [{"component": r["component"], "phase": r["phase"], "share": r["share"],
                "mean_ms": r["mean_ms"],
                "base_share": b[(r["component"], r["phase"])]["share"] if (r["component"], r["phase"]) in b else 0.0,
                "base_ms": b[(r["component"], r["phase"])]["mean_ms"] if (r["component"], r["phase"]) in b else 0.0}
               for r in t]
    grow = max(entries, key=lambda e: e["share"] - e["base_share"])
    return {"tail": tail, "base": base, "class": cls, "requests": t[0]["requests"],
            "tail_ms": t[0]["band_mean_ms"], "base_ms": next(iter(b.values()))["band_mean_ms"],
            "base_requests": next(iter(b.values()))["requests"],
            "top": entries[:top], "grows": grow}


def verdict(c: dict[str, Any]) -> str:
    """One sentence on what differs between the bands: ``the p99 is waiting at db, not
    serving`` (the phase that grows most, against the phase it displaces)."""
    g = c["grows"]
    where, phase = g["component"], g["phase"]
    doing = {"wait": f"waiting for a worker at {where}", "service": f"served at {where}",
             "network": f"on the network to {where}", "backoff": f"in backoff before retrying {where}",
             "hedge": f"waiting for a hedged call to {where}", "timeout": f"in calls to {where} that time out",
             "failed": f"in failed attempts at {where}"}[phase]
    not_doing = " (not served)" if phase == "wait" else ""
    return (f"the {c['tail']} band spends {g['share']:.0%} of its time {doing}{not_doing}, "
            f"against {g['base_share']:.0%} in the {c['base']} band")
