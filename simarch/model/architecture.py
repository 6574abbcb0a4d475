"""An architecture: validated components and calls, held as a ``networkx.DiGraph``.

Build one from a YAML file or mapping with :func:`load`, or in Python::

    arch = (Architecture("two-tier", workload={"rate": 200})
            .add("api", kind="service", instances=2, workers=8, service_time={"exponential": "5ms"})
            .add("db", kind="datastore", workers=4, service_time="2ms")
            .call("api", "db"))

Both routes give the same object. Graph-level rules (calls to missing components, cycles,
caches that need keys...) are checked by :meth:`Architecture.check`, which :func:`load` and
:func:`simarch.simulate` call.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from ..errors import SpecError, argument, excerpt
from .deployments import check_deployments
from .dists import DISTRIBUTION_NAMES
from .regions import check_regions
from .spec import (
    CallSpec,
    Spec,
    component_to_spec,
    parse_call,
    parse_component,
    parse_spec,
    read_yaml,
)
from .units import parse_multiplier
from .workload import WorkloadSummary, read_trace, summarize_workload, trace_path


class Architecture:
    """A candidate design: components (nodes) and calls (edges) plus a workload and SLO."""

    def __init__(
        self,
        name: str = "architecture",
        *,
        workload: Mapping[str, Any] | None = None,
        slo: Mapping[str, Any] | None = None,
        simulation: Mapping[str, Any] | None = None,
        description: str | None = None,
        catalogue: str | Mapping[str, Any] | None = None,
    ):
        for field, value in (("workload", workload), ("slo", slo), ("simulation", simulation)):
            if value is not None and not isinstance(value, Mapping):
                raise SpecError(f"a mapping of fields, got {excerpt(value)}", (field,))
        if catalogue is not None and not isinstance(catalogue, (str, Mapping)):
            raise SpecError("a catalogue is the name of a YAML file or a mapping with 'types', "
                            f"got {excerpt(catalogue)}", ("catalogue",))
        if not isinstance(name, str):
            raise SpecError(f"a design's name is a string, got {excerpt(name)}", ("name",))
        self._data: dict[str, Any] = {"name": name, "components": {}, "calls": []}
        if description is not None:
            self._data["description"] = description
        if workload is not None:
            self._data["workload"] = dict(workload)
        if slo is not None:
            self._data["slo"] = dict(slo)
        if simulation is not None:
            self._data["simulation"] = dict(simulation)
        if catalogue is not None:  # instance types of one's own: a file or a mapping
            self._data["catalogue"] = catalogue if isinstance(catalogue, str) else dict(catalogue)
        self.source: str | None = None
        self.base_dir: Path | None = None
        self._spec: Spec | None = None
        self._graph: nx.DiGraph | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None,
                  base_dir: Path | None = None) -> Architecture:
        """Validate a spec mapping (as read from YAML) into an architecture."""
        arch = cls.__new__(cls)
        arch._data = copy.deepcopy(dict(data))
        arch.source = source
        arch.base_dir = base_dir
        arch._spec = None
        arch._graph = None
        arch.check()
        return arch

    def _touch(self) -> None:
        self._spec = None
        self._graph = None

    def add(self, name: str, kind: str, **params: Any) -> Architecture:
        """Add a component (``kind`` is service, load_balancer, cache, datastore or queue)."""
        if name in self._data["components"]:
            raise SpecError(f"component '{name}' already exists", ("components", name))
        if not isinstance(name, str) or not name:
            raise SpecError("a component name is a non-empty string", ("components",))
        data = {"kind": kind, **params}
        parse_component(name, data, self.base_dir, self._data.get("catalogue"))  # fail now, at the call that is wrong
        self._data["components"][name] = data
        self._touch()
        return self

    add_component = add

    def call(self, source: str, to: str, **params: Any) -> Architecture:
        """Add a call from ``source`` to ``to`` (keyword arguments as in the ``calls`` list)."""
        data = {"from": source, "to": to, **params}
        index = len(self._data["calls"])
        parse_call(index, data)
        self._data["calls"].append(data)
        self._touch()
        return self

    add_call = call

    def set_workload(self, **params: Any) -> Architecture:
        """Replace the workload (keyword arguments as in the ``workload`` section)."""
        self._data["workload"] = params
        self._touch()
        return self

    def set_slo(self, **params: Any) -> Architecture:
        self._data["slo"] = params
        self._touch()
        return self

    def with_changes(self, changes: Mapping[str, Any]) -> Architecture:
        """A copy with dotted-path overrides, e.g. ``{"api.instances": 8, "workload.rate": 900}``.

        A first path segment that names a component is looked up under ``components``.
        """
        if not isinstance(changes, Mapping):
            raise SpecError(f"changes are a mapping of dotted paths to values, got {excerpt(changes)}")
        data = copy.deepcopy(self._data)
        for path, value in changes.items():
            if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
                raise SpecError(f"a change's path is a dotted string such as 'api.workers', got {excerpt(path)}")
            parts: list[Any] = path.split(".")
            if parts[0] in data.get("components", {}):
                parts = ["components", *parts]
            node: Any = data
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                here = (*parts[:i], int(part) if str(part).lstrip("-").isdigit() else part)
                if isinstance(node, list):
                    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                        raise SpecError(f"cannot set '{path}': '{'.'.join(map(str, parts[:i]))}' is a list "
                                        f"of {len(node)}; '{excerpt(part, quote=False)}' is not an index in it",
                                        here, self.source)
                    parts[i] = part = int(part)
                elif not isinstance(node, dict):
                    raise SpecError(f"cannot set '{path}': '{'.'.join(map(str, parts[:i]))}' is not a section",
                                    tuple(parts[:i]), self.source)
                if last:
                    node[part] = value
                elif isinstance(node, dict) and part not in node:
                    node[part] = {}
                    node = node[part]
                else:
                    node = node[part]
        return Architecture.from_dict(data, source=self.source, base_dir=self.base_dir)

    # ------------------------------------------------------------------ views
    @property
    def spec(self) -> Spec:
        """The validated :class:`~simarch.spec.Spec` (checked on first access)."""
        if self._spec is None:
            self.check()
        assert self._spec is not None
        return self._spec

    @property
    def name(self) -> str:
        return self._data.get("name", "architecture")

    @property
    def graph(self) -> nx.DiGraph:
        """The call graph: a node per component (attribute ``spec``), an edge per caller/callee
        pair (attribute ``calls``: the list of :class:`~simarch.spec.CallSpec` on that pair)."""
        if self._graph is None:
            self._graph = build_graph(self.spec)
        return self._graph

    @property
    def entry(self) -> str:
        return entry_of(self.spec)

    def call_edges(self) -> list[tuple[str, str, CallSpec]]:
        """``(caller, callee, call)`` for every call, read off the graph in spec order."""
        return call_edges(self.graph)

    def reach(self) -> dict[str, set[str]]:
        """For each component, the request classes that can reach it."""
        return classes_reaching(self.graph, self.entry, self.classes)

    @property
    def classes(self) -> list[str]:
        return list(self.spec.workload.requests)

    def workload_summary(self, load: float | str = 1.0) -> WorkloadSummary:
        """The back-of-envelope numbers of the workload at ``load``: the rate derived from
        ``daily_active_users`` step by step, and the storage of ``workload.storage`` (growth,
        size after the retention, per datastore with its replicas and shards). ``str()`` of it
        is what ``simarch validate`` prints first."""
        with argument("load"):
            mult = parse_multiplier(load)
        spec = self.spec
        reach = self.reach()
        stores = {n: (*c.data_layout, reach.get(n, set())) for n, c in spec.components.items()
                  if c.data_layout is not None}
        return summarize_workload(spec.workload, stores, mult, self.name)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain mapping (what was given, not the defaults filled in)."""
        return copy.deepcopy(self._data)

    def resolved(self) -> dict[str, Any]:
        """The spec with every component's parameters validated and units resolved."""
        spec = self.spec
        out = copy.deepcopy(self._data)
        out["components"] = {n: component_to_spec(c) for n, c in spec.components.items()}
        out["calls"] = [c.to_spec() for c in spec.calls]
        out["workload"] = dict(out.get("workload", {}))
        out["workload"]["entry"] = self.entry
        if "catalogue" in out:  # the types it uses, inline: the resolved spec stands alone
            used = {c.instance_type for c in spec.components.values()
                    if getattr(c, "instance_type", None) is not None}
            out["catalogue"] = {"types": {t.name: t.to_entry() for t in sorted(used, key=lambda t: t.name)}}
            if not used:
                del out["catalogue"]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved(), sort_keys=False)

    def __repr__(self) -> str:
        try:
            g = self.graph
            return f"Architecture({self.name!r}, {g.number_of_nodes()} components, {len(self.spec.calls)} calls)"
        except SpecError:
            return f"Architecture({self.name!r}, invalid)"

    # ------------------------------------------------------------------ checks
    def check(self) -> Architecture:
        """Validate the whole design; raises :class:`SpecError` naming the field."""
        spec = parse_spec(self._data, self.source, self.base_dir)
        try:
            check_graph(spec)
            if spec.workload.profile.trace is not None:
                read_trace(trace_path(spec.workload, self.base_dir))
        except SpecError as e:
            raise e.with_context(source=self.source) from None
        self._spec = spec
        return self


