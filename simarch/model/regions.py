"""Regions: where components and users are, the round-trip times between regions, and how
the global routing notices a lost region.

A design with a top-level ``regions:`` section places its components (``region:`` on a
component, or per instance / datastore copy as a list, like ``zone:``) and its users
(``workload.regions``: shares per region) in regions. Every call between two regions, and the
trip from a user to the entry, takes the round-trip time of the matrix (``rtt``): the built-in
:data:`DEFAULT_RTT_MS` (``rtt: default``), or a matrix of the design's own.

The built-in figures are *typical starting points*, rounded, of the size that public
measurements of ping round trips between AWS regions report; they have not been checked
figure by figure against those pages, the network between your regions may differ by tens of
per cent, and it changes over time: measure it and give your own matrix for decisions that
depend on it. The measurements to check them against:

* cloudping.co, "AWS Latency Monitoring" grid of inter-region round trips (p50 over the last
  year), https://www.cloudping.co/grid, as published in 2024;
* Sachin Agarwal, "What is your ping? AWS and Google Cloud", bigbitbus.com, 7 May 2018
  (the average of 30 pings between VMs in each pair of regions),
  https://www.bigbitbus.com/2018/05/07/What-Is-Your-Ping-AWS-And-Google-Cloud/.

The page docs/background/regions.md lists the matrix, its sources and the routing model.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import SpecError, excerpt
from .fields import Duration, PositiveDuration, Whole, _Model
from .units import parse_duration

#: Typical round-trip times (ms) between six AWS regions; see the module docstring for the
#: sources. Symmetric; within a region 0 (calls inside a region are the design's own
#: ``latency``).
DEFAULT_RTT_MS: dict[tuple[str, str], float] = {
    ("us-east-1", "us-west-2"): 67.0,
    ("us-east-1", "eu-west-1"): 70.0,
    ("us-east-1", "eu-central-1"): 90.0,
    ("us-east-1", "ap-northeast-1"): 148.0,
    ("us-east-1", "sa-east-1"): 115.0,
    ("us-west-2", "eu-west-1"): 122.0,
    ("us-west-2", "eu-central-1"): 142.0,
    ("us-west-2", "ap-northeast-1"): 98.0,
    ("us-west-2", "sa-east-1"): 178.0,
    ("eu-west-1", "eu-central-1"): 25.0,
    ("eu-west-1", "ap-northeast-1"): 205.0,
    ("eu-west-1", "sa-east-1"): 180.0,
    ("eu-central-1", "ap-northeast-1"): 228.0,
    ("eu-central-1", "sa-east-1"): 202.0,
    ("ap-northeast-1", "sa-east-1"): 258.0,
}
DEFAULT_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1",
                                    "ap-northeast-1", "sa-east-1")


class FailoverSpec(_Model):
    """How the global routing decides that a region is lost, and when traffic moves.

    Health checks probe each region's entry every ``interval``; after ``unhealthy_after``
    failed checks in a row the region counts as lost, after ``healthy_after`` passing ones as
    healthy again. With ``detection: dns`` (DNS failover, e.g. Route 53 failover records)
    clients keep the old answer for the record's ``dns_ttl`` after each change; with
    ``detection: health_check`` (a global load balancer or anycast front door) traffic moves
    as soon as the checks decide.

    Defaults: Route 53's standard health checks (a 30 s interval, 3 failures to count as
    unhealthy, 3 successes to count as healthy again) and a 60 s TTL, the value AWS
    recommends for failover records; the region is lost to users between 60 and 90 s after
    it dies, plus the TTL."""

    detection: Literal["dns", "health_check"] = "dns"
    interval: PositiveDuration = Field(30.0, description="time between health checks")
    unhealthy_after: Whole = Field(3, ge=1, le=100, description="failed checks in a row to count a region lost")
    healthy_after: Whole = Field(3, ge=1, le=100, description="passing checks in a row to count it healthy")
    dns_ttl: Duration = Field(60.0, description="how long clients keep a DNS answer (detection: dns)")

    @property
    def ttl(self) -> float:
        """The delay between the checks' decision and the traffic's move."""
        return self.dns_ttl if self.detection == "dns" else 0.0


def _rtt_value(v: Any, where: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"the round trip {where} is a duration such as '70ms', got {str(v).lower()}")
    try:
        t = parse_duration(v)
    except (ValueError, TypeError) as e:
        if isinstance(v, (int, float)) and v < 0:
            raise ValueError(f"the round trip {where} must be >= 0, got {v!r}") from None
        raise ValueError(f"the round trip {where}: {e}") from None
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"the round trip {where} must be >= 0, got {excerpt(v)}")
    return t


class RegionsSpec(_Model):
    """The design's regions (``names``; default: those its components and users name), the
    round-trip times between them (``rtt``: ``default`` for the built-in matrix, or a mapping
    ``{a: {b: 70ms}}`` of each pair, either way round), the zones that lie in each region
    (``zones: {us-east-1a: us-east-1}``, for components given a zone but no region), and the
    failover of the users' traffic (``failover``)."""

    names: list[str] | None = Field(None, description="the regions in use (default: those named)")
    rtt: Literal["default"] | dict[str, dict[str, Any]] = Field(
        "default", description="'default' (the built-in matrix) or {a: {b: rtt}} per pair")
    zones: dict[str, str] = Field(default_factory=dict, description="zone -> its region")
    failover: FailoverSpec = Field(default_factory=FailoverSpec)

    @field_validator("rtt", mode="before")
    @classmethod
    def _rtt(cls, v: Any) -> Any:
        if v == "default" or v is None:
            return "default"
        if not isinstance(v, dict):
            raise ValueError(f"'rtt' is 'default' or a mapping {{region: {{region: rtt}}}}, got {excerpt(v)}")
        out: dict[str, dict[str, float]] = {}
        for a, row in v.items():
            if not isinstance(row, dict):
                raise ValueError(f"rtt.{a} is a mapping {{region: rtt}}, got {excerpt(row)}")
            out[str(a)] = {str(b): _rtt_value(t, f"{a}-{b}") for b, t in row.items()}
        return out

    @model_validator(mode="after")
    def _symmetric(self) -> RegionsSpec:
        if isinstance(self.rtt, dict):
            seen: dict[frozenset[str], float] = {}
            for a, row in self.rtt.items():
                for b, t in row.items():
                    if a == b:
                        continue
                    pair = frozenset((a, b))
                    if pair in seen and not math.isclose(seen[pair], t, rel_tol=1e-9, abs_tol=1e-12):
                        raise ValueError(f"the round trip between '{a}' and '{b}' is given twice, "
                                         f"{seen[pair] * 1e3:g}ms and {t * 1e3:g}ms: the matrix "
                                         "is symmetric, give each pair once")
                    seen[pair] = t
        return self


