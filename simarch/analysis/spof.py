"""Single points of failure: which component (or zone) takes the service down when it dies.

**Static analysis.** For each request class, the dependency graph is the call graph from the
entry restricted to the calls the class makes synchronously (``call`` and ``forward``; cache
``on: miss`` calls included; ``async`` calls and queue consumers are not needed for the
request to succeed). A call with a ``fallback`` is an alternative path: the request survives
if either the callee or the fallback works. A component is a *cut vertex* for a class when
removing it disconnects the entry from what the class needs, so every request of the class
fails. A cut vertex is a single point of failure unless it is redundant:

* a service, load balancer or cache needs at least two instances;
* a datastore needs at least two replicas per shard and automatic failover; with one
  replica every shard is a single point of failure for its keys;
* a queue is one broker: always a single point of failure when called synchronously.

A zone is a single point of failure when some cut vertex has all of its instances in it.

**Dynamic analysis.** One simulation per component with one of its boxes crashed for a
window (one instance; for a datastore the primary of shard 0), and one per zone with the
whole zone down; the availability and p99 latency of the requests that arrive during the
window are reported next to a fault-free run of the same design over the same window (the
design's own ``faults`` removed; same seed, so the same arrivals), sorted by impact. The
half window after the fault shows whether the design recovers. With ``deployments``, one
more simulation per service with a rolling deployment of it (the design's own deployment of
it, else batch 1 with a restart of a quarter of the window, at most 10 s) starting at the
same time, measured over the deployment itself: a one-instance service loses all its
capacity while it restarts. The design's own faults and deployments are left out of these
runs, which would blur the comparison.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import argument
from ..kinds import kind
from ..model.architecture import Architecture, call_edges, entry_of
from ..model.architecture import load as load_arch
from ..model.regions import component_regions, regions_in_use
from ..model.spec import CallSpec
from ..model.status import Status
from ..model.units import parse_duration, parse_multiplier
from ..results.text import fmt, html_table, table
from ..run.simulate import simulate


def _needed_calls(arch: Architecture, cls: str) -> dict[str, list[CallSpec]]:
    """For each component, the calls a request of class ``cls`` needs to succeed."""
    spec = arch.spec
    out: dict[str, list[CallSpec]] = {n: [] for n in spec.components}
    for u, _, c in call_edges(arch.graph):
        if not kind(spec.components[u].kind).request_waits_for_calls:
            continue  # e.g. a queue's consumers work after the request has returned
        if c.mode == "async" or c.probability <= 0:
            continue
        if c.requests is not None and cls not in c.requests:
            continue
        out[u].append(c)
    return out


def _survives(node: str, dead: set[str], needs: dict[str, list[CallSpec]], memo: dict[str, bool]) -> bool:
    if node in memo:
        return memo[node]
    ok = node not in dead
    if ok:
        for c in needs[node]:
            call_ok = _survives(c.to, dead, needs, memo)
            if not call_ok and c.fallback is not None:
                call_ok = _survives(c.fallback, dead, needs, memo)
            if not call_ok:
                ok = False
                break
    memo[node] = ok
    return ok


def cut_vertices(arch: Architecture) -> dict[str, set[str]]:
    """For each component, the request classes that fail entirely without it."""
    spec = arch.spec
    entry = entry_of(spec)
    out: dict[str, set[str]] = {n: set() for n in spec.components}
    for cls in spec.workload.requests:
        needs = _needed_calls(arch, cls)
        for n in spec.components:
            if not _survives(entry, {n}, needs, {}):
                out[n].add(cls)
    return out


def _redundancy(arch: Architecture, name: str) -> tuple[bool, int, str]:
    """(redundant, copies, reason) for one component: its kind decides."""
    comp = arch.spec.components[name]
    return kind(comp.kind).redundancy(arch.spec, name, comp)


@dataclass
class SpofReport:
    """Static and (optionally) dynamic single-point-of-failure analysis of one design."""

    design: str
    static: pd.DataFrame
    zones: pd.DataFrame
    dynamic: pd.DataFrame | None = None
    baseline: dict[str, float] = field(default_factory=dict)
    regions: pd.DataFrame = field(default_factory=lambda: _area_frame([]))  # like ``zones``, per region

    @property
    def spofs(self) -> list[str]:
        """Components flagged as single points of failure."""
        return [str(n) for n in self.static.index[self.static["spof"]]]

    @property
    def zone_spofs(self) -> list[str]:
        return [str(z) for z in self.zones.index[self.zones["spof"]]] if len(self.zones) else []

    @property
    def region_spofs(self) -> list[str]:
        """Regions whose loss takes the service down (all copies of a critical component in it)."""
        return [str(z) for z in self.regions.index[self.regions["spof"]]] if len(self.regions) else []

    def to_frame(self) -> pd.DataFrame:
        """One row per component and zone: static verdict and, if run, the measured impact."""
        st = self.static.copy()
        st.insert(0, "what", "component")
        zn = self.zones.copy()
        if len(zn):
            zn.insert(0, "what", "zone")
        df = pd.concat([st, zn]) if len(zn) else st
        if len(self.regions):
            rg = self.regions.copy()
            rg.insert(0, "what", "region")
            df = pd.concat([df, rg])
        if self.dynamic is not None:
            df = df.join(self.dynamic, how="left")
            df = df.sort_values(["availability_during", "p99_during_ms"], ascending=[True, False])
        return df

    def __str__(self) -> str:
        return format_spof(self)

    def _repr_html_(self) -> str:
        """The analysis in a notebook: its tables and the single points of failure."""
        parts = [html_table(df, formats, index_name, caption=title)
                 for title, df, formats, index_name in _sections(self)]
        parts.append(f"<p><strong>{html.escape(_verdict_line(self))}</strong></p>")
        return f"<div>\n<p>{html.escape(self.design)}: single points of failure</p>\n" + \
            "\n".join(parts) + "\n</div>"


def static_spof(arch: Architecture) -> tuple[pd.DataFrame, pd.DataFrame]:
    spec = arch.spec
    cuts = cut_vertices(arch)
    rows = []
    for name, comp in spec.components.items():
        redundant, copies, reason = _redundancy(arch, name)
        critical = sorted(cuts[name])
        spof = bool(critical) and not redundant
        if not critical:
            reason = "not on any request's critical path" + (
                " (a fallback covers it)" if any(c.to == name and c.fallback for c in spec.calls) else "")
        rows.append({"component": name, "kind": comp.kind, "copies": copies,
                     "critical_for": ", ".join(critical), "redundant": redundant, "spof": spof,
                     "reason": reason, "zones": ", ".join(comp.zones)})
    static = pd.DataFrame(rows).set_index("component")
    zones = sorted({z for c in spec.components.values() for z in c.zones})
    zrows = []
    for z in zones:
        hit = []
        for name, comp in spec.components.items():
            if not cuts[name]:
                continue
            in_zone = [comp.zone_of(i) for i in range(comp.copies)]
            if comp.zones and all(zz == z for zz in in_zone):
                hit.append(name)
        zrows.append({"component": z, "kind": "zone", "critical_for": ", ".join(hit),
                      "spof": bool(hit),
                      "reason": (f"all copies of {', '.join(hit)} are in it" if hit
                                 else "every critical component has copies elsewhere")})
    return static, _area_frame(zrows)


def _area_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["component", "kind", "critical_for", "spof", "reason"]).set_index("component")


def static_region_spof(arch: Architecture) -> pd.DataFrame:
    """Per region of the design: a single point of failure when some component on a
    request's critical path has every copy in it (as :func:`static_spof` does for zones)."""
    spec = arch.spec
    if spec.regions is None:
        return _area_frame([])
    cuts = cut_vertices(arch)
    where = component_regions(spec)
    rows = []
    for reg in regions_in_use(spec):
        hit = [n for n in spec.components if cuts[n] and where[n] and all(x == reg for x in where[n])]
        rows.append({"component": reg, "kind": "region", "critical_for": ", ".join(hit), "spof": bool(hit),
                     "reason": (f"all copies of {', '.join(hit)} are in it" if hit
                                else "every critical component has copies elsewhere")})
    return _area_frame(rows)