def entry_of(spec: Spec) -> str:
    if spec.workload.entry is not None:
        return spec.workload.entry
    if len(spec.components) == 1:
        return next(iter(spec.components))
    called = {c.to for c in spec.calls}
    roots = [n for n in spec.components if n not in called]
    if len(roots) == 1:
        return roots[0]
    raise SpecError(
        "cannot tell the entry component: give workload.entry "
        f"(components nothing calls: {', '.join(roots) or 'none'})",
        ("workload", "entry"),
    )


def build_graph(spec: Spec) -> nx.DiGraph:
    """The architecture as a ``networkx.DiGraph``: a node per component (attributes ``kind``
    and ``spec``), an edge per caller/callee pair. Edge attribute ``calls`` lists the
    :class:`~simarch.model.spec.CallSpec` made on that pair (``index``: their positions in
    the spec); an edge from a caller to a
    fallback component lists, in ``fallbacks``, the calls it stands in for."""
    g = nx.DiGraph(name=spec.name)
    for name, comp in spec.components.items():
        g.add_node(name, kind=comp.kind, spec=comp)
    for i, call in enumerate(spec.calls):
        if g.has_edge(call.source, call.to):
            g.edges[call.source, call.to]["calls"].append(call)
            g.edges[call.source, call.to]["index"].append(i)
        else:
            g.add_edge(call.source, call.to, calls=[call], index=[i], fallbacks=[])
    for call in spec.calls:
        if call.fallback is None:
            continue
        if g.has_edge(call.source, call.fallback):
            g.edges[call.source, call.fallback]["fallbacks"].append(call)
        else:
            g.add_edge(call.source, call.fallback, calls=[], index=[], fallbacks=[call])
    return g


