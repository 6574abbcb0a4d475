"""The spec of deployments: a new version of a service rolled out while the run goes on.

A design's top-level ``deployments`` list holds one entry per deployment, each naming its
``target`` service, when it starts (``at``) and its ``strategy``:

* ``rolling``: the instances are replaced ``batch`` at a time: each is taken out of
  rotation, drained (up to ``drain_timeout``), stopped, restarted (``restart``: the time
  from stop to ready), and put back once the health checks in front pass; ``pause`` after
  each batch. With ``surge``, that many extra instances start before the old ones stop.
* ``canary``: ``share`` of the instances are restarted into the new version, which may
  carry its own error rate and latency (``version``), and watched for ``bake``; the
  ``rollback`` rule returns them to the old version when their error rate or p99 over its
  window exceeds its limits; otherwise (``promote``) the rest is rolled out as ``rolling``.
* ``blue_green``: a second full set of instances of the new version is started
  (``provision``); once it is ready traffic switches to it at once, and the old set drains
  and stays up for ``bake`` in case the ``rollback`` rule fires, then stops.

The runtime is :mod:`simarch.runtime.deploy`; what happens at each step, and which real
systems behave which way, is in ``docs/background/deployments.md``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from ..errors import SpecError, excerpt
from .dists import Distribution
from .fields import MAX_INSTANCES, Dist, Duration, Fraction, PositiveDuration, Real, Whole, _Model
from .units import parse_fraction

if TYPE_CHECKING:
    from .spec import Spec


class InstanceCount:
    """A number of instances given as a count (``2``) or as a share of the tier (``'25%'``,
    ``0.25``): :meth:`of` gives the count for a tier of ``n`` instances (a share is rounded
    up, to at least one instance)."""

    __slots__ = ("count", "share")

    def __init__(self, count: int | None = None, share: float | None = None):
        self.count = count
        self.share = share

    def of(self, n: int) -> int:
        if self.count is not None:
            return self.count
        assert self.share is not None
        return max(1, math.ceil(self.share * n - 1e-9))

    def to_spec(self) -> Any:
        return self.count if self.count is not None else f"{self.share * 100:g}%"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstanceCount) and (self.count, self.share) == (other.count, other.share)

    def __hash__(self) -> int:
        return hash((self.count, self.share))

    def __repr__(self) -> str:
        return f"InstanceCount({self.to_spec()!r})"


_COUNT_HINT = "a number of instances (1, 2) or a share of them ('25%', 0.25)"


def _instances(v: Any) -> InstanceCount:
    if isinstance(v, InstanceCount):
        return v
    if isinstance(v, bool):
        raise ValueError(f"expected {_COUNT_HINT}, got {str(v).lower()}")
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and v >= 1):
        if not 1 <= v <= MAX_INSTANCES:
            raise ValueError(f"expected {_COUNT_HINT}: a count is at least 1, got {excerpt(v)}")
        return InstanceCount(count=int(v))
    if isinstance(v, str) and not v.strip().endswith("%"):
        raise ValueError(f"expected {_COUNT_HINT}, got {excerpt(v)}")
    try:
        share = parse_fraction(v)
    except ValueError:
        raise ValueError(f"expected {_COUNT_HINT}, got {excerpt(v)}") from None
    if not share > 0:
        raise ValueError(f"expected {_COUNT_HINT}: a share is > 0, got {excerpt(v)}")
    return InstanceCount(share=share)


#: A number of instances, or a share of the tier's instances.
Instances = Annotated[InstanceCount, BeforeValidator(_instances)]


class ColdStartSpec(_Model):
    """A restarted (or new) instance serves slower for a while (a cold cache, a JIT that has
    not warmed up): its service times are multiplied by ``factor`` when it takes traffic
    again, back to 1 after ``period`` (``decay``: step, linear or exponential with time
    constant ``period``)."""

    factor: Real = Field(ge=1, le=1000)
    period: PositiveDuration
    decay: Literal["step", "linear", "exponential"] = "linear"


class VersionSpec(_Model):
    """How the new version behaves: the share of its visits that fail (after doing their
    work), and the factor its service times are multiplied by."""

    errors: Fraction = 0.0
    latency_factor: Real = Field(1.0, gt=0, le=1000)


class RollbackSpec(_Model):
    """Automatic rollback: when, over the last ``window``, the new version's visits fail
    more often than ``errors`` or their p99 exceeds ``p99``, the deployment is rolled back.
    The rule is judged every tenth of its window, on windows of at least ``min_requests``
    visits (a p99 on at least 100)."""

    errors: Fraction | None = None
    p99: PositiveDuration | None = None
    window: PositiveDuration = 30.0
    min_requests: Whole = Field(20, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _some_limit(self) -> RollbackSpec:
        if self.errors is None and self.p99 is None:
            raise ValueError("a rollback rule needs a limit: 'errors' (a share such as 1%) and/or "
                             "'p99' (a latency such as 200ms)")
        return self


class _DeploymentBase(_Model):
    name: str | None = Field(None, description="label in reports; default strategy:target")
    target: str = Field(description="the service deployed")
    at: Duration = Field(0.0, description="when the deployment starts (simulated time)")
    version: VersionSpec | None = Field(None, description="how the new version behaves (default: as the old)")
    drain_timeout: PositiveDuration = Field(
        30.0, description="the longest wait for an instance's work in progress once it is out "
                          "of rotation; what is left then fails")
    cold_start: ColdStartSpec | None = None

    @property
    def label(self) -> str:
        """The deployment's name in reports: ``name``, else ``strategy:target``."""
        return self.name or f"{self.strategy}:{self.target}"  # type: ignore[attr-defined]

    def spare_pools(self, instances: int) -> int:
        """Instances beyond the target's ``instances`` the deployment may run at once."""
        return 0

    def fewest_left(self, instances: int) -> int:
        """The fewest of the target's ``instances`` the deployment leaves taking requests
        at any time (0: it takes all the capacity away for a while)."""
        return instances


