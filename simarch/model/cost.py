"""The cost of a design: what its components cost a month, in US dollars, at on-demand list
prices, from its spec alone (no simulation).

A component is priced by its ``cost`` (in one of the units its kind accepts) or, failing
that, by its ``instance_type`` in the catalogue (:mod:`simarch.model.pricing`). Each kind's
spec model computes its own line (:meth:`~simarch.model.components.ComponentBase.monthly_cost`):

* services and load balancers: price per instance-hour x instances x 730 hours;
* datastores: price per replica-hour x shards x replicas x 730 hours (every replica of every
  shard is a box);
* caches: price per instance-hour x instances x 730, or price per GB-month x capacity x
  item_size (in GB, 10^9 bytes);
* queues: price per million messages x the messages enqueued in a month (messages per
  second x 730 x 3,600).

A queue's message rate comes from ``message_rates`` (the simulated rate, say); without it,
from the workload: its rate (``users / think_time`` for a closed loop, an upper bound) times
the visits along the calls, with their probabilities and, for ``on: miss`` calls, the miss
share of a ``hit_ratio`` cache (an LRU cache counts every lookup as a miss here, an upper
bound: :func:`simarch.cost` uses the static capacity model's flows instead).

:func:`design_cost` takes a few microseconds per component: a planner may call it for every
candidate design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import networkx as nx

from .architecture import build_graph, call_edges, call_graph, entry_of, takes
from .pricing import CURRENCY, HOURS_PER_MONTH, SECONDS_PER_MONTH, UNITS, CostLine
from .spec import Spec

__all__ = ["CostBreakdown", "CostLine", "design_cost", "per_million", "static_visit_rates"]


def per_million(monthly_usd: float, successful_rps: float | None) -> float:
    """USD per million successful requests: the monthly cost over the successful requests of
    a month at ``successful_rps`` (``monthly / (rps x 2,628,000 / 10^6)``); infinite when
    nothing succeeds, NaN when the rate is unknown."""
    if successful_rps is None or math.isnan(successful_rps):
        return math.nan
    if successful_rps <= 0:
        return math.inf
    return monthly_usd / (successful_rps * SECONDS_PER_MONTH / 1e6)


@dataclass(frozen=True)
class CostBreakdown:
    """A design's monthly cost: one :class:`~simarch.model.pricing.CostLine` per priced
    component (in spec order) and the names of the components without a price."""

    design: str
    lines: tuple[CostLine, ...]
    unpriced: tuple[str, ...] = ()
    currency: str = CURRENCY
    hours_per_month: float = HOURS_PER_MONTH

    @property
    def monthly_usd(self) -> float:
        """The design's cost per month, in USD (NaN if a queue's message rate is unknown)."""
        return float(sum(line.monthly_usd for line in self.lines))

    @property
    def priced(self) -> bool:
        """Whether any component has a price."""
        return bool(self.lines)

    def line(self, component: str) -> CostLine:
        for line in self.lines:
            if line.component == component:
                return line
        raise KeyError(component)

    def per_million(self, successful_rps: float | None) -> float:
        """USD per million successful requests at ``successful_rps``."""
        return per_million(self.monthly_usd, successful_rps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (NaN as None)."""
        def num(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"currency": self.currency, "hours_per_month": self.hours_per_month,
                "monthly_usd": num(self.monthly_usd),
                "components": {ln.component: {k: num(v) for k, v in ln.to_dict().items()}
                               for ln in self.lines},
                "unpriced": list(self.unpriced)}


def static_visit_rates(spec: Spec, load: float = 1.0) -> dict[str, float]:
    """Visits per second to each component from the workload alone: the arrival rate (the
    open loop's ``rate``; ``users / think_time`` for a closed loop, an upper bound; NaN for a
    trace without a rate) split over the request classes, followed along the calls with
    their probabilities, the classes they take and, for ``on: miss``, the caller's
    :meth:`~simarch.model.components.ComponentBase.miss_share`. Fallback calls are left out
    (they are made only on failures)."""
    wl = spec.workload
    if wl.rate is not None:
        total = wl.rate * load
    elif wl.users is not None and wl.think_time is not None:
        total = wl.users * load / wl.think_time.mean
    else:
        total = math.nan
    classes = list(wl.requests)
    weight = sum(rc.weight for rc in wl.requests.values())
    rates = {n: dict.fromkeys(classes, 0.0) for n in spec.components}
    entry = entry_of(spec)
    for cls, rc in wl.requests.items():
        rates[entry][cls] = total * rc.weight / weight
    g = call_graph(build_graph(spec))
    out: dict[str, list] = {n: [] for n in spec.components}
    for u, _, c in call_edges(g):
        out[u].append(c)
    for n in nx.topological_sort(g):
        miss = spec.components[n].miss_share()
        for call in out[n]:
            share = call.probability * (miss if call.on == "miss" else 1.0)
            for cls in classes:
                if takes(call, cls):
                    rates[call.to][cls] += rates[n][cls] * share
    return {n: sum(r.values()) for n, r in rates.items()}


def design_cost(design: Spec | Any, message_rates: Mapping[str, float] | None = None, *,
                load: float = 1.0, rates_from: str = "given") -> CostBreakdown:
    """The monthly cost of a design (a :class:`~simarch.model.spec.Spec`, or anything with a
    ``spec``, such as an :class:`~simarch.model.architecture.Architecture`).

    ``message_rates`` maps a component to its messages per second, for the components priced
    per message (queues); a missing one is estimated from the workload at ``load`` times its
    rate (:func:`static_visit_rates`). ``rates_from`` says in each such line's note where the
    given rates come from (``"simulated"``, say)."""
    spec = getattr(design, "spec", design)
    rates = dict(message_rates or {})
    static: dict[str, float] | None = None
    lines, unpriced = [], []
    for name, comp in spec.components.items():
        if not comp.priced:
            unpriced.append(name)
            continue
        rate, origin = None, ""
        if comp.needs_message_rate:
            if name in rates and rates[name] is not None:
                rate, origin = float(rates[name]), rates_from
            else:
                if static is None:
                    static = static_visit_rates(spec, load)
                rate, origin = static[name], "static estimate from the workload"
        line = comp.monthly_cost(name, rate)
        if line is None:  # a price the kind does not use on its own (cannot happen for a valid spec)
            unpriced.append(name)
            continue
        if origin:
            line = replace(line, note="; ".join(x for x in (line.note, f"message rate: {origin}") if x))
        lines.append(line)
    return CostBreakdown(spec.name, tuple(lines), tuple(unpriced))


def unit_label(unit: str) -> str:
    """What one unit of a price is: ``per_instance_hour`` -> ``instance-hour``."""
    return UNITS.get(unit, unit)