def call_edges(g: nx.DiGraph) -> list[tuple[str, str, CallSpec]]:
    """``(caller, callee, call)`` for every call of the graph, in the order the spec declares
    them (the order in which a component makes its calls)."""
    out = [(i, u, v, c) for u, v, d in g.edges(data=True) for i, c in zip(d["index"], d["calls"], strict=True)]
    out.sort(key=lambda e: e[0])
    return [(u, v, c) for _, u, v, c in out]


def call_graph(g: nx.DiGraph) -> nx.DiGraph:
    """The view of ``g`` with the call edges only (fallback-only edges left out)."""
    return nx.subgraph_view(g, filter_edge=lambda u, v: bool(g.edges[u, v]["calls"]))


def takes(call: CallSpec, cls: str) -> bool:
    """Whether requests of class ``cls`` take this call."""
    return call.requests is None or cls in call.requests


def check_graph(spec: Spec) -> None:
    """Graph-level rules that a single field cannot express (each kind adds its own, see
    :mod:`simarch.model.components`)."""
    comps = spec.components
    names = ", ".join(comps)
    classes = list(spec.workload.requests)

    entry = entry_of(spec)
    if entry not in comps:
        raise SpecError(f"unknown component '{entry}' (components: {names})", ("workload", "entry"))

    for i, call in enumerate(spec.calls):
        for field, target in (("from", call.source), ("to", call.to)):
            if target not in comps:
                raise SpecError(f"unknown component '{target}' (components: {names})", ("calls", i, field))
        if call.source == call.to:
            raise SpecError(f"'{call.source}' calls itself: a call cycle would loop forever", ("calls", i))
        if call.requests is not None:
            for j, cls in enumerate(call.requests):
                if cls not in classes:
                    raise SpecError(f"unknown request class '{cls}' (classes: {', '.join(classes)})",
                                    ("calls", i, "requests", j))
        comps[call.source].check_call_from(call.source, call, i, spec)
        comps[call.to].check_call_to(call.to, call, i, spec)
        if call.fallback is not None:
            if call.fallback not in comps:
                raise SpecError(f"unknown component '{call.fallback}' (components: {names})",
                                ("calls", i, "fallback"))
            if call.fallback in (call.source, call.to):
                raise SpecError("a fallback is another component than the caller and the callee",
                                ("calls", i, "fallback"))
        if call.resilient and call.mode != "call":
            raise SpecError("retries, circuit_breaker, hedge and fallback need mode 'call'",
                            ("calls", i, "mode"))

    check_faults(spec)
    check_regions(spec, entry)
    check_deployments(spec)
    storage = spec.workload.storage
    if storage is not None and storage.per_write is not None and \
            not any(spec.workload.op(c) == "write" for c in classes):
        raise SpecError(f"no request class writes (classes: {', '.join(classes)}): give the classes "
                        "that store data 'op: write' (or a write-like name), or give 'per_request'",
                        ("workload", "storage", "per_write"))

    g = build_graph(spec)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([cycle[0][0]] + [e[1] for e in cycle])
        last = tuple(cycle[-1][:2])
        idx = next((i for i, c in enumerate(spec.calls)
                    if (c.source, c.to) == last or (c.source, c.fallback) == last), 0)
        raise SpecError(f"call cycle {path} would loop forever", ("calls", idx))

    # per-class service times and keys where needed
    reach = classes_reaching(g, entry, classes)
    for name, comp in comps.items():
        comp.check(name, spec)
        st = comp.service_time
        for key in st.by_name:
            if key not in classes and key not in ("read", "write"):
                close = difflib.get_close_matches(key, DISTRIBUTION_NAMES, n=1)
                if close and not difflib.get_close_matches(key, classes, n=1):
                    raise SpecError(
                        f"unknown distribution '{key}' (did you mean '{close[0]}'? "
                        f"allowed: {', '.join(DISTRIBUTION_NAMES)})",
                        ("components", name, "service_time", key))
                raise SpecError(
                    f"'{key}' is neither a distribution ({', '.join(DISTRIBUTION_NAMES)}) nor a "
                    f"request class ({', '.join(classes)}), an operation (read, write) or 'default'",
                    ("components", name, "service_time", key))
        for cls in reach.get(name, ()):
            if st.lookup(cls, spec.workload.op(cls)) is None:
                raise SpecError(
                    f"no service time for request class '{cls}': add '{cls}' or 'default'",
                    ("components", name, "service_time"))
            comp.check_class(name, cls, spec)


