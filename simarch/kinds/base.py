"""What every component kind provides: the defaults of the hooks a kind module may override.

A kind class is a :class:`~simarch.runtime.component.Component` (its runtime behaviour) plus
class-level hooks that need no simulation: its label and colour for plots, its part in the
static capacity model and its redundancy for the SPOF analysis. Its statistics reach the
results as plain records through :meth:`Kind.window_stats`, :meth:`Kind.warnings` and
:meth:`Kind.events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..runtime.component import Component


@dataclass
class Flow:
    """Visits of one request class to one component in the static capacity model."""

    rate: float = 0.0
    keys: np.ndarray | None = None  # rate-weighted key popularity (sums to rate), or None

    def add(self, rate: float, keys: np.ndarray | None) -> None:
        if not rate > 0:
            return
        if keys is not None and not keys.sum() > 0:
            keys = None
        if keys is not None:
            scaled = keys * (rate / keys.sum())
            if self.keys is None:
                self.keys = scaled
            else:
                n = max(len(self.keys), len(scaled))
                a = np.zeros(n)
                a[: len(self.keys)] += self.keys
                a[: len(scaled)] += scaled
                self.keys = a
        self.rate += rate


class Kind(Component):
    """Base class of the component kinds. Subclasses set ``kind`` and register themselves
    with :func:`simarch.kinds.registry.register`."""

    kind: ClassVar[str]  # the ``kind`` of the spec model this class runs
    label: ClassVar[str]  # how plots and reports name the kind
    colour: ClassVar[str] = "0.85"  # node colour in architecture drawings (no utilisation known)
    request_waits_for_calls: ClassVar[bool] = True  # False: the calls run after the request (a queue)
    routes_internally: ClassVar[bool] = False  # True: callers hand over, the kind picks the copy
    count_fields: ClassVar[tuple[str, ...]] = ("instances",)  # spec fields counting its copies (drawings)

    # ------------------------------------------------------------------ wiring
    def wire(self, call: Any, target: Kind) -> None:
        """Add one call of the spec made by this component."""
        self.add_call(call, target, self.picker_for(target))

    def entry_picker(self):
        """How clients choose this component's instance when it is the entry."""
        return self.picker(tag="workload")

    def start_call(self, call: Any, target: Kind) -> None:
        """Start processes for one of this component's calls, once the run starts."""

    # ------------------------------------------------------------------ statistics
    def window_stats(self, now: dict[str, Any], then: dict[str, Any], T: float,
                     row: dict[str, Any], pool_rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Complete the component's row of statistics over a window of ``T`` seconds from
        its counters at the window's end (``now``) and start (``then``). Returns extra
        per-kind tables, e.g. ``{"shards": [...]}``."""
        return {}

    def warnings(self) -> list[str]:
        """What a reader of this component's figures should know."""
        return []

    def events(self) -> list[dict[str, Any]]:
        """Timed events of this component (``time_s, what, where, from, to``)."""
        return []

    # ------------------------------------------------------------------ work estimate
    @classmethod
    def work_per_visit(cls, spec: Any) -> float:
        """Visits of the kind's boxes per visit to the component (for the work estimate)."""
        return 1.0

    @classmethod
    def processes(cls, name: str, spec: Any, design: Any) -> int:
        """SimPy processes the component keeps for the whole run (for the work estimate)."""
        return 0

    # ------------------------------------------------------------------ static capacity model
    @classmethod
    def initial_miss_ratio(cls, spec: Any) -> float | None:
        """The share of visits that take ``on: miss`` calls, before flows are known."""
        return None

    @classmethod
    def extra_hold(cls, spec: Any, op: str, own: float) -> float:
        """Time a visit holds a worker beyond its own service and its synchronous calls."""
        return 0.0

    @classmethod
    def split_flows(cls, spec: Any, flows: dict[str, Any], classes: list[str]
                    ) -> tuple[float | None, dict[str, float], dict[str, Any]]:
        """For a component that serves some visits itself (a cache): its hit ratio, and
        per class the share of visits and the key popularity that go on to ``on: miss``
        calls. ``None`` when the kind has no hits."""
        return None, {}, {}

    @classmethod
    def utilization(cls, spec: Any, name: str, flows: dict[str, Any], busy: float,
                    classes: list[str], workload: Any) -> tuple[int | None, float, str]:
        """``(workers, utilisation, note)`` of the component from its offered ``busy``
        workers (rate times holding time)."""
        w = spec.worker_limit
        workers = None if w is None else w * spec.instances
        util = busy / workers if workers else math.nan
        return workers, util, "" if workers is not None else "no worker limit"

    @classmethod
    def capacity_note(cls, spec: Any, hit_ratio: float | None, note: str) -> str:
        """The note of the component's row in the capacity table."""
        return note

    # ------------------------------------------------------------------ SPOF analysis
    @classmethod
    def redundancy(cls, spec: Any, name: str, comp: Any) -> tuple[bool, int, str]:
        """``(redundant, copies, reason)``: can the component lose one box and go on?"""
        if comp.instances < 2:
            return False, 1, "one instance"
        callers = [spec.components[k.source] for k in spec.calls if k.to == name]
        checked = callers and all(getattr(k, "health_check", None) is not None for k in callers)
        note = "" if checked or not callers else (
            "; no health-checked load balancer in front: a dead instance keeps getting traffic")
        return True, comp.instances, f"{comp.instances} instances{note}"

    @classmethod
    def spof_crash(cls, name: str, comp: Any) -> tuple[dict[str, Any], str]:
        """The crash fault the dynamic SPOF run injects, and how to describe what it kills."""
        return ({"kind": "crash", "target": name, "instances": 1},
                "1 instance" + (f" of {comp.instances}" if comp.instances > 1 else ""))

