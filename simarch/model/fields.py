"""The building blocks of the spec models: scalar field types, size bounds, the frozen
base model and the per-class service time."""

from __future__ import annotations

import math
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from .dists import DISTRIBUTION_NAMES, Constant, Distribution, parse_distribution
from .units import parse_count, parse_duration, parse_fraction, parse_rate, parse_size

# --------------------------------------------------------------------------- scalar types


def _duration(v: Any) -> float:
    return parse_duration(v)


def _positive_duration(v: Any) -> float:
    return parse_duration(v, allow_zero=False)


def _dist(v: Any, info: ValidationInfo) -> Distribution:
    if isinstance(v, Distribution):
        return v
    base = (info.context or {}).get("base_dir") if info is not None else None
    return parse_distribution(v, base_dir=base)


def _whole(v: Any) -> Any:
    if isinstance(v, bool):  # YAML's true is not the number 1
        raise ValueError(f"expected a whole number, got {str(v).lower()}")
    return v


def _real(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got {str(v).lower()}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v}")
    return v


Whole = Annotated[int, BeforeValidator(_whole)]  # an int field: booleans refused
Real = Annotated[float, BeforeValidator(_real)]  # a float field: booleans, inf and nan refused
Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Count = Annotated[float, BeforeValidator(parse_count)]  # 2000000, '2M', '50k', '1.5B'
Size = Annotated[float, BeforeValidator(parse_size)]  # bytes: 512, '2KB', '4KiB'
Dist = Annotated[Distribution, BeforeValidator(_dist)]

# Sizes are held in memory (a pool per instance or replica, an entry per key): bound them.
MAX_INSTANCES = 10_000  # instances per component, shards per datastore
MAX_REPLICAS = 100
MAX_WORKERS = 100_000
MAX_QUEUE = 1_000_000_000
MAX_USERS = 1_000_000
MAX_DAILY_USERS = 100_000_000_000  # daily active users: more than ten times the world's population
MAX_KEYS = 10_000_000
MAX_ATTEMPTS = 100  # retries past this many attempts have no meaning
MAX_RING_POINTS = 200_000  # shards x vnodes on a datastore's hash ring

Policy = Literal["round_robin", "random", "least_connections", "power_of_two_choices"]
POLICIES: tuple[str, ...] = typing.get_args(Policy)


class _Model(BaseModel):
    """Strict (unknown fields are errors) and frozen: a validated model cannot be changed;
    ``Architecture.with_changes`` makes a new one."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True,
                              frozen=True)


# --------------------------------------------------------------------------- service time


class ServiceTime(_Model):
    """A service-time distribution, optionally different per request class or operation.

    In a spec it is either one distribution (``4ms``, ``{exponential: 2ms}``) or a mapping
    from request-class names, the operations ``read``/``write``, or ``default`` to
    distributions. Lookup order for a request: its class, its operation, ``default``.
    """

    default: Dist | None = None
    by_name: dict[str, Dist] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, ServiceTime):
            return v
        if v is None:
            raise ValueError("expected a distribution (e.g. 4ms, {exponential: 2ms}) or a mapping "
                             "from request class, operation or 'default' to distributions")
        if isinstance(v, dict) and set(v) <= {"default", "by_name"} and "by_name" in v:
            return v  # already in model form
        if isinstance(v, dict) and len(v) >= 1 and not (set(v) & set(DISTRIBUTION_NAMES)):
            by = dict(v)
            default = by.pop("default", None)
            return {"default": default, "by_name": by}
        return {"default": v}

    def lookup(self, cls_name: str, op: str) -> Distribution | None:
        if cls_name in self.by_name:
            return self.by_name[cls_name]
        if op in self.by_name:
            return self.by_name[op]
        return self.default

    def to_spec(self) -> Any:
        if not self.by_name:
            return self.default.to_spec() if self.default is not None else 0
        out: dict[str, Any] = {k: d.to_spec() for k, d in self.by_name.items()}
        if self.default is not None:
            out["default"] = self.default.to_spec()
        return out


ZERO = Constant(0.0)


def _zero_service_time() -> ServiceTime:
    return ServiceTime(default=ZERO)