def check_faults(spec: Spec) -> None:
    """Faults name existing components, shards, replicas, zones and calls."""
    comps = spec.components
    names = ", ".join(comps)
    zones = sorted({z for c in comps.values() for z in c.zones})
    linked = {frozenset((c.source, c.to)) for c in spec.calls}
    for i, f in enumerate(spec.faults):
        target = getattr(f, "target", None)
        if target is not None and target not in comps:
            raise SpecError(f"unknown component '{target}' (components: {names})", ("faults", i, "target"))
        if getattr(f, "region", None) is not None and spec.regions is None:
            raise SpecError("a region fault needs the design's 'regions:' section and components "
                            "in regions", ("faults", i, "region"))
        zone = getattr(f, "zone", None)
        if zone is not None and zone not in zones:
            raise SpecError(f"unknown zone '{zone}' (zones: {', '.join(zones) or 'none; give components a zone'})",
                            ("faults", i, "zone"))
        between = getattr(f, "between", None)
        if between is not None:
            for j, n in enumerate(between):
                if n not in comps:
                    raise SpecError(f"unknown component '{n}' (components: {names})", ("faults", i, "between", j))
            if frozenset(between) not in linked:
                raise SpecError(f"no call between '{between[0]}' and '{between[1]}'", ("faults", i, "between"))
            a, b = between
            comps[a].check_link(a, b, f, i, spec)
            comps[b].check_link(b, a, f, i, spec)
        if f.kind == "crash" and target is not None:
            comps[target].check_crash(target, f, i)
        if f.kind == "cache_flush":
            comps[target].check_flush(target, f, i)