def component_regions(spec: Any) -> dict[str, list[str | None]]:
    """The region of each copy of each component (``None``: none), zones mapped through
    ``regions.zones``."""
    zones = spec.regions.zones if spec.regions is not None else {}
    out = {}
    for name, comp in spec.components.items():
        out[name] = [comp.region_of(i) or zones.get(comp.zone_of(i) or "") for i in range(comp.copies)]
    return out


def regions_in_use(spec: Any) -> list[str]:
    """The design's regions in order: ``regions.names`` if given, else those its components,
    zones and users name (in the order first named)."""
    r = spec.regions
    if r is not None and r.names is not None:
        return list(r.names)
    seen: dict[str, None] = {}
    for regs in component_regions(spec).values():
        for x in regs:
            if x is not None:
                seen[x] = None
    for x in (spec.workload.regions or {}):
        seen[x] = None
    return list(seen)


def rtt_matrix(spec: Any) -> tuple[list[str], list[list[float]]]:
    """The regions in use and their round-trip times (s), ``rtt[i][j]``; raises
    :class:`SpecError` for a pair the matrix lacks."""
    names = regions_in_use(spec)
    r = spec.regions
    given = "default" if r is None else r.rtt
    k = len(names)
    m = [[0.0] * k for _ in range(k)]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                if isinstance(given, dict) and b in given.get(a, {}):
                    m[i][j] = given[a][b]
                continue
            if given == "default":
                t = DEFAULT_RTT_MS.get((a, b), DEFAULT_RTT_MS.get((b, a)))
                if t is None:
                    unknown = a if a not in DEFAULT_REGIONS else b
                    raise SpecError(f"no built-in round trip between '{a}' and '{b}': the built-in "
                                    f"matrix knows {', '.join(DEFAULT_REGIONS)} (region "
                                    f"'{unknown}' is not among them); give 'rtt' as a mapping "
                                    "{a: {b: rtt}} of every pair", ("regions", "rtt"))
                m[i][j] = t / 1e3
            else:
                row_a, row_b = given.get(a, {}), given.get(b, {})
                if b in row_a:
                    m[i][j] = row_a[b]
                elif a in row_b:
                    m[i][j] = row_b[a]
                else:
                    raise SpecError(f"missing round trip between '{a}' and '{b}' (give rtt.{a}.{b} "
                                    f"or rtt.{b}.{a})", ("regions", "rtt"))
    return names, m


