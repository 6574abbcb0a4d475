"""Arrival-rate profiles: the rate of an open workload as a function of simulated time."""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable
from pathlib import Path

from ..errors import SpecError, excerpt
from .files import open_text
from .spec import WorkloadSpec


def read_trace(path: Path) -> tuple[list[float], list[float]]:
    """A rate trace: CSV with a header, columns ``second`` and ``rate`` (requests per second)."""
    where = ("workload", "profile", "trace", "file")
    try:
        f = open_text(path, "trace")
    except ValueError as e:
        raise SpecError(str(e), where) from None
    times: list[float] = []
    rates: list[float] = []
    with f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "second" not in cols or "rate" not in cols:
            raise SpecError(f"trace '{path}' needs columns 'second' and 'rate' (has: {excerpt(', '.join(cols), 80, quote=False)})",
                            ("workload", "profile", "trace", "file"))
        for line, row in enumerate(reader, start=2):
            try:
                t, r = float(row["second"]), float(row["rate"])
            except (TypeError, ValueError):
                raise SpecError(f"trace '{path}' line {line}: 'second' and 'rate' must be numbers",
                                ("workload", "profile", "trace", "file")) from None
            if r < 0 or not math.isfinite(r) or not math.isfinite(t) or (times and t <= times[-1]):
                raise SpecError(f"trace '{path}' line {line}: rates must be finite and >= 0, seconds finite and increasing",
                                ("workload", "profile", "trace", "file"))
            times.append(t)
            rates.append(r)
    if not times:
        raise SpecError(f"trace '{path}' has no rows", ("workload", "profile", "trace", "file"))
    return times, rates


def trace_path(wl: WorkloadSpec, base_dir: Path | None) -> Path:
    """The trace file of a workload, relative to the spec file's folder."""
    assert wl.profile.trace is not None
    path = Path(wl.profile.trace.file)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def rate_profile(wl: WorkloadSpec, load: float, base_dir: Path | None,
                 horizon: float) -> tuple[Callable[[float], float], float] | None:
    """``(rate(t), peak rate over [0, horizon])`` for a non-constant profile, else ``None``.

    Rates include the load multiplier. Multiplier profiles (ramp, step, spike, diurnal) scale
    ``workload.rate``; a trace gives absolute rates, scaled by the load multiplier only.
    """
    p = wl.profile
    kind = p.kind
    if kind == "constant":
        return None
    base = (wl.rate or 0.0) * load
    if kind == "ramp":
        r = p.ramp
        assert r is not None

        def ramp(t: float) -> float:
            x = min(max((t - r.at) / r.over, 0.0), 1.0)
            return base * (r.start + (r.end - r.start) * x)
        return ramp, base * max(r.start, r.end)
    if kind in ("step", "spike"):
        s = p.step or p.spike
        assert s is not None

        def step(t: float) -> float:
            inside = t >= s.at and (s.until is None or t < s.until)
            return base * (s.to if inside else 1.0)
        return step, base * max(1.0, s.to)
    if kind == "diurnal":
        d = p.diurnal
        assert d is not None

        def diurnal(t: float) -> float:
            return base * (1.0 + d.amplitude * math.cos(2 * math.pi * (t - d.peak) / d.period))
        return diurnal, base * (1.0 + d.amplitude)
    # trace
    tr = p.trace
    assert tr is not None
    times, rates = read_trace(trace_path(wl, base_dir))
    span = times[-1] - times[0] + (times[1] - times[0] if len(times) > 1 else 1.0)
    t0 = times[0]

    def trace(t: float) -> float:
        if tr.loop:
            t = t0 + (t - t0) % span
        i = bisect.bisect_right(times, t) - 1
        return load * rates[i] if i >= 0 else 0.0
    return trace, load * max(rates)
