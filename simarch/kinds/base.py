"""What every component kind provides: the defaults of the hooks a kind module may override.

A kind class is a :class:`~simarch.runtime.component.Component` (its runtime behaviour) plus
class-level hooks that need no simulation: its label and colour for plots, its part in the
static capacity model and the queueing model, and its redundancy for the SPOF analysis. Its statistics reach the
results as plain records through :meth:`Kind.window_stats`, :meth:`Kind.warnings` and
:meth:`Kind.events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..runtime.component import Component


def k_of_n(n: int, k: int, serve: float, dead: float = 0.0, demand: float | None = None) -> float:
    """The share of requests served by ``n`` independent boxes of which ``k`` must serve.

    Each box serves with probability ``serve``, is dead but still sent traffic (in rotation)
    with probability ``dead``, and is out of rotation otherwise. A request goes to a box in
    rotation at random, so with ``j`` serving and ``m`` dead in rotation it succeeds with
    probability ``j / (j + m)`` when ``j >= k``. With fewer, the ``j`` boxes serve what
    their capacity allows: ``j / demand`` of the traffic, ``demand`` being the load in boxes'
    worth of work (``None``: nothing, the plain k-of-n rule). With ``dead = 0`` and no
    ``demand`` this is the binomial k-of-n availability."""
    if n <= 0:
        return 0.0
    k = max(k, 1)
    rest = 1.0 - serve
    d = dead / rest if rest > 0 else 0.0  # P(dead in rotation | not serving)
    total = 0.0
    for j in range(1, n + 1):
        if j < k and demand is None:
            continue
        pj = math.comb(n, j) * serve ** j * rest ** (n - j)
        if pj == 0.0:
            continue
        carried = 1.0 if j >= k or demand is None else min(1.0, j / demand)
        left = n - j
        total += pj * carried * sum(math.comb(left, m) * d ** m * (1 - d) ** (left - m) * j / (j + m)
                                    for m in range(left + 1))
    return float(total)


@dataclass(frozen=True)
class Detection:
    """How long health checks take, on average, to take a dead box out of rotation
    (``down``) and to put a repaired one back (``up``), in seconds."""

    down: float
    up: float


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


@dataclass(frozen=True)
class Station:
    """A group of identical worker pools of one component in the queueing model:
    ``count`` pools of ``workers`` workers each (``None``: no limit) with ``queue`` places to
    wait (``None``: unbounded). The visits routed to the group are spread evenly over its
    pools and arrive at each with gaps of squared coefficient of variation ``arrival_scv``
    (1 for Poisson arrivals)."""

    workers: int | None
    queue: int | None = None
    count: int = 1
    arrival_scv: float = 1.0


@dataclass(frozen=True)
class Route:
    """Where a ``share`` of one class's visits to a component goes in the queueing model:
    ``station`` serves the visit (a worker held for the service time and the synchronous
    calls); each station of ``copies`` serves a copy of it for the service time alone (a
    replicated write); with ``sync`` the answer waits for every copy. With ``need`` > 0 (a
    quorum op) ``station`` and ``copies`` serve it in parallel and the answer comes with the
    ``need``-th of them to finish. ``leg`` is the mean and variance of the network time a
    copy's answer adds (there and back) when the op waits for it."""

    share: float
    station: int
    copies: tuple[int, ...] = ()
    sync: bool = False
    need: int = 0
    leg: tuple[float, float] = (0.0, 0.0)


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

    def instance_timeline(self) -> tuple[Any, Any, Any] | None:
        """For a component whose instances come and go: the times of the changes and, from
        each on, the instances in service and the instances billed (``None``: fixed)."""
        return None

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
    def split_flows(cls, spec: Any, flows: dict[str, Any], classes: list[str], workload: Any = None
                    ) -> tuple[float | None, dict[str, float], dict[str, Any]]:
        """For a component that serves some visits itself (a cache): its hit ratio, and
        per class the share of visits and the key popularity that go on to ``on: miss``
        calls (``workload`` tells a class's op). ``None`` when the kind has no hits."""
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

    # ------------------------------------------------------------------ availability model
    @classmethod
    def steady_availability(cls, spec: Any, mtbf: float, mttr: float, detect: Detection | None,
                            needed: int, write_share: float, demand: float | None = None) -> tuple[float, str]:
        """``(availability, how)`` of the component whose boxes fail independently (up for
        ``mtbf``, down for ``mttr`` on average), ``needed`` of them carrying the load.

        Behind health-checked load balancers (``detect``), a dead box keeps its share of the
        traffic until the checks take it out, and stays out until they put it back; without
        them it keeps its share while it is down. With at least ``needed`` boxes serving it
        serves all it is sent (k of n, binomial); with fewer, the share their capacity
        carries (``demand``: the load in boxes' worth of work), the rest being rejected or
        timing out (an optimistic figure with unbounded queues and no timeouts, where the
        backlog is served late instead)."""
        n = spec.boxes
        cycle = mtbf + mttr
        if detect is not None and mttr > detect.down:
            serve = max(mtbf - detect.up, 0.0) / cycle
            dead = detect.down / cycle
            how = (f"{needed}-of-{n}, out of rotation {mttr - detect.down + detect.up:.3g}s per "
                   f"failure, {detect.down:.3g}s of traffic to a dead box before the checks notice")
        else:
            serve = mtbf / cycle
            dead = mttr / cycle
            how = f"{needed}-of-{n}, a dead box keeps its share of traffic for {mttr:.3g}s"
        return k_of_n(n, needed, serve, dead, demand), how

    @classmethod
    def crash_availability(cls, spec: Any, lost: int, fault: Any, detect: Detection | None,
                           needed: int, write_share: float, duration: float) -> tuple[float, str]:
        """``(availability, how)`` of the component while a crash takes ``lost`` of its
        copies down for ``duration`` seconds of the measured window."""
        left = spec.copies - lost
        if left < needed or left <= 0:
            return 0.0, f"{lost} of {spec.copies} down leaves {left}, {needed} needed"
        share = lost / spec.copies
        if detect is not None:
            return (1.0 - share * min(1.0, detect.down / duration) if duration > 0 else 1.0,
                    f"{lost} of {spec.copies} down, out of rotation after {detect.down:.3g}s")
        return 1.0 - share, f"{lost} of {spec.copies} down and still sent traffic"
    # ------------------------------------------------------------------ queueing model
    @classmethod
    def queueing_layout(cls, spec: Any, flows: dict[str, Any], classes: list[str], workload: Any,
                        policy: str | None) -> tuple[list[Station], dict[str, list[Route]]]:
        """The component's worker pools as stations of the queueing model
        (:mod:`simarch.analysis.queueing`), and per class where its visits go. ``flows`` are
        the visits of each class with their key popularity; ``policy`` is how the callers
        pick an instance (``None`` when they differ).

        Default: ``instances`` pools of ``worker_limit`` workers with ``queue`` places to wait.
        Round robin and random choice split the visits evenly: each pool is its own station,
        and round robin gives it every k-th arrival of a Poisson stream (gaps with a squared
        coefficient of variation of 1/k). Least connections and the power of two choices send
        a visit where the queue is short, which comes close to one queue in front of all the
        workers (exactly so for least connections with many workers per instance): the
        instances are pooled into one station."""
        k = spec.instances
        w = spec.worker_limit
        q = getattr(spec, "queue", None)
        if k > 1 and w is not None and policy in ("least_connections", "power_of_two_choices"):
            station = Station(w * k, None if q is None else q * k, 1, 1.0)
        else:
            station = Station(w, q, k, 1.0 / k if policy == "round_robin" else 1.0)
        return [station], {c: [Route(1.0, 0)] for c in classes}

    @classmethod
    def shed_share(cls, spec: Any, rate: float) -> float:
        """The share of ``rate`` visits per second the component turns away before queueing
        (admission control), in the queueing model."""
        return 0.0

    @classmethod
    def consumer_backlog(cls, spec: Any) -> tuple[bool, int | None]:
        """``(True, bound)`` when the component's calls are consumer groups that pull messages
        from a backlog of at most ``bound`` messages (``None``: unbounded) with every worker
        of the callee, and the caller does not wait for them (a queue)."""
        return False, None

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