def check_regions(spec: Any, entry: str) -> None:
    """Every region a component, a zone mapping, the users, a fault or the matrix names is
    one of the design's regions, the users' shares sum to 1 and every pair has a round trip.
    Raises :class:`SpecError` naming the field."""
    names = regions_in_use(spec)
    known = set(names)
    listed = ", ".join(names) or "none"
    r = spec.regions
    has = r is not None or spec.workload.regions is not None or any(
        c.region is not None for c in spec.components.values())
    if not has:
        return
    if r is None:
        path = next((("components", n, "region") for n, c in spec.components.items() if c.region is not None),
                    ("workload", "regions"))
        raise SpecError("regions are named but the design has no top-level 'regions:' section "
                        "(add 'regions: {}' for the built-in matrix)", path)

    if r.names is None and r.rtt == "default":  # the regions named must be the built-in ones
        known, names = set(DEFAULT_REGIONS), list(DEFAULT_REGIONS)
        listed = ", ".join(names) + " (the built-in matrix's; give 'rtt' for others)"

    def unknown(name: str, path: tuple) -> None:
        if name not in known:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SpecError(f"unknown region '{name}' ({hint}regions: {listed})", path)
    if r.names is not None:
        if len(set(r.names)) != len(r.names):
            raise SpecError("a region is listed twice", ("regions", "names"))
        if not r.names:
            raise SpecError("'names' lists no region", ("regions", "names"))
    for name, comp in spec.components.items():
        if comp.region is None:
            continue
        regs = [comp.region] if isinstance(comp.region, str) else comp.region
        for j, x in enumerate(regs):
            unknown(x, ("components", name, "region") + (() if isinstance(comp.region, str) else (j,)))
    for z, x in r.zones.items():
        unknown(x, ("regions", "zones", z))
    shares = spec.workload.regions
    if shares is not None:
        for x in shares:
            unknown(x, ("workload", "regions", x))
        total = sum(shares.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise SpecError(f"the users' shares per region sum to {total:g}, not 1", ("workload", "regions"))
    if isinstance(r.rtt, dict):
        for a, row in r.rtt.items():
            unknown(a, ("regions", "rtt", a))
            for b in row:
                unknown(b, ("regions", "rtt", a, b))
    for i, f in enumerate(spec.faults):
        x = getattr(f, "region", None)
        if x is not None:
            unknown(x, ("faults", i, "region"))
    rtt_matrix(spec)  # every pair known
    regs = component_regions(spec).get(entry, [])
    if shares is not None and not any(x is not None for x in regs):
        raise SpecError(f"users come from regions but the entry '{entry}' has no region: give it "
                        "'region:' (a list: one per instance, e.g. one load balancer per region)",
                        ("components", entry, "region"))


def call_rtt_moments(spec: Any, source: str, to: str, internal: bool, op: str | None = None,
                     classes: Any = None) -> tuple[float, float]:
    """The mean and variance (s, s²) of the round trip a call from ``source`` to ``to``
    adds in a design with regions, its copies sharing the calls evenly: each calls the
    callee's nearest region that has a copy, as the run does with every instance up. A
    callee that routes internally (a datastore) is reached where the copy that serves the
    op is: a read at the nearest copy, a write at the primary (its first copy) or, with
    ``leaders: per_region``, at the nearest leader. ``op`` (``read``/``write``) says which;
    without it the call's ``classes`` (default: every class) mix by their weights.
    ``(0, 0)`` without regions."""
    if spec.regions is None:
        return 0.0, 0.0
    names, rtt = rtt_matrix(spec)
    ix = {n: i for i, n in enumerate(names)}
    where = component_regions(spec)
    src = [ix[x] for x in where[source] if x is not None]
    dst = [ix[x] for x in where[to] if x is not None]
    if not src or not dst:
        return 0.0, 0.0

    def trips(write: bool) -> list[float]:
        near = dst
        if internal and write and getattr(spec.components[to], "leaders", "single") != "per_region":
            near = dst[:1]  # the primary
        return [min(rtt[a][b] for b in near) for a in src]

    if not internal:
        mix = [(1.0, trips(False))]
    elif op is not None:
        mix = [(1.0, trips(op == "write"))]
    else:
        reqs = spec.workload.requests
        names_ = [c for c in reqs if classes is None or c in classes]
        w = {c: reqs[c].weight for c in names_}
        total = sum(w.values()) or 1.0
        wr = sum(v for c, v in w.items() if spec.workload.op(c) == "write") / total
        mix = [(1.0 - wr, trips(False)), (wr, trips(True))]
    mean = sum(p * t for p, ts in mix for t in ts) / len(src)
    second = sum(p * t * t for p, ts in mix for t in ts) / len(src)
    return mean, max(0.0, second - mean * mean)