def _positive_mean(d: Distribution, what: str) -> None:
    if not d.mean > 0:
        raise ValueError(f"'{what}' must take some time: a distribution with a mean > 0, such as 20s")


class RollingDeployment(_DeploymentBase):
    """Replace the instances ``batch`` at a time, each restarted in place (or, with
    ``surge``, replaced by extra instances started first)."""

    strategy: Literal["rolling"]
    batch: Instances = Field(default_factory=lambda: InstanceCount(count=1))
    restart: Dist = Field(description="time from an instance's stop to its being ready")
    pause: Duration = Field(0.0, description="how long each batch stays in before the next starts")
    surge: Instances | None = Field(None, description="extra instances started before old ones stop")

    @model_validator(mode="after")
    def _times(self) -> RollingDeployment:
        _positive_mean(self.restart, "restart")
        return self

    def spare_pools(self, instances: int) -> int:
        return 0 if self.surge is None else self.surge.of(instances)

    def fewest_left(self, instances: int) -> int:
        batch = min(self.batch.of(instances), instances)
        return instances - batch + min(self.spare_pools(instances), batch)


class CanaryDeployment(_DeploymentBase):
    """Restart ``share`` of the instances into the new version, watch it for ``bake``,
    roll it back by the ``rollback`` rule, else roll the rest out (``promote``)."""

    strategy: Literal["canary"]
    share: Instances = Field(default_factory=lambda: InstanceCount(count=1))
    restart: Dist = Field(description="time from an instance's stop to its being ready")
    bake: PositiveDuration = Field(description="how long the canary is watched before the rest follows")
    rollback: RollbackSpec | None = None
    promote: bool = Field(True, description="after a good bake, roll the rest out in batches")
    batch: Instances = Field(default_factory=lambda: InstanceCount(count=1))
    pause: Duration = 0.0

    @model_validator(mode="after")
    def _times(self) -> CanaryDeployment:
        _positive_mean(self.restart, "restart")
        return self

    def fewest_left(self, instances: int) -> int:
        out = instances - min(self.share.of(instances), instances)
        if self.promote:
            out = min(out, instances - min(self.batch.of(instances), instances))
        return max(out, 0)


