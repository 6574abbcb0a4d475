"""Arrival-rate profiles (the rate of an open workload as a function of simulated time), and
the back-of-envelope numbers of a workload: the rate derived from its daily active users and
the storage its writes fill (:func:`derive_rate`, :func:`storage_estimate`,
:class:`WorkloadSummary`)."""

from __future__ import annotations

import bisect
import csv
import html
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import SpecError, excerpt
from .files import open_text
from .spec import WorkloadSpec
from .units import DAYS_PER_YEAR, SECONDS_PER_DAY, format_duration, format_size


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
    the workload's base rate (``rate``, or the peak rate derived from ``daily_active_users``:
    :attr:`WorkloadSpec.base_rate`); a trace gives absolute rates, scaled by the load
    multiplier only.
    """
    p = wl.profile
    kind = p.kind
    if kind == "constant":
        return None
    base = wl.base_rate * load
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


# --------------------------------------------------------------------------- back of the envelope

SECONDS_PER_YEAR = DAYS_PER_YEAR * SECONDS_PER_DAY
SECONDS_PER_MONTH = SECONDS_PER_YEAR / 12  # a month is a twelfth of a 365-day year


@dataclass(frozen=True)
class RateDerivation:
    """The open-loop rate of a workload given by its users, step by step: requests per day
    = ``daily_active_users`` × ``requests_per_user``; mean rate = requests per day / 86,400 s;
    peak rate = mean × ``peak_to_mean``, the rate simulated at 1x; × ``load`` the rate of a
    run at that load multiplier."""

    daily_active_users: float
    requests_per_user: float  # per user per day
    peak_to_mean: float  # 1 when not given
    peak_given: bool
    load: float = 1.0
    profile: str = "constant"
    profile_peak: float | None = None  # the highest rate of a ramp, step, spike or diurnal profile

    @property
    def requests_per_day(self) -> float:
        return self.daily_active_users * self.requests_per_user

    @property
    def mean_rate(self) -> float:
        """Requests per second on average over a day (at 1x)."""
        return self.requests_per_day / SECONDS_PER_DAY

    @property
    def peak_rate(self) -> float:
        """Requests per second at the peak: the rate simulated at 1x (``WorkloadSpec.base_rate``)."""
        return self.requests_per_day / SECONDS_PER_DAY * self.peak_to_mean

    @property
    def simulated_rate(self) -> float:
        """The peak rate × the load multiplier: the rate of a run (before a profile)."""
        return self.peak_rate * self.load

    def lines(self) -> list[str]:
        out = [f"{_n(self.daily_active_users)} daily active users x {_n(self.requests_per_user)} "
               f"requests/user/day = {_n(self.requests_per_day)} requests/day"]
        line = f"/ {SECONDS_PER_DAY:,.0f} s = {_n(self.mean_rate)} req/s mean"
        if self.peak_given:
            line += f"; x {_n(self.peak_to_mean)} peak-to-mean = {_n(self.peak_rate)} req/s at the peak"
            line += " (simulated at 1x)" if self.load == 1 else ""
        else:
            line += ", simulated as the peak (no peak_to_mean given)" if self.load == 1 else ""
        if self.load != 1:
            line += f"; x {self.load:g} load = {_n(self.simulated_rate)} req/s simulated"
        out.append(line)
        if self.profile_peak is not None:
            out.append(f"the '{self.profile}' profile multiplies this rate over time: up to "
                       f"{_n(self.profile_peak)} req/s")
        return out


@dataclass(frozen=True)
class StoreEstimate:
    """The data one datastore keeps: its logical size and the copies of it."""

    name: str
    shards: int
    replicas: int
    classes: tuple[str, ...]  # the storing request classes that reach it
    share: float  # the fraction of all requests that store data in it
    logical: float  # bytes: at the end of the retention, or stored per year without one

    @property
    def stored(self) -> float:
        """Bytes on disk over all replicas: ``replicas`` × the logical size."""
        return self.logical * self.replicas

    @property
    def per_shard(self) -> float:
        """Bytes of one shard, its replicas included."""
        return self.stored / self.shards

    @property
    def per_copy(self) -> float:
        """Bytes one replica of one shard holds (one box's disk)."""
        return self.logical / self.shards


@dataclass(frozen=True)
class StorageEstimate:
    """How fast a workload's data grows, and how large it is at the end of the retention.

    Storage fills at the mean rate, not at the peak: bytes per second = mean rate × load ×
    ``share`` (the weight share of the request classes that store data: those whose op is
    ``write`` with ``per_write``, every class with ``per_request``) × ``bytes_each``.
    """

    mean_rate: float  # requests per second, the load multiplier included
    load: float
    from_rate: bool  # the spec gives 'rate', taken as the mean rate
    share: float
    classes: tuple[str, ...]
    per_request: bool
    bytes_each: float
    retention: float | None  # seconds
    stores: tuple[StoreEstimate, ...] = ()

    @property
    def write_rate(self) -> float:
        """Requests per second that store data (at the mean rate)."""
        return self.mean_rate * self.share

    @property
    def bytes_per_second(self) -> float:
        return self.write_rate * self.bytes_each

    @property
    def per_day(self) -> float:
        return self.bytes_per_second * SECONDS_PER_DAY

    @property
    def per_month(self) -> float:
        return self.bytes_per_second * SECONDS_PER_MONTH

    @property
    def per_year(self) -> float:
        return self.bytes_per_second * SECONDS_PER_YEAR

    @property
    def logical(self) -> float | None:
        """Bytes kept at the end of the retention (one copy), ``None`` without a retention."""
        return None if self.retention is None else self.bytes_per_second * self.retention

    def lines(self) -> list[str]:
        rate = f"{_n(self.mean_rate / self.load)} req/s"
        rate += " (the spec's rate, taken as the mean)" if self.from_rate else " mean"
        if self.load != 1:
            rate += f" x {self.load:g} load = {_n(self.mean_rate)} req/s"
        if self.per_request:
            first = f"{rate} x {format_size(self.bytes_each)} per request"
        else:
            names = ", ".join(f"'{c}'" for c in self.classes)
            first = (f"{rate} x {_pct(self.share)} that write (class{'es' if len(self.classes) > 1 else ''} "
                     f"{names}) = {_n(self.write_rate)} writes/s x {format_size(self.bytes_each)}")
        out = [f"{first} = {format_size(self.bytes_per_second)}/s",
               f"= {format_size(self.per_day)}/day, {format_size(self.per_month)}/month, "
               f"{format_size(self.per_year)}/year (a month is 1/12 of a 365-day year)"]
        logical = self.logical
        if logical is not None:
            out.append(f"after {_span(self.retention or 0.0)}: {format_size(logical)} logical")
        per = "" if logical is not None else "/year"
        for s in self.stores:
            whose = ""
            if s.classes != self.classes:
                whose = f" ({', '.join(repr(c) for c in s.classes)}: {_pct(s.share)} of requests)"
            line = f"{s.name}{whose}: {format_size(s.logical)}{per}"
            if s.replicas > 1:
                line += f" x {s.replicas} replicas = {format_size(s.stored)}{per}"
            if s.shards > 1:
                line += (f"; / {s.shards} shards = {format_size(s.per_shard)}{per} per shard"
                         + (f", {format_size(s.per_copy)}{per} on each replica" if s.replicas > 1 else ""))
            out.append(line)
        if not self.stores:
            out.append("no datastore receives this data: the sizes above are the logical data")
        return out


@dataclass(frozen=True)
class WorkloadSummary:
    """The back-of-envelope numbers of a workload: the rate derived from its users, and the
    storage it fills. ``str()`` is what ``simarch validate`` prints before the capacity
    analysis (nothing when the spec gives neither ``daily_active_users`` nor ``storage``)."""

    design: str
    load: float
    rate: RateDerivation | None
    storage: StorageEstimate | None

    @property
    def empty(self) -> bool:
        return self.rate is None and self.storage is None

    def sections(self) -> list[tuple[str, list[str]]]:
        out = []
        if self.rate is not None:
            out.append(("Workload from users:", self.rate.lines()))
        if self.storage is not None:
            out.append(("Storage (filled at the mean rate, not the peak):", self.storage.lines()))
        return out

    def __str__(self) -> str:
        return "\n".join(line for head, body in self.sections()
                         for line in (head, *(f"  {b}" for b in body)))

    def __repr__(self) -> str:
        rate = f", {self.rate.simulated_rate:.6g} req/s" if self.rate is not None else ""
        size = (f", {format_size(self.storage.per_year)}/year" if self.storage is not None else "")
        return f"WorkloadSummary({self.design!r}, load={self.load:g}x{rate}{size})"

    def _repr_html_(self) -> str:
        """The summary in a notebook: one list per section."""
        parts = [f"<p><strong>{html.escape(head)}</strong></p>\n<ul>"
                 + "".join(f"<li>{html.escape(b)}</li>" for b in body) + "</ul>"
                 for head, body in self.sections()]
        if not parts:
            parts = ["<p>the workload gives neither daily_active_users nor storage</p>"]
        return "<div>\n" + "\n".join(parts) + "\n</div>"


def derive_rate(wl: WorkloadSpec, load: float = 1.0) -> RateDerivation | None:
    """The derivation of the rate of a workload given by ``daily_active_users``, or ``None``
    when it gives ``rate``, ``users`` or a trace."""
    if wl.daily_active_users is None or wl.requests_per_user is None:
        return None
    prof = rate_profile(wl, load, None, 0.0) if wl.profile.kind != "constant" else None
    return RateDerivation(wl.daily_active_users, wl.requests_per_user, wl.peak_to_mean or 1.0,
                          wl.peak_to_mean is not None, load, wl.profile.kind,
                          prof[1] if prof is not None else None)


def storage_estimate(wl: WorkloadSpec, stores: Mapping[str, tuple[int, int, Collection[str]]] | None = None,
                     load: float = 1.0) -> StorageEstimate | None:
    """The storage a workload fills, or ``None`` without ``workload.storage``.

    ``stores`` maps each datastore to ``(shards, replicas, request classes that reach it)``;
    each keeps the data of the storing classes that reach it (call probabilities are not
    applied: the data lives where it can be written).
    """
    st = wl.storage
    if st is None:
        return None
    mean = wl.mean_rate
    assert mean is not None  # the spec requires an open-loop rate with storage
    total = sum(rc.weight for rc in wl.requests.values())
    per_request = st.per_request is not None
    classes = tuple(c for c in wl.requests if per_request or wl.op(c) == "write")

    def share(names: Collection[str]) -> float:
        return sum(wl.requests[c].weight for c in names) / total

    retention = st.retention
    est = StorageEstimate(mean * load, load, wl.daily_active_users is None, share(classes), classes,
                          per_request, st.bytes, retention)
    out = []
    for name, (shards, replicas, reaching) in (stores or {}).items():
        mine = tuple(c for c in classes if c in reaching)
        if not mine:
            continue
        s = share(mine)
        per_s = mean * load * s * st.bytes
        out.append(StoreEstimate(name, shards, replicas, mine, s,
                                 per_s * (retention if retention is not None else SECONDS_PER_YEAR)))
    return replace(est, stores=tuple(out))


def summarize_workload(wl: WorkloadSpec, stores: Mapping[str, tuple[int, int, Collection[str]]] | None = None,
                       load: float = 1.0, design: str = "architecture") -> WorkloadSummary:
    """The :class:`WorkloadSummary` of a workload at ``load`` (see :func:`derive_rate` and
    :func:`storage_estimate`)."""
    return WorkloadSummary(design, load, derive_rate(wl, load), storage_estimate(wl, stores, load))


def _n(x: float) -> str:
    """A count or a rate for people: 2,000,000; 1,157; 23.1; 0.116; 1.16e+18."""
    if 100 <= abs(x) < 1e15:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _pct(share: float) -> str:
    return f"{100 * share:.3g}%"


def _span(seconds: float) -> str:
    """A retention for people: '5 years', '90 days', else a duration ('12h')."""
    years, days = seconds / SECONDS_PER_YEAR, seconds / SECONDS_PER_DAY
    if years >= 1:
        return f"{years:.3g} year{'' if years == 1 else 's'}"
    if days >= 1:
        return f"{days:.3g} day{'' if days == 1 else 's'}"
    return format_duration(seconds)
