"""The spec model of each component kind, and their registry.

A component kind is declared in two places: its spec model here (the fields a spec may give,
validated once) and its kind module in :mod:`simarch.kinds` (its runtime behaviour, its
statistics and its hooks for the analyses). :func:`component_model` registers a model under
its ``kind``; the spec's ``components`` field is the union of the registered models.

Each model also carries the graph rules that concern its kind (``check_*`` methods), so that
:func:`simarch.model.architecture.check_graph` never switches on a kind, and its price
(``cost_units`` and :meth:`ComponentBase.monthly_cost`), so that the cost model in
:mod:`simarch.model.cost` does not either.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from ..errors import SpecError, excerpt
from .archetypes import apply_archetype
from .dists import Constant
from .fields import (
    MAX_INSTANCES,
    MAX_KEYS,
    MAX_QUEUE,
    MAX_REPLICAS,
    MAX_RING_POINTS,
    MAX_WORKERS,
    Dist,
    Duration,
    Fraction,
    Policy,
    PositiveDuration,
    Rate,
    Real,
    ServiceTime,
    Whole,
    _Model,
    _zero_service_time,
)
from .pricing import (
    HOURLY_UNITS,
    SECONDS_PER_MONTH,
    UNITS,
    Catalogue,
    CostLine,
    CostSpec,
    InstanceType,
    builtin_catalogue,
    hourly_line,
)
from .units import parse_size

if TYPE_CHECKING:
    from .spec import CallSpec, Spec

COMPONENT_MODELS: dict[str, type[ComponentBase]] = {}


def component_model(cls: type[ComponentBase]) -> type[ComponentBase]:
    """Register a component spec model under its ``kind`` literal."""
    kind = cls.model_fields["kind"].annotation.__args__[0]  # Literal["service"] -> "service"
    COMPONENT_MODELS[kind] = cls
    return cls


def _kind_name(cls: type) -> str:
    return cls.model_fields["kind"].annotation.__args__[0]


def catalogue_of(info: ValidationInfo | None) -> Catalogue:
    """The catalogue a validation uses: the spec's (put in the validation context by
    :func:`simarch.model.spec.parse_spec`), else the built-in one."""
    found = (info.context or {}).get("catalogue") if info is not None else None
    return found if isinstance(found, Catalogue) else builtin_catalogue()


def _instance_type(v: Any, info: ValidationInfo) -> InstanceType:
    if isinstance(v, InstanceType):
        return v
    return catalogue_of(info).lookup(v)


#: A name in the catalogue, validated into its :class:`~simarch.model.pricing.InstanceType`.
InstanceTypeName = Annotated[InstanceType, BeforeValidator(_instance_type)]
_INSTANCE_TYPE_HELP = ("a name in the catalogue of instance types: prices the component by the "
                       "hour and, with no 'workers' given, gives it one worker per core")


def _size(v: Any) -> float:
    size = parse_size(v)
    if not size > 0:
        raise ValueError(f"a size > 0 such as '1KB', got {v!r}")
    return size


Size = Annotated[float, BeforeValidator(_size)]  # bytes


class HealthCheckSpec(_Model):
    """Active health checks a load balancer runs against each instance behind it."""

    interval: PositiveDuration = 5.0
    unhealthy_after: Whole = Field(2, ge=1, description="failed checks in a row to take it out")
    healthy_after: Whole = Field(2, ge=1, description="passed checks in a row to put it back")


class RateLimitSpec(_Model):
    """Admission control: a token bucket per component; requests without a token are rejected."""

    rate: Rate
    burst: Real = Field(1.0, ge=1)


DISCIPLINES = ("fifo", "lifo", "adaptive_lifo", "codel")


class DisciplineSpec(_Model):
    """The order in which an instance's wait queue serves its waiters (within a priority):
    ``fifo``; ``lifo`` (newest first); ``adaptive_lifo`` (first in, first out while the oldest
    waiter has waited at most ``target``, newest first beyond); ``codel`` (first in, first out,
    and a waiter is dropped as rejected when it reaches the head having waited more than
    ``target`` while the queue is congested, or more than ``interval`` otherwise: the queue
    turns congested once it has not been empty for ``interval``, and stays so until
    ``interval`` passes without a drop; after Facebook's controlled-delay queue). A plain
    name stands for ``{type: name}``."""

    type: Literal["fifo", "lifo", "adaptive_lifo", "codel"] = "fifo"
    target: PositiveDuration = Field(
        0.005, description="codel: the longest wait while the queue stays busy; adaptive_lifo: "
                           "the oldest waiter's wait beyond which the newest is served first")
    interval: PositiveDuration = Field(
        0.1, description="codel: how long the queue must stay non-empty to count as congested; "
                         "also the longest wait while it is not")

    @model_validator(mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v


def _discipline(v: Any) -> Any:
    if isinstance(v, str) and v not in DISCIPLINES:
        close = difflib.get_close_matches(v, DISCIPLINES, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown queue discipline {excerpt(v)} ({hint}one of {', '.join(DISCIPLINES)})")
    return v


#: A queue discipline: a name, or a mapping with ``type`` and its parameters.
Discipline = Annotated[DisciplineSpec, BeforeValidator(_discipline)]


class ConcurrencyLimitSpec(_Model):
    """A cap on the requests in flight at each instance (waiting or in service, forward hops
    included): an arrival at the cap is rejected at once. ``limit`` is a fixed cap;
    ``adaptive`` adapts it per instance, as Netflix's concurrency-limits library does:

    * ``aimd``: +1 per answer while the instance is at least half full, times
      ``backoff_ratio`` on a drop (a visit that did not end OK) or a residence time above
      ``timeout``;
    * ``gradient``: ``limit x min(1, max(0.5, tolerance x rtt_noload / rtt)) + queue_size``
      (``queue_size`` defaults to the square root of the limit), a decrease smoothed by
      ``smoothing``, halved on a drop; ``rtt_noload`` is the least residence time seen, and
      ``rtt`` the mean over a window of ``window`` answers.

    The limit stays within ``[min, max]``."""

    limit: Whole | None = Field(None, ge=1, le=MAX_QUEUE, description="a fixed cap")
    adaptive: Literal["aimd", "gradient"] | None = None
    initial: Whole | None = Field(None, ge=1, le=MAX_QUEUE, description="the starting limit (aimd 10, gradient 50)")
    min: Whole = Field(1, ge=1, le=MAX_QUEUE)
    max: Whole = Field(1000, ge=1, le=MAX_QUEUE)
    backoff_ratio: Real = Field(0.9, ge=0.5, lt=1.0, description="aimd: the factor on a drop")
    timeout: PositiveDuration = Field(5.0, description="aimd: a residence time above it counts as a drop")
    tolerance: Real = Field(2.0, ge=1.0, le=100.0, description="gradient: the latency growth tolerated")
    smoothing: Fraction = Field(0.2, description="gradient: weight of a new, lower estimate")
    queue_size: Real | None = Field(None, ge=0, description="gradient: growth allowance (default sqrt(limit))")
    window: Whole = Field(10, ge=1, le=100_000, description="gradient: answers per update")

    @model_validator(mode="after")
    def _one(self) -> ConcurrencyLimitSpec:
        if (self.limit is None) == (self.adaptive is None):
            raise ValueError("give either 'limit' (a fixed cap) or 'adaptive' (aimd or gradient)")
        if self.min > self.max:
            raise ValueError(f"'min' ({self.min}) must be at most 'max' ({self.max})")
        if self.adaptive is not None and self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(f"'initial' ({self.initial}) must lie within [min, max] = [{self.min}, {self.max}]")
        return self

    @property
    def start(self) -> float:
        """The limit at the start of a run."""
        if self.limit is not None:
            return float(self.limit)
        initial = self.initial if self.initial is not None else (10 if self.adaptive == "aimd" else 50)
        return float(min(self.max, max(self.min, initial)))


class ComponentBase(_Model):
    """Fields every component kind has, and the graph rules a kind may add to."""

    routes_callees: ClassVar[bool] = False  # True: picks its callees' instances by its own policy
    deployable: ClassVar[bool] = False  # True: a deployment may replace its instances (deployments)

    def zone_of(self, instance: int) -> str | None:
        """The zone of instance ``instance`` (zones in a list are dealt out in turn)."""
        if self.zone is None or isinstance(self.zone, str):
            return self.zone
        return self.zone[instance % len(self.zone)]

    @property
    def zones(self) -> list[str]:
        if self.zone is None:
            return []
        return [self.zone] if isinstance(self.zone, str) else list(dict.fromkeys(self.zone))

    def region_of(self, copy: int) -> str | None:
        """The region of copy ``copy`` (an instance, or a datastore's replica; regions in a
        list are dealt out in turn, like zones)."""
        if self.region is None or isinstance(self.region, str):
            return self.region
        return self.region[copy % len(self.region)]

    @property
    def regions(self) -> list[str]:
        """The regions its copies are in (none: ``[]``)."""
        if self.region is None:
            return []
        return [self.region] if isinstance(self.region, str) else list(dict.fromkeys(self.region))

    description: str | None = None
    region: str | Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="region (see the top-level 'regions:'), or a list: instances (a "
                          "datastore's replicas) spread over them in turn")
    zone: str | Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="availability zone, or a list: instances spread over them in turn")
    instances: Whole = Field(1, ge=1, le=MAX_INSTANCES)
    service_time: ServiceTime = Field(default_factory=_zero_service_time)
    policy: Policy = Field(
        "round_robin",
        description="how callers without a load balancer spread requests over the instances",
    )
    fanout: Literal["sequential", "parallel"] = "sequential"
    cost: CostSpec | None = Field(
        None, description="price in USD: {per_instance_hour: x} and the like; a plain number "
                          "is the kind's natural unit")

    # -- price: the units a kind accepts; the first is what a plain number means (None: a
    # plain number is refused); the hourly unit and what its quantity counts
    @property
    def tracks_freshness(self) -> bool:
        """Whether the component serves reads from copies that can lag behind the writes
        (replicas, cache entries): the run then keeps freshness accounting
        (:mod:`simarch.runtime.freshness`)."""
        return False

    cost_units: ClassVar[tuple[str, ...]] = ("per_instance_hour",)
    plain_cost_unit: ClassVar[str | None] = "per_instance_hour"
    hourly_unit: ClassVar[str | None] = "per_instance_hour"
    box_unit: ClassVar[str] = "instances"

    @field_validator("cost", mode="before")
    @classmethod
    def _cost_units(cls, v: Any) -> Any:
        kind = _kind_name(cls)
        allowed = " or ".join(cls.cost_units)
        if isinstance(v, bool):
            raise ValueError(f"a price is a number of USD or {{{cls.cost_units[0]}: USD}}, got {str(v).lower()}")
        if isinstance(v, (int, float)):
            if cls.plain_cost_unit is None:
                raise ValueError(f"a {kind} is priced {allowed}: say which, e.g. "
                                 f"{{{cls.cost_units[0]}: {v:g}}}")
            return {cls.plain_cost_unit: v}
        if isinstance(v, dict):
            for unit in v:
                if unit in cls.cost_units:
                    continue
                if unit in UNITS:
                    raise ValueError(f"a {kind} is priced {allowed}, not {unit} (allowed: {', '.join(cls.cost_units)})")
                close = difflib.get_close_matches(str(unit), cls.cost_units, n=1, cutoff=0.5)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"unknown unit of price {excerpt(unit)} ({hint}a {kind} is priced "
                                 f"{allowed})")
            return v
        if v is None or isinstance(v, CostSpec):
            return v
        raise ValueError(f"a price is a number of USD or a mapping such as {{{cls.cost_units[0]}: 0.08}}, "
                         f"got {excerpt(v)}")

    @model_validator(mode="before")
    @classmethod
    def _workers_from_cores(cls, data: Any, info: ValidationInfo) -> Any:
        """With an ``instance_type`` and no ``workers``, one worker per core of the type."""
        if not isinstance(data, dict) or "workers" not in cls.model_fields or "workers" in data:
            return data
        given = data.get("instance_type")
        entry = given if isinstance(given, InstanceType) else catalogue_of(info).get(given)
        if entry is None:
            return data  # no instance type, or an unknown one: its own field reports it
        return {**data, "workers": entry.cores}

    @property
    def priced(self) -> bool:
        """Whether the component has a price (a ``cost``, or an ``instance_type``)."""
        return self.cost is not None or getattr(self, "instance_type", None) is not None

    @property
    def needs_message_rate(self) -> bool:
        """Whether its price counts messages (so its monthly cost needs their rate)."""
        return self.cost is not None and self.cost.unit == "per_million_messages"

    def monthly_cost(self, name: str, messages_per_s: float | None = None) -> CostLine | None:
        """The component's line of the design's cost (``None`` when it has no price): an
        hourly price (the ``cost``, else its instance type's) times its boxes and 730 hours."""
        it: InstanceType | None = getattr(self, "instance_type", None)
        if self.cost is not None and self.cost.unit in HOURLY_UNITS:
            note = f"explicit price, not {it.name}'s" if it is not None else ""
            return hourly_line(name, self.kind, self.cost.unit, self.cost.price, self.boxes,
                               self.box_unit, "explicit", None if it is None else it.name, note)
        if it is not None and self.hourly_unit is not None:
            return hourly_line(name, self.kind, self.hourly_unit, it.per_hour, self.boxes,
                               self.box_unit, f"catalogue: {it.name}", it.name,
                               "built-in price not confirmed" if it.catalogue == "built-in" and not it.source
                               else "")
        return None

    def miss_share(self) -> float:
        """The share of visits that take its ``on: miss`` calls, as far as the spec says
        (without the capacity model): 1 when unknown."""
        return 1.0

    @property
    def changes_instances(self) -> bool:
        """Whether its instances come and go during the run (autoscaling, deployments): the
        runtime then keeps its rotation (:mod:`simarch.runtime.rotation`)."""
        return False

    @property
    def boxes(self) -> int:
        """How many boxes (instances, or datastore replicas) the component runs."""
        return self.instances

    @property
    def copies(self) -> int:
        """How many copies of each piece of its work exist (for redundancy and zones)."""
        return self.instances

    @property
    def worker_limit(self) -> int | None:
        """Concurrent requests one instance serves at most (``None``: no limit)."""
        return getattr(self, "workers", None)

    @property
    def data_layout(self) -> tuple[int, int] | None:
        """``(shards, copies of each shard)`` of the data the component keeps for good, or
        ``None`` when it keeps none (caches and queues hold data for a while only). The
        storage estimate sizes the components that have one."""
        return None

    # -- graph rules (raise SpecError with the path of the offending field)
    def check(self, name: str, spec: Spec) -> None:
        """Rules for the component as a whole, once the spec is parsed."""

    def check_call_from(self, name: str, call: CallSpec, i: int, spec: Spec) -> None:
        """Rules for a call this component makes."""
        if call.on == "miss":
            raise SpecError(f"'on: miss' needs a cache as caller; '{name}' is a {self.kind}",
                            ("calls", i, "on"))

    def check_call_to(self, name: str, call: CallSpec, i: int, spec: Spec) -> None:
        """Rules for a call this component receives."""

    def check_class(self, name: str, cls: str, spec: Spec) -> None:
        """Rules for a request class that reaches this component."""

    def check_crash(self, name: str, fault, i: int) -> None:
        """Rules for a crash fault aimed at this component."""
        if fault.shard is not None or fault.replica is not None:
            raise SpecError(f"'shard' and 'replica' apply to datastores; '{name}' is a {self.kind}",
                            ("faults", i, "shard"))
        if fault.instances is not None and fault.instances > self.boxes:
            raise SpecError(f"'{name}' has {self.boxes} instances, cannot crash {fault.instances}",
                            ("faults", i, "instances"))

    def check_link(self, name: str, other: str, fault, i: int, spec: Spec) -> None:
        """Rules for a partition or loss fault between this component and ``other``."""

    def check_flush(self, name: str, fault, i: int) -> None:
        """Rules for a cache_flush fault aimed at this component."""
        raise SpecError(f"cache_flush needs an LRU cache (with 'capacity'); '{name}' is a {self.kind}",
                        ("faults", i, "target"))


class ScaleStepSpec(_Model):
    """One step of a step-scaling policy: when the metric is ``above`` a threshold, ``add``
    instances; when it is ``below`` one, ``remove`` instances."""

    above: Real | None = None
    below: Real | None = None
    add: Whole | None = Field(None, ge=1, le=MAX_INSTANCES)
    remove: Whole | None = Field(None, ge=1, le=MAX_INSTANCES)

    @model_validator(mode="after")
    def _one_way(self) -> ScaleStepSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("a step has exactly one of 'above' (with 'add') or 'below' (with 'remove')")
        if self.above is not None and (self.add is None or self.remove is not None):
            raise ValueError("a step 'above' a threshold adds instances: give 'add' (and no 'remove')")
        if self.below is not None and (self.remove is None or self.add is not None):
            raise ValueError("a step 'below' a threshold removes instances: give 'remove' (and no 'add')")
        return self


class ColdStartSpec(_Model):
    """How much slower a new instance serves while it warms up: its service times are
    multiplied by ``factor`` at first, back to 1 after ``period``, by ``decay``."""

    factor: Real = Field(ge=1, le=1000)
    period: PositiveDuration
    decay: Literal["linear", "exponential", "step"] = "linear"


AUTOSCALE_POLICIES = ("target_tracking", "step", "on_demand")
AUTOSCALE_METRICS = ("utilization", "in_flight", "queue_length")


class AutoscaleSpec(_Model):
    """Autoscaling of a service: the policy, its bounds and timings, the delay and the cold
    start of a new instance, and how a removed instance drains (see
    docs/background/autoscaling.md). Defaults follow AWS target tracking: one-minute metrics
    and evaluations, a 300 s scale-in cooldown."""

    policy: Literal["target_tracking", "step", "on_demand"] = "target_tracking"
    metric: Literal["utilization", "in_flight", "queue_length"] = Field(
        "utilization", description="utilization (busy workers / workers in service), in_flight "
                                   "(requests held per instance) or queue_length (waiting work per instance)")
    target: Real | None = Field(None, gt=0, description="target tracking: the metric's target value")
    steps: Annotated[list[ScaleStepSpec], Field(min_length=1, max_length=100)] | None = None
    min: Whole = Field(1, ge=0, le=MAX_INSTANCES)
    max: Whole = Field(ge=1, le=MAX_INSTANCES)
    interval: PositiveDuration = Field(60.0, description="time between evaluations of the policy")
    window: PositiveDuration = Field(60.0, description="the metric is averaged over this long")
    scale_out_cooldown: Duration = 0.0
    scale_in_cooldown: Duration = 300.0
    provisioning: Dist = Field(default_factory=lambda: Constant(0.0),
                               description="time from the decision to add an instance until it takes requests")
    cold_start: ColdStartSpec | None = None
    drain_timeout: PositiveDuration | None = Field(
        None, description="how long a removed instance may take to finish its work (null: all of it)")

    @model_validator(mode="after")
    def _policy_fields(self) -> AutoscaleSpec:
        if self.policy == "target_tracking":
            if self.target is None:
                raise ValueError("target tracking needs a 'target' value of its metric "
                                 "(e.g. target: 0.6 for 60% utilisation)")
            if self.steps is not None:
                raise ValueError("'steps' belong to policy: step, not target_tracking")
        elif self.policy == "step":
            if self.steps is None:
                raise ValueError("policy: step needs 'steps', e.g. [{above: 0.8, add: 2}, {below: 0.3, remove: 1}]")
            if self.target is not None:
                raise ValueError("'target' belongs to policy: target_tracking, not step")
        elif self.target is not None or self.steps is not None:
            raise ValueError("policy: on_demand starts an instance for each message that finds none idle: "
                             "'target' and 'steps' do not apply")
        if self.metric == "utilization" and self.target is not None and self.target > 1:
            raise ValueError(f"a utilisation target is a fraction in (0, 1], got {self.target:g}")
        return self


@component_model
class ServiceSpec(ComponentBase):
    """A tier of identical instances, each a pool of ``workers`` with a bounded wait queue."""

    kind: Literal["service"]
    deployable: ClassVar[bool] = True
    workers: Whole = Field(1, ge=1, le=MAX_WORKERS)
    queue: Whole | None = Field(None, ge=0, le=MAX_QUEUE)
    rate_limit: RateLimitSpec | None = None
    instance_type: InstanceTypeName | None = Field(None, description=_INSTANCE_TYPE_HELP)
    discipline: Discipline | None = Field(None, description="the wait queue's order: fifo, lifo, adaptive_lifo, codel")
    concurrency_limit: ConcurrencyLimitSpec | None = None

    autoscale: AutoscaleSpec | None = Field(
        None, description="add and remove instances during the run; 'instances' is the initial count")

    @property
    def changes_instances(self) -> bool:
        return self.autoscale is not None

    def check(self, name: str, spec: Spec) -> None:
        a = self.autoscale
        if a is None:
            return
        here = ("components", name, "autoscale")
        if a.min > a.max:
            raise SpecError(f"autoscale.min ({a.min}) is above autoscale.max ({a.max})", (*here, "min"))
        if not a.min <= self.instances <= a.max:
            raise SpecError(f"'instances' is the initial count of an autoscaled service: it must lie "
                            f"within autoscale.min..max ({a.min}..{a.max}), got {self.instances}",
                            ("components", name, "instances"))
        consumer = any(c.to == name and spec.components[c.source].kind == "queue" for c in spec.calls)
        called = any(c.to == name and spec.components[c.source].kind != "queue" for c in spec.calls)
        entry = spec.workload.entry == name or (spec.workload.entry is None
                                                and not any(c.to == name for c in spec.calls))
        if a.policy == "on_demand" and (not consumer or called or entry):
            raise SpecError(f"policy: on_demand needs a consumer group: '{name}' must consume from a queue "
                            "(its waiting messages are the one queue that instances start for) and take no "
                            "other calls", (*here, "policy"))
        if a.min == 0 and (called or entry or not consumer):
            raise SpecError(f"autoscale.min: 0 leaves no instance to answer the calls to '{name}': only a "
                            "consumer of a queue may scale to zero (messages wait in the queue)", (*here, "min"))
        if a.min == 0 and a.policy == "target_tracking" and a.metric != "queue_length":
            raise SpecError(f"with autoscale.min: 0, {a.metric} is not measured while no instance runs: "
                            "scale a consumer from zero on metric: queue_length (its backlog)", (*here, "metric"))


@component_model
class LoadBalancerSpec(ComponentBase):
    """A load balancer: its own instances, latency and connection limit; routes by ``policy``."""

    kind: Literal["load_balancer"]
    connections: Whole | None = Field(None, ge=1, le=MAX_WORKERS)
    queue: Whole | None = Field(None, ge=0, le=MAX_QUEUE)
    health_check: HealthCheckSpec | None = None
    instance_type: InstanceTypeName | None = Field(
        None, description="a name in the catalogue of instance types: prices the load balancer by the hour")
    discipline: Discipline | None = Field(None, description="the wait queue's order: fifo, lifo, adaptive_lifo, codel")
    routes_callees: ClassVar[bool] = True

    @property
    def worker_limit(self) -> int | None:
        return self.connections

    @model_validator(mode="after")
    def _queue_needs_limit(self) -> LoadBalancerSpec:
        if self.queue is not None and self.connections is None:
            raise ValueError("'queue' bounds the wait for 'connections': give 'connections' too")
        if self.discipline is not None and self.connections is None:
            raise ValueError("'discipline' orders the wait for 'connections': give 'connections' too")
        return self


@component_model
class CacheSpec(ComponentBase):
    """An LRU cache over request keys (``capacity``), or a fixed ``hit_ratio``."""

    kind: Literal["cache"]
    capacity: Whole | None = Field(None, ge=1, le=MAX_KEYS)
    hit_ratio: Fraction | None = None
    ttl: PositiveDuration | None = None
    workers: Whole | None = Field(None, ge=1, le=MAX_WORKERS)
    queue: Whole | None = Field(None, ge=0, le=MAX_QUEUE)
    instance_type: InstanceTypeName | None = Field(None, description=_INSTANCE_TYPE_HELP)
    item_size: Size | None = Field(None, description="bytes an entry takes (1KB, 512B): memory = capacity x item_size")
    discipline: Discipline | None = Field(None, description="the wait queue's order: fifo, lifo, adaptive_lifo, codel")
    write_policy: Literal["write_through", "write_around", "write_back"] | None = Field(
        None, description="what a write (a class with op: write) does: write_through (store, then "
                          "update the entry), write_around (store, then delete the entry after "
                          "invalidation_delay), write_back (acknowledge at once, write the store "
                          "write_back_delay later); none: a write is a lookup like a read")
    invalidation_delay: Duration | None = Field(
        None, description="write_around: how long after the write the entry is deleted (default 0)")
    write_back_delay: PositiveDuration | None = Field(
        None, description="write_back: how long a written key stays dirty before it is written to "
                          "the store (default 1s); later writes to a dirty key go with it")
    coalesce: bool = Field(False, description="single flight: one fetch per key in flight, the "
                                              "other misses of the key wait for its result")

    cost_units: ClassVar[tuple[str, ...]] = ("per_instance_hour", "per_gb_month")
    plain_cost_unit: ClassVar[str | None] = None  # memory or nodes: a plain number would be a guess

    @property
    def tracks_freshness(self) -> bool:
        """An LRU cache logs how stale its hits are (when the design writes: its entries
        outlive the writes of their keys until they expire, are invalidated or evicted)."""
        return self.capacity is not None

    @model_validator(mode="after")
    def _one_of(self) -> CacheSpec:
        if self.queue is not None and self.workers is None:
            raise ValueError("'queue' bounds the wait for 'workers': give 'workers' too")
        if self.discipline is not None and self.workers is None:
            raise ValueError("'discipline' orders the wait for 'workers': give 'workers' too")
        if (self.capacity is None) == (self.hit_ratio is None):
            raise ValueError("give exactly one of 'capacity' (an LRU over request keys) or 'hit_ratio'")
        if self.ttl is not None and self.capacity is None:
            raise ValueError("'ttl' needs an LRU cache: give 'capacity' instead of 'hit_ratio'")
        for field in ("write_policy", "coalesce"):
            if getattr(self, field) and self.capacity is None:
                raise ValueError(f"'{field}' needs an LRU cache over request keys: give 'capacity' "
                                 "instead of 'hit_ratio' (a fixed hit ratio has no entries)")
        if self.invalidation_delay is not None and self.write_policy != "write_around":
            raise ValueError("'invalidation_delay' is the delay of write_around's invalidation: "
                             "give write_policy: write_around (or leave the delay out)")
        if self.write_back_delay is not None and self.write_policy != "write_back":
            raise ValueError("'write_back_delay' is how long a write_back cache keeps a write "
                             "before the store gets it: give write_policy: write_back (or leave it out)")
        if self.cost is not None and self.cost.unit == "per_gb_month" and (
                self.capacity is None or self.item_size is None):
            raise ValueError("a price per_gb_month is for the cache's memory, capacity x item_size: "
                             "give 'capacity' (entries) and 'item_size' (bytes an entry takes, e.g. 1KB)")
        return self

    @property
    def memory_gb(self) -> float | None:
        """The memory its entries take, in GB (10^9 bytes): capacity x item_size."""
        if self.capacity is None or self.item_size is None:
            return None
        return self.capacity * self.item_size / 1e9

    def monthly_cost(self, name: str, messages_per_s: float | None = None) -> CostLine | None:
        if self.cost is not None and self.cost.unit == "per_gb_month":
            gb = self.memory_gb
            assert gb is not None
            it = self.instance_type
            return CostLine(name, self.kind, "per_gb_month", self.cost.price, gb, "GB",
                            self.cost.price * gb, "explicit", None if it is None else it.name,
                            f"{self.capacity:,} entries x {self.item_size:,.0f} bytes")
        return super().monthly_cost(name, messages_per_s)

    def miss_share(self) -> float:
        return 1.0 - self.hit_ratio if self.hit_ratio is not None else 1.0

    def check_call_from(self, name: str, call: CallSpec, i: int, spec: Spec) -> None:
        if call.on == "miss" and call.mode == "forward":
            raise SpecError("an 'on: miss' call is made by the cache itself: mode 'call' or 'async'",
                            ("calls", i, "mode"))

    def check_class(self, name: str, cls: str, spec: Spec) -> None:
        if self.capacity is not None and spec.workload.requests[cls].keys is None:
            raise SpecError(
                f"the LRU cache '{name}' needs request keys, but class '{cls}' has none: "
                f"give workload.requests.{cls}.keys or set hit_ratio",
                ("components", name, "capacity"))
        if self.write_policy is not None and spec.workload.op(cls) == "write" and not any(
                c.source == name and c.on == "miss" and (c.requests is None or cls in c.requests)
                for c in spec.calls):
            raise SpecError(
                f"the {self.write_policy} cache '{name}' has no store behind it for the writes of "
                f"class '{cls}': add an 'on: miss' call from '{name}' to the store that takes them",
                ("components", name, "write_policy"))

    def check_flush(self, name: str, fault, i: int) -> None:
        if self.capacity is None:
            raise SpecError(f"cache_flush needs an LRU cache (with 'capacity'); '{name}' is a cache "
                            "with a fixed hit_ratio", ("faults", i, "target"))


class LagSpec(_Model):
    """The replication stream of a datastore: the network delay of each copy (one way; an
    acknowledgement travels back with another draw). The replica then applies the copy on its
    own workers with the write's service time, so the lag grows when it is busy."""

    network: Dist = Field(default_factory=lambda: Constant(0.0005),
                          description="one-way network delay of a copy (default 0.5 ms)")


QuorumSize = Literal["one", "quorum", "all"] | Annotated[Whole, Field(ge=1, le=MAX_REPLICAS)]


def _quorum_size(v: str | int, n: int) -> int:
    if v == "one":
        return 1
    if v == "quorum":
        return n // 2 + 1
    if v == "all":
        return n
    return int(v)


class QuorumSpec(_Model):
    """Dynamo-style quorums over the N = ``replicas`` copies of a shard: ``r`` and ``w`` are
    ``one``, ``quorum`` (a majority, N // 2 + 1), ``all`` or a number of copies."""

    r: QuorumSize = Field("quorum", description="copies a read waits for")
    w: QuorumSize = Field("quorum", description="copies a write waits for")


@component_model
class DatastoreSpec(ComponentBase):
    """A sharded, replicated datastore: keys hash to shards, each shard has ``replicas`` copies."""

    kind: Literal["datastore"]
    model: Literal["primary_replica", "leaderless_quorum", "document", "in_memory_kv", "scatter_gather"] | None = Field(
        None, description="an archetype whose documented presets fill the fields not given "
                          "(simarch.model.archetypes)")
    shards: Whole = Field(1, ge=1, le=MAX_INSTANCES)
    replicas: Whole = Field(1, ge=1, le=MAX_REPLICAS, description="copies per shard, the primary included")
    workers: Whole = Field(1, ge=1, le=MAX_WORKERS, description="workers per replica")
    queue: Whole | None = Field(None, ge=0, le=MAX_QUEUE, description="wait-queue bound per replica")
    replication: Literal["async", "semi_sync", "majority", "sync"] = Field(
        "async", description="when a write is acknowledged: at the primary (async), after one "
                             "replica's copy (semi_sync), a majority of the copies, the primary "
                             "included (majority), or every copy (sync)")
    read_from: Literal["any", "primary", "bounded_staleness", "read_your_writes"] = Field(
        "any", description="which copy serves a read: any live replica, the primary, a replica "
                           "lagging at most 'max_staleness', or one that holds the session's "
                           "last write (else the primary)")
    vnodes: Whole = Field(100, ge=1, le=10_000, description="virtual nodes per shard on the hash ring")
    failover: PositiveDuration | None = Field(
        10.0, description="time to promote a replica when a primary dies; null: never")
    instance_type: InstanceTypeName | None = Field(
        None, description="a name in the catalogue of instance types: prices every replica by the "
                          "hour and, with no 'workers' given, gives each one worker per core")
    max_staleness: PositiveDuration | None = Field(
        None, description="with read_from: bounded_staleness, the most a replica may lag and "
                          "still serve reads")
    lag: LagSpec | None = Field(
        None, description="the replication stream's network delay (one way); setting it turns "
                          "on the freshness accounting")
    quorum: QuorumSpec | None = Field(
        None, description="leaderless replication: a write goes to every copy and waits for W, "
                          "a read asks every copy and waits for R")
    scatter_gather: bool = Field(
        False, description="every read fans out to all shards and waits for the slowest")
    leaders: Literal["single", "per_region"] = Field(
        "single", description="with copies in several regions: one primary per shard takes every "
                              "region's writes (single), or each region's first copy of a shard "
                              "is a leader that takes its region's writes, copied asynchronously "
                              "to every other copy, last writer wins (per_region)")

    cost_units: ClassVar[tuple[str, ...]] = ("per_replica_hour",)
    plain_cost_unit: ClassVar[str | None] = "per_replica_hour"
    hourly_unit: ClassVar[str | None] = "per_replica_hour"
    box_unit: ClassVar[str] = "replicas"  # every replica of every shard is a box

    @model_validator(mode="before")
    @classmethod
    def _archetype(cls, data: Any) -> Any:
        return apply_archetype(data, cls.model_fields)

    @model_validator(mode="after")
    def _no_instances(self) -> DatastoreSpec:
        if self.instances != 1:
            raise ValueError("a datastore scales by 'shards' and 'replicas', not 'instances'")
        return self

    @property
    def tracks_freshness(self) -> bool:
        """A store with more than one copy per shard tracks freshness: its replicas apply
        each write after the primary (a ``lag`` network delay plus the copy's queue and
        service), so a read may return an older value; a quorum store's copies likewise."""
        return self.quorum is not None or self.replicas > 1

    @property
    def quorum_sizes(self) -> tuple[int, int]:
        """(R, W) of a quorum store, as numbers of copies."""
        q = self.quorum
        assert q is not None
        return _quorum_size(q.r, self.replicas), _quorum_size(q.w, self.replicas)

    def check(self, name: str, spec: Spec) -> None:
        here = ("components", name)
        if self.max_staleness is not None and self.read_from != "bounded_staleness":
            raise SpecError("'max_staleness' goes with read_from: bounded_staleness "
                            f"(read_from is '{self.read_from}')", here + ("max_staleness",))
        if self.read_from == "bounded_staleness" and self.max_staleness is None:
            raise SpecError("read_from: bounded_staleness needs 'max_staleness' (a duration such as 100ms)",
                            here + ("max_staleness",))
        if self.read_from == "read_your_writes" and not any(
                rc.session is not None for rc in spec.workload.requests.values()):
            raise SpecError("read_from: read_your_writes routes by session: give some request "
                            "class 'session: key'", here + ("read_from",))
        if self.quorum is not None:
            for f in ("r", "w"):
                v = getattr(self.quorum, f)
                if isinstance(v, int) and v > self.replicas:
                    raise SpecError(f"quorum {f} = {v} is more than the {self.replicas} copies "
                                    "('replicas') of each shard", here + ("quorum", f))
            for f, default in (("replication", "async"), ("read_from", "any")):
                if getattr(self, f) != default:
                    raise SpecError(f"a quorum store has no primary: '{f}' does not apply "
                                    "(drop it, or drop 'quorum')", here + (f,))
            if self.scatter_gather:
                raise SpecError("scatter_gather does not combine with a quorum",
                                here + ("scatter_gather",))
        if self.leaders == "per_region":
            self._check_leaders(here, spec)
        if self.shards > 1 and self.shards * self.vnodes > MAX_RING_POINTS:
            raise SpecError(f"vnodes x shards is at most {MAX_RING_POINTS:,} points on the hash ring "
                            f"(got {self.vnodes:,} x {self.shards:,}): lower 'vnodes'",
                            ("components", name, "vnodes"))

    def _check_leaders(self, here: tuple, spec: Spec) -> None:
        """``leaders: per_region`` needs regions, copies with a primary, and async copies."""
        if self.quorum is not None:
            raise SpecError("a quorum store has no leaders: 'leaders: per_region' does not apply "
                            "(drop it, or drop 'quorum')", here + ("leaders",))
        if self.replication != "async":
            raise SpecError(f"leaders: per_region copies every write asynchronously: replication "
                            f"'{self.replication}' is not supported with it (use replication: async, "
                            "or leaders: single)", here + ("replication",))
        if spec.regions is None:
            raise SpecError("leaders: per_region places a leader in each region: the design has no "
                            "top-level 'regions:' section (add one, and give the store's copies "
                            "regions with 'region: [a, b]')", here + ("leaders",))
        zones = spec.regions.zones
        where = {self.region_of(i) or zones.get(self.zone_of(i) or "") for i in range(self.replicas)}
        if len(where - {None}) < 2:
            raise SpecError("leaders: per_region needs the copies of each shard in several regions "
                            "(give 'region' a list such as [us-east-1, eu-west-1], dealt out over "
                            f"the {self.replicas} replica(s) in turn)", here + ("region",))

    @property
    def boxes(self) -> int:
        return self.shards * self.replicas

    @property
    def copies(self) -> int:
        return self.replicas

    @property
    def data_layout(self) -> tuple[int, int] | None:
        return self.shards, self.replicas

    def check_crash(self, name: str, fault, i: int) -> None:
        if fault.shard is not None and fault.shard >= self.shards:
            raise SpecError(f"shard {fault.shard} out of range ('{name}' has shards 0..{self.shards - 1})",
                            ("faults", i, "shard"))
        if fault.replica is not None and fault.replica >= self.replicas:
            raise SpecError(f"replica {fault.replica} out of range (0..{self.replicas - 1})",
                            ("faults", i, "replica"))
        if fault.instances is not None and fault.instances > self.boxes:
            raise SpecError(f"'{name}' has {self.boxes} instances, cannot crash {fault.instances}",
                            ("faults", i, "instances"))


@component_model
class QueueSpec(ComponentBase):
    """A bounded message broker: producers return once a message is enqueued."""

    kind: Literal["queue"]
    capacity: Whole | None = Field(None, ge=1, le=MAX_QUEUE, description="messages held at most")

    cost_units: ClassVar[tuple[str, ...]] = ("per_million_messages",)
    plain_cost_unit: ClassVar[str | None] = "per_million_messages"
    hourly_unit: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _no_instance_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "instance_type" in data:
            raise ValueError("a queue is one logical broker priced per_million_messages: "
                             "'instance_type' does not apply (give cost: {per_million_messages: USD})")
        return data

    def monthly_cost(self, name: str, messages_per_s: float | None = None) -> CostLine | None:
        """Messages enqueued in a month (``messages_per_s`` x 730 hours) at the price per million."""
        if self.cost is None:
            return None
        rate = math.nan if messages_per_s is None else float(messages_per_s)
        per_month = rate * SECONDS_PER_MONTH
        return CostLine(name, self.kind, "per_million_messages", self.cost.price, per_month,
                        "messages", self.cost.price * per_month / 1e6, "explicit",
                        note="" if messages_per_s is not None else "no message rate")

    @model_validator(mode="after")
    def _one_instance(self) -> QueueSpec:
        if self.instances != 1:
            raise ValueError("a queue is one logical broker: 'instances' must be 1")
        return self

    def check_call_from(self, name: str, call: CallSpec, i: int, spec: Spec) -> None:
        super().check_call_from(name, call, i, spec)
        if call.resilient:
            raise SpecError("a queue's consumers pull messages: retries, circuit_breaker, hedge "
                            "and fallback do not apply", ("calls", i))
        dst = spec.components[call.to]
        if dst.kind != "service":
            raise SpecError(f"a queue's consumers are services; '{call.to}' is a {dst.kind}",
                            ("calls", i, "to"))
        if call.mode != "call":
            raise SpecError("calls from a queue are its consumers; 'mode' does not apply",
                            ("calls", i, "mode"))

    def check_call_to(self, name: str, call: CallSpec, i: int, spec: Spec) -> None:
        if call.mode == "forward":
            raise SpecError("a queue is called with mode 'call' or 'async', not 'forward'",
                            ("calls", i, "mode"))

    def check(self, name: str, spec: Spec) -> None:
        if not any(c.source == name for c in spec.calls):
            raise SpecError(f"the queue '{name}' has no consumers, so every message would be dropped: "
                            f"add a call from '{name}' to the service that consumes it",
                            ("components", name))

    def check_link(self, name: str, other: str, fault, i: int, spec: Spec) -> None:
        if any(c.source == name and c.to == other for c in spec.calls):
            raise SpecError(f"'{other}' consumes from the queue '{name}' by pulling messages; a "
                            f"{fault.kind} fault between them has no effect in the model: aim it at the "
                            "producer's call, or crash or slow the consumer", ("faults", i, "between"))



def component_union():
    """The discriminated union of every registered component model."""
    return Annotated[Union[tuple(COMPONENT_MODELS.values())], Field(discriminator="kind")]  # noqa: UP007


ComponentSpec = component_union()
KINDS = tuple(COMPONENT_MODELS)
