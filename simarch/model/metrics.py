"""How the latency figures are summarised: which percentiles, in which unit."""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
LATENCY_KEYS = ("mean", "p50", "p90", "p95", "p99", "p999", "max")


def latency_stats_ms(lat_s: np.ndarray) -> dict[str, float]:
    """Mean, percentiles and max of latencies given in seconds, returned in milliseconds."""
    if len(lat_s) == 0:
        return {k: math.nan for k in LATENCY_KEYS}
    ms = np.multiply(lat_s, 1e3, dtype=float)  # one new float64 array, whatever the input
    out = {"mean": float(ms.mean())}
    top = float(ms.max())
    qs = np.percentile(ms, [q for _, q in PERCENTILES], overwrite_input=True)  # ms is ours to reorder
    out.update({name: float(v) for (name, _), v in zip(PERCENTILES, qs, strict=True)})
    out["max"] = top
    return out


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is zero."""
    return a / b if b else math.nan


def float32_array(buf) -> np.ndarray:
    """A float64 copy of an ``array('f')`` buffer (empty-safe)."""
    return np.frombuffer(buf, dtype=np.float32).astype(float) if len(buf) else np.zeros(0)
