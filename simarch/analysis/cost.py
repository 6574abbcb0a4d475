"""The cost of a design at a load: :func:`cost` (``simarch.cost``).

The monthly cost is :func:`simarch.model.cost.design_cost`'s: hourly prices times the boxes
and 730 hours, caches per GB-month of memory, queues per million messages. What the cost
analysis adds is the message rate of the queues priced per message: the simulated rate
when it is given a :class:`~simarch.results.result.Result`; otherwise the arrival rate the
static capacity model (:mod:`simarch.analysis.capacity`) gives the queue at this load,
which follows the calls with their probabilities and estimates an LRU cache's misses from
its keys (the peak rate of a rate profile or trace; ``N / (Z + R)`` for closed-loop users).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SimarchError, argument
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.cost import CostBreakdown, design_cost, per_million
from ..model.units import parse_multiplier
from ..results.result import Result
from ..results.text import (
    COST_CAPTION,
    cost_frame,
    cost_summary,
    cost_text_frame,
    format_cost,
    styled_html,
)
from .capacity import capacity_report

__all__ = ["CostReport", "cost"]


@dataclass
class CostReport:
    """A design's monthly cost at one load (``simarch.cost``).

    ``monthly_usd`` is the total in USD a month (730 hours); ``table`` one row per priced
    component (kind, unit, unit_price_usd, quantity, quantity_unit, monthly_usd, source,
    instance_type, note); ``per_million(successful_rps)`` the cost of a million successful
    requests at that throughput (by default, the simulated one when the report was made from
    a run). ``breakdown`` is the model's :class:`~simarch.model.cost.CostBreakdown`.
    """

    design: str
    load: float
    breakdown: CostBreakdown
    message_rates_from: str  # "simulated", "static capacity model", or "" (no queue priced per message)
    successful_rps: float | None = None  # the run's, when made from one
    warnings: list[str] = field(default_factory=list)

    @property
    def monthly_usd(self) -> float:
        return self.breakdown.monthly_usd

    @property
    def table(self) -> pd.DataFrame:
        return cost_frame(self.breakdown)

    @property
    def unpriced(self) -> tuple[str, ...]:
        """The components with neither a ``cost`` nor an ``instance_type``."""
        return self.breakdown.unpriced

    def per_million(self, successful_rps: float | None = None) -> float:
        """USD per million successful requests at ``successful_rps`` (default: the run's):
        ``monthly_usd / (successful_rps x 2,628,000 / 10^6)``."""
        rps = self.successful_rps if successful_rps is None else successful_rps
        if rps is None:
            raise SimarchError("per_million needs the successful requests per second: give "
                               "successful_rps, or make the report from a run (simarch.cost(result))")
        return per_million(self.monthly_usd, float(rps))

    def to_dict(self) -> dict[str, Any]:
        out = {"design": self.design, "load": self.load, **self.breakdown.to_dict(),
               "message_rates_from": self.message_rates_from}
        if self.successful_rps is not None:
            pm = self.per_million()
            out["successful_rps"] = self.successful_rps
            out["per_million_successful_usd"] = pm if math.isfinite(pm) else None
        return out

    def _where(self) -> str:
        return "at the simulated load" if self.successful_rps is not None else ""

    def __str__(self) -> str:
        head = f"design {self.design!r}  load {self.load:g}x"
        if not self.breakdown.priced:
            return head + "\nno component has a price (give components a 'cost' or an 'instance_type')"
        pm = self.per_million() if self.successful_rps is not None else None
        lines = [head, "", *format_cost(self.breakdown, pm, self._where())]
        if self.message_rates_from:
            lines.append(f"message rates: {self.message_rates_from}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if not self.breakdown.priced:
            return f"<p>{html.escape(str(self))}</p>"
        pm = self.per_million() if self.successful_rps is not None else None
        parts = [styled_html(cost_text_frame(self.breakdown), caption=f"{self.design} at {self.load:g}x: "
                             + COST_CAPTION),
                 f"<p>{html.escape(cost_summary(self.monthly_usd, pm, self._where()))}</p>"]
        parts += [f"<p>warning: {html.escape(w)}</p>" for w in self.warnings]
        return "<div>\n" + "\n".join(parts) + "\n</div>"


def cost(arch: Architecture | str | Path | dict | Result, load: float | str = 1.0, *,
         result: Result | None = None) -> CostReport:
    """The monthly cost of a design at a load multiplier, in USD.

    ``arch`` is a design (an :class:`Architecture`, a spec path or mapping) or a
    :class:`~simarch.results.result.Result` (then its design, load, simulated message rates
    and successful throughput are used). With ``result``, a run of ``arch``, the same. A
    queue priced per message without a run is priced at the arrival rate the static capacity
    model gives it at ``load``.
    """
    if isinstance(arch, Result):  # its cost was made when it was collected, at the simulated rates
        r = arch
        b = r.cost if r.cost is not None else CostBreakdown(r.design, (), tuple(r.component_stats))
        rps = float(r.summary().loc["all", "throughput_rps"])
        from_run = "simulated" if any(ln.unit == "per_million_messages" for ln in b.lines) else ""
        return CostReport(r.design, float(r.load), b, from_run, rps)
    arch = load_arch(arch)
    with argument("load"):
        mult = parse_multiplier(load) if result is None else float(result.load)
    spec = arch.spec
    needs = [n for n, c in spec.components.items() if c.needs_message_rate]
    warnings: list[str] = []
    rates: dict[str, float] = {}
    source = ""
    if needs and result is not None:
        rates = {n: float(result.component_stats[n]["throughput_rps"]) for n in needs
                 if n in result.component_stats}
        source = "simulated"
    elif needs:
        try:
            arrival = capacity_report(arch, mult).table["arrival_rps"]
            rates = {n: float(arrival[n]) for n in needs}
            source = "static capacity model"
        except SimarchError as e:  # the model's own estimate (design_cost) stands in
            warnings.append(f"the static capacity model failed ({e}); message rates estimated from "
                            "the workload rate and the call probabilities")
            source = "static estimate from the workload"
    breakdown = design_cost(spec, rates, load=mult, rates_from=source or "given")
    rps = None
    if result is not None:
        rps = float(result.summary().loc["all", "throughput_rps"])
    if math.isnan(breakdown.monthly_usd) and breakdown.priced:
        warnings.append("a queue's message rate is unknown (a trace without a rate?): its cost is "
                        "missing from the total")
    return CostReport(arch.name, mult, breakdown, source, rps, warnings)
