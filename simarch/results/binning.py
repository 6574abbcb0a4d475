"""Time binning: the one place where requests are grouped into windows of completion time
(``Result.timeseries``, the timeline plots and the HTML report all use it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.metrics import ratio
from ..model.status import ERROR_NAMES, OK


def window_edges(start: float, end: float, width: float) -> np.ndarray:
    """Edges of windows of ``width`` seconds from ``start`` to ``end``; the last window may
    be shorter (it ends at ``end``)."""
    edges = np.arange(start, end, width)
    return np.append(edges[edges < end - 1e-9], end)


def nice_width(span: float, max_bins: int = 60) -> float:
    """A round window width giving at most ``max_bins`` windows over ``span`` seconds."""
    for w in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / w <= max_bins:
            return float(w)
    return span / max_bins


def bin_requests(end_s: np.ndarray, status: np.ndarray, latency_s: np.ndarray,
                 edges: np.ndarray) -> list[dict[str, Any]]:
    """Per window of completion time: requests completed, throughput and availability of
    successful ones, their p50 and p99 latency (ms), and the errors by cause."""
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, end_s, side="right") - 1
    inside = (idx >= 0) & (idx < n_bins)
    rows = []
    for b in range(n_bins):
        m = inside & (idx == b)
        st = status[m]
        ok = st == OK
        width = edges[b + 1] - edges[b]
        lok = latency_s[m][ok] * 1e3
        rows.append({
            "start_s": edges[b],
            "end_s": edges[b + 1],
            "completed": int(m.sum()),
            "throughput_rps": float(ok.sum()) / width,
            "availability": ratio(float(ok.sum()), float(len(st))),
            "p50_ms": float(np.percentile(lok, 50)) if len(lok) else math.nan,
            "p99_ms": float(np.percentile(lok, 99)) if len(lok) else math.nan,
            **{name: int((st == i).sum()) for i, name in enumerate(ERROR_NAMES, start=1)},
        })
    return rows


def step_areas(t: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The integral from ``t[0]`` to each ``x`` of the step function that is ``v[k]`` from
    ``t[k]`` on (a count over time: instances in service, say)."""
    t = np.asarray(t, dtype=float)
    v = np.asarray(v, dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(v[:-1] * np.diff(t))])
    k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 1)
    return cum[k] + v[k] * (np.asarray(x, dtype=float) - t[k])


def step_means(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The time average of the step function (``t``, ``v``, see :func:`step_areas`) over
    each window between consecutive ``edges``."""
    area = step_areas(t, v, edges)
    return np.diff(area) / np.diff(edges)