class BlueGreenDeployment(_DeploymentBase):
    """Start a second full set of instances (``provision``), switch every request to it at
    once, keep the old set up for ``bake`` (to switch back by the ``rollback`` rule), then
    stop it."""

    strategy: Literal["blue_green"]
    provision: Dist = Field(description="time to start the new set of instances")
    bake: Duration = Field(0.0, description="how long the old set stays up after the switch")
    rollback: RollbackSpec | None = None

    @model_validator(mode="after")
    def _times(self) -> BlueGreenDeployment:
        _positive_mean(self.provision, "provision")
        if self.rollback is not None and not self.bake > 0:
            raise ValueError("a rollback switches back to the old set, which stays up for 'bake' "
                             "after the switch: give 'bake' (e.g. 60s)")
        return self

    def spare_pools(self, instances: int) -> int:
        return instances


DeploymentSpec = Annotated[
    RollingDeployment | CanaryDeployment | BlueGreenDeployment,
    Field(discriminator="strategy"),
]
DEPLOYMENT_MODELS: dict[str, type[_DeploymentBase]] = {
    "rolling": RollingDeployment, "canary": CanaryDeployment, "blue_green": BlueGreenDeployment,
}
STRATEGIES = tuple(DEPLOYMENT_MODELS)


def spare_pools(spec: Spec) -> dict[str, int]:
    """Per deployed service, the instances beyond its ``instances`` that its deployments may
    run at once (the runtime builds their pools at the start)."""
    out: dict[str, int] = {}
    for d in spec.deployments:
        n = spec.components[d.target].instances
        out[d.target] = max(out.get(d.target, 0), d.spare_pools(n))
    return out


def check_deployments(spec: Spec) -> None:
    """Deployments name a service of the design and fit its instances."""
    comps = spec.components
    for i, d in enumerate(spec.deployments):
        where = ("deployments", i)
        if d.target not in comps:
            raise SpecError(f"unknown component '{d.target}' (components: {', '.join(comps)})",
                            (*where, "target"))
        comp = comps[d.target]
        if not comp.deployable:
            raise SpecError(f"deployments replace the instances of a service; '{d.target}' is a "
                            f"{comp.kind}", (*where, "target"))
        if getattr(comp, "autoscale", None) is not None:
            raise SpecError(f"'{d.target}' is autoscaled: a deployment of an autoscaled service is not "
                            "modelled (the autoscaler and the rollout would both move its instances); "
                            "deploy a fixed-size copy of it, or leave out 'autoscale'", (*where, "target"))
        n = comp.instances
        if isinstance(d, RollingDeployment):
            if d.batch.of(n) > n:
                raise SpecError(f"a batch of {d.batch.of(n)} is more than the {n} instance(s) of "
                                f"'{d.target}'", (*where, "batch"))
            if d.surge is not None and d.surge.of(n) > n:
                raise SpecError(f"a surge of {d.surge.of(n)} is more than the {n} instance(s) of "
                                f"'{d.target}' (at most one extra per instance)", (*where, "surge"))
        elif isinstance(d, CanaryDeployment):
            if n < 2:
                raise SpecError(f"a canary runs the new version beside the old, on some of the "
                                f"instances: '{d.target}' has one; give it 2 or more, or deploy it "
                                "'rolling'", (*where, "target"))
            if d.share.of(n) >= n:
                raise SpecError(f"a canary of {d.share.of(n)} instance(s) leaves none of the {n} of "
                                f"'{d.target}' on the old version: at most {n - 1}", (*where, "share"))
            if d.batch.of(n) > n:
                raise SpecError(f"a batch of {d.batch.of(n)} is more than the {n} instance(s) of "
                                f"'{d.target}'", (*where, "batch"))