def _window_stats(r, start: float, end: float) -> tuple[float, float, int]:
    m = (r.start >= start) & (r.start < end)
    st = r.status[m]
    lat = r.latency[m][st == Status.OK]
    avail = float((st == Status.OK).mean()) if len(st) else math.nan
    p99 = float(np.percentile(lat, 99) * 1e3) if len(lat) else math.nan
    return avail, p99, int(len(st))


def _spof_deployment(arch: Architecture, name: str, start: float, w: float) -> tuple[dict[str, Any], str]:
    """The rolling deployment the dynamic run gives service ``name``, and its description."""
    own = [d for d in arch.to_dict().get("deployments") or [] if isinstance(d, dict) and d.get("target") == name]
    if own:
        dep = {**own[0], "at": start}
        return dep, f"its {dep.get('strategy', 'rolling')} deployment"
    restart = min(10.0, w / 4)
    return ({"target": name, "strategy": "rolling", "batch": 1, "restart": restart, "at": start},
            f"rolling deployment, batch 1, restart {restart:g} s")


def spof(arch: Architecture | Any, *, dynamic: bool = True, window: str | float = "30s",
         warmup: str | float = "20s", load: float | str = 1.0, seed: int = 1,
         deployments: bool = False) -> SpofReport:
    """Find the single points of failure of a design.

    Static analysis always; with ``dynamic`` also one simulation per component and per zone,
    each crashed for ``window`` right after ``warmup``, at ``load``, against a fault-free
    baseline run over the same window; with ``deployments`` too, one per service with a
    rolling deployment of it starting then (row ``deploy:<service>``, measured over the
    deployment). The design's own faults and deployments are left out of these runs.
    """
    arch = load_arch(arch)
    static, zones = static_spof(arch)
    rep = SpofReport(arch.name, static, zones, regions=static_region_spof(arch))
    if not dynamic:
        return rep
    with argument("window"):
        w = parse_duration(window, allow_zero=False)
    with argument("warmup"):
        warm = parse_duration(warmup)
    with argument("load"):
        mult = parse_multiplier(load)
    start, end = warm, warm + w  # the fault window, right after the warm-up
    clean = Architecture.from_dict({**arch.to_dict(), "faults": [], "deployments": []},
                                   source=arch.source, base_dir=arch.base_dir)
    base = simulate(clean, load=mult, duration=1.5 * w, warmup=warm, seed=seed)
    b_avail, b_p99, _ = _window_stats(base, start, end)
    rep.baseline = {"availability": b_avail, "p99_ms": b_p99}
    targets: list[tuple[str, dict[str, Any], str]] = []
    for n, comp in arch.spec.components.items():
        fault, killed = kind(comp.kind).spof_crash(n, comp)
        targets.append((n, fault, killed))
    targets += [(z, {"kind": "crash", "zone": z}, "whole zone") for z in zones.index]
    targets += [(x, {"kind": "crash", "region": x}, "whole region") for x in rep.regions.index]
    if deployments:
        targets += [(f"deploy:{n}", *_spof_deployment(arch, n, start, w))
                    for n, comp in arch.spec.components.items() if comp.deployable]
    rows = []
    data = arch.to_dict()
    data["faults"] = []  # the design's own faults and deployments would blur the comparison
    data["deployments"] = []
    for label, fault, killed in targets:
        if "strategy" in fault:  # a deployment: measured while it goes on
            deployed = Architecture.from_dict({**data, "deployments": [{**fault, "name": label}]},
                                              source=arch.source, base_dir=arch.base_dir)
            r = simulate(deployed, load=mult, duration=3 * w, warmup=warm, seed=seed)
            dep = r.deployments()
            a, b = start, end
            if len(dep) and not math.isnan(dep["end_s"].iloc[0]):
                b = float(dep["end_s"].iloc[0])
                killed += f" ({b - a:.3g} s)"
            avail, p99, n = _window_stats(r, a, b)
            after, _, _ = _window_stats(r, b, b + w / 2)
            rows.append({"component": label, "killed": killed, "availability_during": avail,
                         "p99_during_ms": p99, "requests_during": n, "availability_after": after,
                         "availability_drop": b_avail - avail})
            continue
        fault = {**fault, "at": start, "duration": w, "name": f"down:{label}"}
        broken = Architecture.from_dict({**data, "faults": [fault]},
                                        source=arch.source, base_dir=arch.base_dir)
        r = simulate(broken, load=mult, duration=1.5 * w, warmup=warm, seed=seed)
        avail, p99, n = _window_stats(r, start, end)
        after, _, _ = _window_stats(r, end, end + w / 2)
        rows.append({"component": label, "killed": killed, "availability_during": avail, "p99_during_ms": p99,
                     "requests_during": n, "availability_after": after,
                     "availability_drop": b_avail - avail})
    rep.dynamic = pd.DataFrame(rows).set_index("component").sort_values(
        ["availability_during", "p99_during_ms"], ascending=[True, False])
    return rep