def classes_reaching(g: nx.DiGraph, entry: str, classes: list[str]) -> dict[str, set[str]]:
    """For each component, the request classes that can reach it from the entry (through
    the calls that class takes, and their fallbacks)."""
    out: dict[str, set[str]] = {n: set() for n in g}
    for cls in classes:
        def edge_ok(u: str, v: str, cls: str = cls) -> bool:
            e = g.edges[u, v]
            return any(takes(c, cls) for c in e["calls"]) or any(takes(c, cls) for c in e["fallbacks"])
        view = nx.subgraph_view(g, filter_edge=edge_ok)
        for n in nx.descendants(view, entry) | {entry}:
            out[n].add(cls)
    return out


def hints(arch: Architecture) -> list[str]:
    """Things in a valid spec that are probably not what was meant: a bare number of seconds
    that looks like milliseconds, a routing policy that nothing uses."""
    out = []
    raw = arch.to_dict().get("components", {})
    for name, data in raw.items():
        st = data.get("service_time") if isinstance(data, dict) else None
        bare = st if isinstance(st, (int, float)) and not isinstance(st, bool) else None
        if bare is not None and bare >= 1:
            out.append(f"components.{name}.service_time: {bare:g} is read as {bare:g} seconds (a bare "
                       f"number is seconds; write '{bare:g}ms' for milliseconds)")
    g = arch.graph
    for name in arch.spec.components:
        if "policy" not in (raw.get(name) or {}):
            continue
        callers = [u for u, _, d in g.in_edges(name, data=True) if d["calls"]]
        if callers and all(g.nodes[u]["spec"].routes_callees for u in callers):
            out.append(f"components.{name}.policy: unused - every caller of '{name}' is a load "
                       "balancer, which routes by its own policy")
    return out


def load(source: str | Path | Mapping[str, Any] | Architecture) -> Architecture:
    """Read a design from a YAML file path, a mapping, or pass an :class:`Architecture` through.

    Raises :class:`~simarch.errors.SpecError` (file, field path, what is allowed) when invalid.
    """
    if isinstance(source, Architecture):
        return source.check()
    if isinstance(source, Mapping):
        return Architecture.from_dict(source)
    if not isinstance(source, (str, Path)):
        raise SpecError(f"a spec is a mapping or a YAML file path, got {type(source).__name__}")
    path = Path(source)
    data = read_yaml(path)
    return Architecture.from_dict(data, source=str(source), base_dir=path.parent)