def _sections(rep: SpofReport) -> list[tuple[str, pd.DataFrame, dict[str, str], str]]:
    """(title, table, formats, index name) of each table of the report."""
    out = [("Static analysis (cut vertices of each request class's dependency graph, "
            "with redundancy)", rep.static, {"kind": "str", "copies": "int", "critical_for": "str",
                                             "spof": "str", "reason": "str"}, "component")]
    if len(rep.zones):
        out.append(("Zones", rep.zones, {"critical_for": "str", "spof": "str", "reason": "str"}, "zone"))
    if len(rep.regions):
        out.append(("Regions", rep.regions, {"critical_for": "str", "spof": "str", "reason": "str"}, "region"))
    if rep.dynamic is not None:
        b = rep.baseline
        df = rep.dynamic.copy()
        flags = set(rep.spofs) | set(rep.zone_spofs) | set(rep.region_spofs)
        df["spof"] = ["SPOF" if str(n).removeprefix("deploy:") in flags else "" for n in df.index]
        what = "component / zone / region" if len(rep.regions) else "component / zone"
        out.append((f"Dynamic analysis: each {what} down for the window "
                    f"(baseline availability {fmt(b.get('availability'), 'pct')}, "
                    f"p99 {fmt(b.get('p99_ms'), 'ms')} ms)", df,
                    {"killed": "str", "availability_during": "pct", "p99_during_ms": "ms",
                     "availability_after": "pct", "spof": "str"}, "down"))
    return out


def _verdict_line(rep: SpofReport) -> str:
    spofs = rep.spofs + [f"zone {z}" for z in rep.zone_spofs] + [f"region {x}" for x in rep.region_spofs]
    return f"Single points of failure: {', '.join(spofs) if spofs else 'none'}"


def format_spof(rep) -> str:
    """The single-point-of-failure report ``simarch spof`` prints."""
    lines = [f"design {rep.design!r}: single points of failure"]
    for title, df, formats, index_name in _sections(rep):
        lines += ["", title, table(df, formats, index_name)]
    lines += ["", _verdict_line(rep)]
    return "\n".join(lines)
