"""The spec format: pydantic models that validate a design once, at the edge.

Everything inside simarch trusts these typed objects, which are frozen once validated.
Durations are stored in seconds, rates per second, fractions in [0, 1], distributions as
:mod:`simarch.model.dists` objects. The component models live in
:mod:`simarch.model.components`; ``docs/reference/spec.md`` documents every field.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import SpecError, excerpt
from .archetypes import baseline
from .components import COMPONENT_MODELS, KINDS, ComponentBase, ComponentSpec
from .deployments import DEPLOYMENT_MODELS, DeploymentSpec
from .dists import Distribution
from .fields import (
    MAX_ATTEMPTS,
    MAX_DAILY_USERS,
    MAX_KEYS,
    MAX_USERS,
    Count,
    Dist,
    Duration,
    Fraction,
    PositiveDuration,
    Rate,
    Real,
    ServiceTime,
    Size,
    Whole,
    _Model,
)
from .pricing import InstanceType, load_catalogue
from .regions import RegionsSpec
from .units import SECONDS_PER_DAY, parse_multiplier
from .yamlio import read_yaml, yaml_load  # noqa: F401 - part of this module's API

# --------------------------------------------------------------------------- calls


class RetryBudgetSpec(_Model):
    """A token bucket shared by all calls on the edge: each first attempt deposits ``ratio``
    tokens (up to ``burst``), each retry spends one; with no token, no retry."""

    ratio: Real = Field(0.1, ge=0)
    burst: Real = Field(10.0, ge=1)


BACKOFFS = ("none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")


class RetrySpec(_Model):
    """Retries of a failed call, with backoff between attempts."""

    attempts: Whole = Field(3, ge=1, le=MAX_ATTEMPTS, description="attempts in all, the first included")
    backoff: Literal["none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter"] = "exponential"
    base: Duration = 0.01
    cap: Duration = 1.0
    on: list[Literal["timeout", "failed", "rejected"]] = Field(
        default_factory=lambda: ["timeout", "failed", "rejected"])
    budget: RetryBudgetSpec | None = None


class BreakerSpec(_Model):
    """A circuit breaker on a call: opens after ``failures`` consecutive failures, fails calls
    fast for ``open_for``, then lets ``probes`` trial calls through (half open)."""

    failures: Whole = Field(5, ge=1)
    open_for: PositiveDuration = 5.0
    probes: Whole = Field(1, ge=1)


class HedgeSpec(_Model):
    """Hedged requests: if no answer after ``after``, send another attempt; first success wins."""

    after: PositiveDuration
    max: Whole = Field(1, ge=1, le=MAX_ATTEMPTS, description="extra attempts at most")


class CallSpec(_Model):
    """An edge of the graph: ``from`` calls ``to``."""

    source: str = Field(alias="from")
    to: str
    requests: list[str] | None = Field(None, description="only these request classes take the call")
    probability: Fraction = 1.0
    on: Literal["miss"] | None = None
    latency: Dist | None = None
    timeout: PositiveDuration | None = None
    mode: Literal["call", "forward", "async"] = "call"
    retries: RetrySpec | None = None
    circuit_breaker: BreakerSpec | None = None
    hedge: HedgeSpec | None = None
    fallback: str | None = Field(None, description="component called instead when this call fails")
    deadline: Literal["propagate"] | None = Field(
        None, description="'propagate': the callee drops the request where it waits once the "
                          "caller's timeout has passed, instead of serving it (needs 'timeout')")
    cancel: bool = Field(
        False, description="stop the callee's work when the caller stops waiting: a timed-out "
                           "call, the losing copies of a hedged call (needs 'timeout' or 'hedge')")

    @model_validator(mode="after")
    def _overload_options(self) -> CallSpec:
        if self.deadline is not None and self.timeout is None:
            raise ValueError("'deadline: propagate' passes the caller's timeout on: give 'timeout' too")
        if self.cancel and self.timeout is None and self.hedge is None:
            raise ValueError("'cancel: true' stops the callee's work when the caller stops waiting: "
                             "give 'timeout' or 'hedge' too")
        return self

    @property
    def resilient(self) -> bool:
        return any(x is not None for x in (self.retries, self.circuit_breaker, self.hedge, self.fallback))

    def to_spec(self) -> dict[str, Any]:
        return model_to_spec(self)


def model_to_spec(model: BaseModel) -> dict[str, Any]:
    """The plain-dict form of a validated model: fields that differ from their defaults, with
    distributions and nested models in spec syntax. A datastore with a ``model`` is
    compared with its archetype's defaults instead, so that it reads back the same."""
    out: dict[str, Any] = {}
    base = baseline(model)
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        default = (field.get_default(call_default_factory=True) if base is None or name == "model"
                   else getattr(base, name))
        if name != "kind" and name != "source" and name != "to" and value == default:
            continue
        out[field.alias or name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, InstanceType):
        return value.name
    if isinstance(value, Distribution):
        return value.to_spec()
    if isinstance(value, ServiceTime):
        return value.to_spec()
    if isinstance(value, BaseModel):
        return model_to_spec(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- workload


class KeysSpec(_Model):
    """The key a request touches: ``{zipf: s, n: N}`` or ``{uniform: N}``, keys 0..N-1."""

    zipf: Real | None = Field(None, ge=0)
    n: Whole | None = Field(None, ge=1, le=MAX_KEYS)
    uniform: Whole | None = Field(None, ge=1, le=MAX_KEYS)

    @model_validator(mode="after")
    def _shape(self) -> KeysSpec:
        if self.zipf is not None:
            if self.uniform is not None:
                raise ValueError("give either 'zipf' (with 'n') or 'uniform', not both")
            if self.n is None:
                raise ValueError("'zipf' needs 'n', the number of keys (>= 1)")
        elif self.uniform is None:
            raise ValueError("give {zipf: s, n: N} or {uniform: N}")
        elif self.n is not None:
            raise ValueError("'n' goes with 'zipf'; for uniform keys write {uniform: N}")
        return self

    @property
    def count(self) -> int:
        return int(self.n if self.zipf is not None else self.uniform)  # type: ignore[arg-type]


_WRITE_NAMES = ("write", "put", "post", "update", "insert", "delete", "set")


#: Request priorities, highest first: wait queues serve a higher one first (non-preemptive)
#: and shedding drops the lowest first. A class's rank is its index here.
PRIORITIES: tuple[str, ...] = ("critical", "default", "sheddable")


class RequestClassSpec(_Model):
    weight: Real = Field(1.0, gt=0, le=1e9, allow_inf_nan=False)
    keys: KeysSpec | None = None
    op: Literal["read", "write"] | None = Field(
        None, description="datastore operation; default 'write' for write-like class names"
    )
    priority: Literal["critical", "default", "sheddable"] = Field(
        "default", description="wait queues serve higher priorities first; shedding drops the "
                               "lowest first")
    session: Literal["key"] | None = Field(
        None, description="the client session of a request: 'key' (each key is one client's own "
                          "record); datastores then check read-your-writes and monotonic reads")

    @field_validator("session")
    @classmethod
    def _session_needs_keys(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("keys") is None:
            raise ValueError("session: key needs 'keys' (the request's key is its session)")
        return v

    @property
    def rank(self) -> int:
        """The priority's rank: 0 (critical, served first) to 2 (sheddable)."""
        return PRIORITIES.index(self.priority)


_WRITE_RE = re.compile(r"^(?:" + "|".join(_WRITE_NAMES) + r")(?![a-z])")


def default_op(name: str) -> str:
    """The datastore operation of a request class that does not set ``op``: ``write`` when the
    name is, or starts with, a write-like word (write, put, post, update, insert, delete, set)
    followed by a non-letter (``write``, ``put_item``, ``update-cart``); else ``read``."""
    return "write" if _WRITE_RE.match(name.lower()) else "read"


class RampSpec(_Model):
    start: Real = Field(0.0, ge=0, alias="from")
    end: Real = Field(1.0, ge=0, alias="to")
    over: PositiveDuration
    at: Duration = 0.0


class StepSpec(_Model):
    at: Duration
    to: Real = Field(ge=0)
    until: Duration | None = None

    @model_validator(mode="after")
    def _order(self) -> StepSpec:
        if self.until is not None and self.until <= self.at:
            raise ValueError("'until' must be later than 'at'")
        return self


class DiurnalSpec(_Model):
    period: PositiveDuration = 86400.0
    amplitude: Real = Field(0.5, ge=0, le=1)
    peak: Duration = 0.0


class TraceSpec(_Model):
    file: str
    loop: bool = False


class ProfileSpec(_Model):
    """How the arrival rate changes over time: at most one of these."""

    constant: bool | None = None
    ramp: RampSpec | None = None
    step: StepSpec | None = None
    spike: StepSpec | None = None
    diurnal: DiurnalSpec | None = None
    trace: TraceSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        if v == "constant":
            return {"constant": True}
        if isinstance(v, dict) and "trace" in v and isinstance(v["trace"], str):
            return {**v, "trace": {"file": v["trace"]}}
        return v

    @model_validator(mode="after")
    def _one(self) -> ProfileSpec:
        set_ = [k for k in ("ramp", "step", "spike", "diurnal", "trace") if getattr(self, k) is not None]
        if len(set_) > 1:
            raise ValueError(f"give one profile, not {', '.join(set_)}")
        return self

    @property
    def kind(self) -> str:
        for k in ("ramp", "step", "spike", "diurnal", "trace"):
            if getattr(self, k) is not None:
                return k
        return "constant"


class StorageSpec(_Model):
    """The data the workload stores: bytes per write request (or per request) and how long
    they are kept; :func:`simarch.model.workload.storage_estimate` turns them into sizes."""

    per_write: Size | None = Field(None, gt=0, le=1e15, description="bytes stored by each write request")
    per_request: Size | None = Field(None, gt=0, le=1e15, description="bytes stored by every request")
    retention: PositiveDuration | None = Field(None, description="how long the data is kept")

    @model_validator(mode="after")
    def _one_size(self) -> StorageSpec:
        if self.per_write is not None and self.per_request is not None:
            raise ValueError("give 'per_write' (bytes stored by each write request) or 'per_request' "
                             "(bytes stored by every request), not both")
        if self.per_write is None and self.per_request is None:
            what = "'retention' needs a size" if self.retention is not None else "a size is missing"
            raise ValueError(f"{what}: give 'per_write' (bytes stored by each write request, e.g. "
                             "2KB) or 'per_request' (bytes stored by every request)")
        return self

    @property
    def bytes(self) -> float:
        """Bytes stored by each write (``per_write``) or each request (``per_request``)."""
        return float(self.per_write if self.per_write is not None else self.per_request)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bursty arrivals

MAX_MMPP_STATES = 16
MAX_BATCH = 1_000_000  # requests in one batch at most
MMPP_MEAN_TOL = 1e-3  # the state multipliers must average 1 within this (relative)


def _state_multiplier(v: Any) -> Any:
    """A state's rate: a multiplier of the workload's mean rate, ``0.5x``, ``0.5``, ``50%`` or
    0 (an off state)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a multiplier such as 0.5x, got {str(v).lower()}")
    if v == 0 or (isinstance(v, str) and v.strip().rstrip("x%").strip() in ("0", "0.0")):
        return 0.0
    return parse_multiplier(v)


class MmppStateSpec(_Model):
    """One state of a Markov-modulated Poisson process: while in it, requests arrive as a
    Poisson process at ``rate`` × the workload's mean rate; it lasts an exponential time of
    mean ``mean_sojourn``."""

    rate: Annotated[float, BeforeValidator(_state_multiplier)] = Field(
        description="multiplier of the workload's mean rate: 0.5x, 3x, 0 (off)")
    mean_sojourn: PositiveDuration = Field(description="mean time in the state (exponential)")


class MmppSpec(_Model):
    """A Markov-modulated Poisson process: the arrival rate switches between ``states``,
    visited in the order listed and round again (after the last, the first), each for an
    exponential time. The state rates are multipliers of the workload's mean rate and must
    average 1 over time (weighted by each state's share of time, ``mean_sojourn`` / the sum
    of them), so that ``rate`` stays the long-run mean."""

    states: list[MmppStateSpec]

    @field_validator("states")
    @classmethod
    def _count(cls, v: list[MmppStateSpec]) -> list[MmppStateSpec]:
        if not 2 <= len(v) <= MAX_MMPP_STATES:
            raise ValueError(f"an MMPP needs 2 to {MAX_MMPP_STATES} states, got {len(v)} (one state "
                             "is a Poisson process: leave out 'mmpp')")
        return v

    @model_validator(mode="after")
    def _mean_one(self) -> MmppSpec:
        shares = self.shares
        mean = sum(p * s.rate for p, s in zip(shares, self.states, strict=True))
        if abs(mean - 1.0) > MMPP_MEAN_TOL:
            rest = sum(p * s.rate for p, s in zip(shares[:-1], self.states[:-1], strict=True))
            last = (1.0 - rest) / shares[-1]
            hint = f"for example the last state at {last:.4g}x" if last >= 0 else ""
            scaled = ", ".join(f"{s.rate / mean:.4g}x" for s in self.states) if mean > 0 else ""
            if scaled:
                hint += (" or " if hint else "for example ") + f"every rate over {mean:.4g}: {scaled}"
            raise ValueError(
                f"the state rates average {mean:.4g}x over time (each weighted by its share of "
                f"time, {', '.join(f'{100 * p:.3g}%' for p in shares)}): they are multipliers of "
                f"the workload's mean rate and must average 1x, so that 'rate' stays the mean; "
                f"{hint}")
        return self

    @property
    def shares(self) -> tuple[float, ...]:
        """Each state's long-run share of time: its mean sojourn over the sum of them."""
        total = sum(s.mean_sojourn for s in self.states)
        return tuple(s.mean_sojourn / total for s in self.states)

    @property
    def multipliers(self) -> tuple[float, ...]:
        """The state rates as multipliers of the mean rate, rescaled to average 1 exactly."""
        mean = sum(p * s.rate for p, s in zip(self.shares, self.states, strict=True))
        return tuple(s.rate / mean for s in self.states)

    @property
    def peak(self) -> float:
        """The largest state multiplier."""
        return max(self.multipliers)

    def generator(self) -> Any:
        """The generator matrix Q of the modulating chain (numpy), states cycled in order."""
        k = len(self.states)
        q = np.zeros((k, k))
        for i, s in enumerate(self.states):
            q[i, i] = -1.0 / s.mean_sojourn
            q[i, (i + 1) % k] = 1.0 / s.mean_sojourn
        return q

    def index_of_dispersion(self, rate: float) -> float:
        """The asymptotic index of dispersion of counts, lim Var N(t) / E N(t) as t grows, of
        this process at a long-run mean of ``rate`` arrivals per second:
        ``1 + 2 (pi o lambda) D lambda / lambda_bar`` with D = (1 pi - Q)^-1 - 1 pi the
        deviation matrix of the modulating chain (1 for a Poisson process)."""
        pi = np.array(self.shares)
        lam = rate * np.array(self.multipliers)
        q = self.generator()
        one_pi = np.outer(np.ones(len(pi)), pi)
        dev = np.linalg.inv(one_pi - q) - one_pi
        mean = float(pi @ lam)
        if not mean > 0:
            return 1.0
        return 1.0 + 2.0 * float((pi * lam) @ dev @ lam) / mean


class BatchSizeSpec(_Model):
    """How many requests one arrival brings: a whole number >= 1 (``4``), ``{geometric:
    mean}`` (1, 2, 3, ... with P(k) = p (1 - p)^(k-1), p = 1 / mean), ``{uniform: [lo, hi]}``
    (whole numbers lo..hi, equally likely) or ``{values: [...], weights: [...]}`` (given
    sizes, equally likely without weights)."""

    constant: Whole | None = Field(None, ge=1, le=MAX_BATCH)
    geometric: Real | None = Field(None, ge=1, le=MAX_BATCH, description="mean batch size")
    uniform: list[Whole] | None = Field(None, min_length=2, max_length=2)
    values: list[Whole] | None = Field(None, min_length=1, max_length=10_000)
    weights: list[Real] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"constant": v}
        return v

    @model_validator(mode="after")
    def _one(self) -> BatchSizeSpec:
        given = [k for k in ("constant", "geometric", "uniform", "values") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one batch size: a whole number >= 1, {geometric: mean}, "
                             "{uniform: [lo, hi]} or {values: [...]}" +
                             (f", not {', '.join(given)}" if given else ""))
        if self.uniform is not None and not 1 <= self.uniform[0] <= self.uniform[1] <= MAX_BATCH:
            raise ValueError(f"'uniform' needs [lo, hi] with 1 <= lo <= hi <= {MAX_BATCH:,}")
        if self.values is not None and not all(1 <= x <= MAX_BATCH for x in self.values):
            raise ValueError(f"batch sizes in 'values' must be whole numbers from 1 to {MAX_BATCH:,}")
        if self.weights is not None:
            if self.values is None:
                raise ValueError("'weights' go with 'values'")
            if len(self.weights) != len(self.values) or not all(w >= 0 for w in self.weights) \
                    or not sum(self.weights) > 0:
                raise ValueError("'weights' needs one weight >= 0 per value, not all 0")
        return self

    def _pmf(self) -> tuple[list[int], list[float]] | None:
        if self.values is None:
            return None
        w = self.weights or [1.0] * len(self.values)
        total = sum(w)
        return list(self.values), [x / total for x in w]

    @property
    def mean(self) -> float:
        """E[X]."""
        if self.constant is not None:
            return float(self.constant)
        if self.geometric is not None:
            return float(self.geometric)
        if self.uniform is not None:
            return 0.5 * (self.uniform[0] + self.uniform[1])
        vals, p = self._pmf()  # type: ignore[misc]
        return sum(x * q for x, q in zip(vals, p, strict=True))

    @property
    def second_moment(self) -> float:
        """E[X^2]."""
        if self.constant is not None:
            return float(self.constant) ** 2
        if self.geometric is not None:
            p = 1.0 / self.geometric
            return (2.0 - p) / (p * p)
        if self.uniform is not None:
            lo, hi = self.uniform
            n = hi - lo + 1
            return self.mean ** 2 + (n * n - 1) / 12.0
        vals, p = self._pmf()  # type: ignore[misc]
        return sum(x * x * q for x, q in zip(vals, p, strict=True))

    def draw(self, rng: Any, n: int) -> Any:
        """``n`` batch sizes (a numpy integer array) from the generator ``rng``."""
        if self.constant is not None:
            return np.full(n, self.constant, dtype=np.int64)
        if self.geometric is not None:
            return rng.geometric(1.0 / self.geometric, n)
        if self.uniform is not None:
            return rng.integers(self.uniform[0], self.uniform[1] + 1, n)
        vals, p = self._pmf()  # type: ignore[misc]
        return np.asarray(vals, dtype=np.int64)[np.searchsorted(np.cumsum(p), rng.random(n), side="right")
                                                .clip(0, len(vals) - 1)]


class BatchSpec(_Model):
    """Batch arrivals: each arrival brings ``size`` requests at the same instant. The
    workload's rate stays the rate of requests; batches come at rate / E[size]."""

    size: BatchSizeSpec


class ArrivalsSpec(_Model):
    """The arrival process of an open workload, when it is not Poisson: a Markov-modulated
    Poisson process (``mmpp``), batch arrivals (``batch``), or both (batches that arrive as
    an MMPP). The workload's rate (``rate``, or the rate derived from
    ``daily_active_users``) stays the long-run mean rate of requests; the load multiplier
    scales every state's rate; a profile multiplies it over time."""

    mmpp: MmppSpec | None = None
    batch: BatchSpec | None = None

    @property
    def bursty(self) -> bool:
        """Whether anything is set (``arrivals: {}`` is Poisson)."""
        return self.mmpp is not None or self.batch is not None

    @property
    def batch_mean(self) -> float:
        """E[batch size] (1 without batches)."""
        return self.batch.size.mean if self.batch is not None else 1.0

    def index_of_dispersion(self, rate: float) -> float:
        """The asymptotic index of dispersion of request counts, lim Var N(t) / E N(t), at a
        long-run mean of ``rate`` requests per second: ``Var X / E X + E X × I_b`` for batches
        of size X whose arrivals have index I_b (1 for Poisson, the MMPP's otherwise; a
        compound Poisson process has ``E[X^2] / E[X]``); 1 for Poisson arrivals."""
        x1 = self.batch_mean
        x2 = self.batch.size.second_moment if self.batch is not None else 1.0
        i_b = self.mmpp.index_of_dispersion(rate / x1) if self.mmpp is not None else 1.0
        return (x2 - x1 * x1) / x1 + x1 * i_b


class WorkloadSpec(_Model):
    """Open-loop Poisson arrivals at ``rate`` (or at the peak rate derived from
    ``daily_active_users``), or ``users`` in a closed loop with ``think_time``. ``arrivals``
    makes an open loop bursty (an MMPP, batches) at the same long-run mean rate."""

    rate: Rate | None = None
    daily_active_users: Count | None = Field(None, ge=1, le=MAX_DAILY_USERS)
    requests_per_user: Count | None = Field(None, gt=0, le=1e9, description="requests per user per day")
    peak_to_mean: Real | None = Field(None, description="peak rate / mean rate over a day, >= 1")
    users: Whole | None = Field(None, ge=1, le=MAX_USERS)
    think_time: Dist | None = None
    entry: str | None = None
    requests: dict[str, RequestClassSpec] = Field(
        default_factory=lambda: {"default": RequestClassSpec()}
    )
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    arrivals: ArrivalsSpec | None = Field(
        None, description="a bursty arrival process (MMPP, batches); default Poisson")
    storage: StorageSpec | None = None
    regions: dict[str, Fraction] | None = Field(
        None, description="where the users are: share of the requests per region (summing to 1)")

    @field_validator("peak_to_mean", mode="before")
    @classmethod
    def _peak_at_least_mean(cls, v: Any) -> Any:
        if v is None:
            return v
        try:
            ratio = parse_multiplier(v)
        except ValueError:
            ratio = 0.0
        if not ratio >= 1:
            raise ValueError("expected a ratio >= 1 such as 3 or '3x' (the peak rate is at least "
                             f"the mean), got {excerpt(v)}")
        return ratio

    @model_validator(mode="after")
    def _open_or_closed(self) -> WorkloadSpec:
        if self.daily_active_users is not None:
            if self.rate is not None:
                raise ValueError("give 'rate' or 'daily_active_users' (the rate is derived from "
                                 "them), not both")
            if self.users is not None:
                raise ValueError("give closed-loop 'users' or 'daily_active_users' (an open-loop "
                                 "rate derived from them), not both")
            if self.requests_per_user is None:
                raise ValueError("'daily_active_users' needs 'requests_per_user', the requests each "
                                 "user sends per day")
            if self.profile.trace is not None:
                raise ValueError("a 'trace' profile gives absolute rates, so 'daily_active_users' "
                                 "would not be used: give one of them (ramp, step, spike and "
                                 "diurnal profiles multiply the derived rate)")
        else:
            for name in ("requests_per_user", "peak_to_mean"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' goes with 'daily_active_users' (a rate derived "
                                     "from the users)")
        if self.users is not None:
            if self.rate is not None:
                raise ValueError("give 'rate' (open loop) or 'users' (closed loop), not both")
            if self.think_time is None:
                raise ValueError("closed-loop 'users' need a 'think_time'")
            if not self.think_time.mean > 0:
                raise ValueError("'think_time' must have a mean > 0, or a user could loop forever "
                                 "at one instant")
            if self.profile.kind != "constant":
                raise ValueError("a rate 'profile' applies to open-loop 'rate' workloads only")
            if self.arrivals is not None:
                raise ValueError("'arrivals' (an MMPP, batches) shapes an open-loop workload's "
                                 "arrivals ('rate' or 'daily_active_users'); closed-loop 'users' "
                                 "send their next request a think time after the last one")
        else:
            if self.think_time is not None:
                raise ValueError("'think_time' goes with closed-loop 'users'")
            if self.rate is None and self.daily_active_users is None and self.profile.trace is None:
                raise ValueError("give 'rate' (requests per second), 'daily_active_users' (with "
                                 "'requests_per_user') or closed-loop 'users'")
        if not self.requests:
            raise ValueError("'requests' needs at least one request class")
        if self.storage is not None and self.mean_rate is None:
            raise ValueError("'storage' fills at the mean rate of an open-loop workload: give "
                             "'rate' or 'daily_active_users' (closed-loop 'users' and a 'trace' "
                             "profile have no set mean rate)")
        return self

    def op(self, cls_name: str) -> str:
        rc = self.requests[cls_name]
        return rc.op or default_op(cls_name)

    @property
    def requests_per_day(self) -> float | None:
        """``daily_active_users`` × ``requests_per_user``; ``None`` for a workload not given by
        its users."""
        if self.daily_active_users is None or self.requests_per_user is None:
            return None
        return self.daily_active_users * self.requests_per_user

    @property
    def mean_rate(self) -> float | None:
        """The mean open-loop rate over a day at 1x load, requests per second: requests per day
        / 86,400 s for a workload given by its users, ``rate`` otherwise; ``None`` for a closed
        loop or a trace. Storage fills at this rate."""
        per_day = self.requests_per_day
        if per_day is not None:
            return per_day / SECONDS_PER_DAY
        if self.users is not None or self.profile.trace is not None:
            return None
        return self.rate

    @property
    def base_rate(self) -> float:
        """The open-loop arrival rate at 1x load, before any profile multiplier, requests per
        second: ``rate``, or for a workload given by its users the peak rate, mean rate ×
        ``peak_to_mean`` (designs are sized for the peak); 0 for a closed loop or a trace
        without ``rate``. The simulation and every analysis read the rate here."""
        per_day = self.requests_per_day
        if per_day is not None:
            return per_day / SECONDS_PER_DAY * (self.peak_to_mean or 1.0)
        return self.rate or 0.0

    @property
    def bursty(self) -> bool:
        """Whether the arrivals are not Poisson (an MMPP or batches: ``arrivals``)."""
        return self.arrivals is not None and self.arrivals.bursty

    def index_of_dispersion(self, load: float = 1.0) -> float:
        """The asymptotic index of dispersion of the open loop's request counts at ``load``
        (:meth:`ArrivalsSpec.index_of_dispersion` at the base rate × ``load``; 1 for Poisson
        arrivals). Profiles are left out: it is that of the process they multiply."""
        if not self.bursty:
            return 1.0
        assert self.arrivals is not None
        return self.arrivals.index_of_dispersion(self.base_rate * load)


# --------------------------------------------------------------------------- faults


class _FaultBase(_Model):
    name: str | None = Field(None, description="label in reports; default kind:target")
    at: Duration = Field(0.0, description="when the fault starts (simulated time)")
    duration: PositiveDuration | None = Field(None, description="how long it lasts; default: to the end")

    @property
    def end(self) -> float:
        return math.inf if self.duration is None else self.at + self.duration


class CrashFault(_FaultBase):
    """A crash: a component (all or ``instances`` of its instances), one datastore ``shard``
    or ``replica``, or every component in a ``zone``."""

    kind: Literal["crash"]
    target: str | None = None
    zone: str | None = None
    region: str | None = Field(None, description="every instance in this region (see 'regions:')")
    instances: Whole | None = Field(None, ge=1, description="how many instances (default all)")
    shard: Whole | None = Field(None, ge=0)
    replica: Whole | None = Field(None, ge=0)
    behaviour: Literal["fail", "hang"] = Field(
        "fail", description="calls to a dead instance fail fast (refused) or hang (until timeout)")

    @model_validator(mode="after")
    def _where(self) -> CrashFault:
        if sum(x is not None for x in (self.target, self.zone, self.region)) != 1:
            raise ValueError("give exactly one of 'target' (a component), 'zone' or 'region'")
        if self.zone is not None and (self.instances or self.shard is not None or self.replica is not None):
            raise ValueError("a zone crash takes down the whole zone: no instances/shard/replica")
        if self.region is not None and (self.instances or self.shard is not None or self.replica is not None):
            raise ValueError("a region crash takes down the whole region: no instances/shard/replica")
        if self.replica is not None and self.shard is None:
            raise ValueError("'replica' needs 'shard'")
        return self


class RandomFault(_FaultBase):
    """Independent failures of every instance (or datastore replica) of ``target``: up for a
    time drawn from ``mtbf``, down for a time drawn from ``mttr``, and again; or of a whole
    ``region`` (every instance in it at once)."""

    kind: Literal["random"]
    target: str | None = None
    region: str | None = Field(None, description="the whole region fails and recovers at once")
    mtbf: Dist
    mttr: Dist
    behaviour: Literal["fail", "hang"] = "fail"

    @model_validator(mode="after")
    def _where(self) -> RandomFault:
        if (self.target is None) == (self.region is None):
            raise ValueError("give exactly one of 'target' (a component) or 'region'")
        return self


class SlowFault(_FaultBase):
    """Degradation: service times multiplied by ``factor`` and increased by ``add``."""

    kind: Literal["slow"]
    target: str
    factor: Real = Field(1.0, ge=0)
    add: Dist | None = None


class WorkerLossFault(_FaultBase):
    """A ``fraction`` of every instance's workers is lost (rounded up)."""

    kind: Literal["worker_loss"]
    target: str
    fraction: Fraction


class ErrorFault(_FaultBase):
    """The component answers with an error with ``probability`` (after doing its work)."""

    kind: Literal["errors"]
    target: str
    probability: Fraction


class PartitionFault(_FaultBase):
    """A network partition between two components: calls either way hang or fail fast."""

    kind: Literal["partition"]
    between: list[str] = Field(min_length=2, max_length=2)
    behaviour: Literal["fail", "hang"] = "hang"


class LossFault(_FaultBase):
    """Each call between two components is lost with ``probability``: it hangs (until the
    caller's timeout) or fails fast."""

    kind: Literal["loss"]
    between: list[str] = Field(min_length=2, max_length=2)
    probability: Fraction
    behaviour: Literal["fail", "hang"] = "hang"


class CacheFlushFault(_FaultBase):
    """The cache loses every entry at ``at`` (a cold start); ``duration`` does not apply."""

    kind: Literal["cache_flush"]
    target: str


def fault_label(f: Any) -> str:
    """The name of a fault in reports: its ``name``, else ``kind:target``."""
    if f.name:
        return f.name
    where = getattr(f, "target", None) or getattr(f, "zone", None) or getattr(f, "region", None)
    if getattr(f, "between", None):
        where = "|".join(f.between)
    extra = ""
    if getattr(f, "shard", None) is not None:
        extra = f".shard{f.shard}" + (f".replica{f.replica}" if f.replica is not None else "")
    elif getattr(f, "instances", None):
        extra = f"(x{f.instances})"
    return f"{f.kind}:{where}{extra}"



FaultSpec = Annotated[
    CrashFault | RandomFault | SlowFault | WorkerLossFault | ErrorFault | PartitionFault | LossFault | CacheFlushFault,
    Field(discriminator="kind"),
]
FAULT_MODELS: dict[str, type[_FaultBase]] = {
    "crash": CrashFault, "random": RandomFault, "slow": SlowFault, "worker_loss": WorkerLossFault,
    "errors": ErrorFault, "partition": PartitionFault, "loss": LossFault,
    "cache_flush": CacheFlushFault,
}


# --------------------------------------------------------------------------- SLO and run


class SLOSpec(_Model):
    """Targets a run is judged against: latency percentiles (upper bounds), availability (a lower
    bound) and the share of stale reads (an upper bound, see :mod:`simarch.runtime.freshness`)."""

    mean: PositiveDuration | None = None
    p50: PositiveDuration | None = None
    p90: PositiveDuration | None = None
    p95: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    p999: PositiveDuration | None = None
    availability: Fraction | None = None
    stale_reads: Fraction | None = Field(
        None, description="the largest share of reads that may return a value older than the last write")


class SimulationSpec(_Model):
    """Defaults for a run of this design; the CLI and ``simulate()`` arguments override them."""

    duration: PositiveDuration = 300.0
    warmup: Duration = 30.0
    seed: Whole = Field(1, ge=0)
    max_events: Real = Field(2e8, gt=0, description="refuse a run estimated to need more events")


NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def _check_names(names: Any, what: str) -> None:
    for n in names:
        if not isinstance(n, str) or not NAME_RE.match(n):
            raise ValueError(f"{what} name {excerpt(n)} is not allowed: use letters, digits, '_' and '-'")


class Spec(_Model):
    """A whole design."""

    @model_validator(mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            if isinstance(v.get("components"), dict):
                _check_names(v["components"], "component")
            wl = v.get("workload")
            if isinstance(wl, dict) and isinstance(wl.get("requests"), dict):
                _check_names(wl["requests"], "request class")
        return v

    name: str = "architecture"
    description: str | None = None
    workload: WorkloadSpec
    components: dict[str, ComponentSpec] = Field(min_length=1)
    calls: list[CallSpec] = Field(default_factory=list)
    slo: SLOSpec | None = None
    simulation: SimulationSpec = Field(default_factory=SimulationSpec)
    faults: list[FaultSpec] = Field(default_factory=list)
    deployments: list[DeploymentSpec] = Field(
        default_factory=list, description="new versions of services rolled out during the run")
    regions: RegionsSpec | None = Field(
        None, description="the design's regions, the round trips between them and the failover")
    catalogue: str | dict[str, Any] | None = Field(
        None, description="instance types of your own: a YAML file (relative to the spec's "
                          "folder) or a mapping {types: {name: {per_hour, cores}}}")


# --------------------------------------------------------------------------- errors


def _allowed_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _resolve_model(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the fields at ``loc`` (a pydantic error location)."""
    cur: Any = Spec
    for part in loc:
        cur = _unwrap(cur)
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            field = next((f for n, f in cur.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            cur = field.annotation
        elif typing.get_origin(cur) is dict:
            cur = typing.get_args(cur)[1]
        elif typing.get_origin(cur) is list:
            cur = typing.get_args(cur)[0]
        elif part in COMPONENT_MODELS and loc[0] == "components":  # union of component kinds
            cur = COMPONENT_MODELS[part]
        elif part in FAULT_MODELS and loc[0] == "faults":
            cur = FAULT_MODELS[part]
        elif part in DEPLOYMENT_MODELS and loc[0] == "deployments":
            cur = DEPLOYMENT_MODELS[part]
        else:
            return None
    cur = _unwrap(cur)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _unwrap(ann: Any) -> Any:
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _clean_loc(loc: tuple) -> tuple:
    """Drop the discriminator tag pydantic inserts after ``components.<name>``."""
    out = list(loc)
    if len(out) >= 3 and out[0] == "components" and out[2] in KINDS:
        del out[2]
    if len(out) >= 3 and out[0] == "faults" and out[2] in FAULT_MODELS:
        del out[2]
    if len(out) >= 3 and out[0] == "deployments" and out[2] in DEPLOYMENT_MODELS:
        del out[2]
    # ServiceTime's internal fields are not part of the spec format
    for i in range(len(out) - 1, 0, -1):
        if out[i] in ("default", "by_name") and out[i - 1] == "service_time":
            del out[i]
    return tuple(out)


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _message(err: dict) -> str:
    typ = err["type"]
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if typ == "extra_forbidden":
        owner = _resolve_model(tuple(err["loc"][:-1]))
        if owner is None:
            return f"unknown field '{err['loc'][-1]}'"
        allowed = _allowed_fields(owner)
        close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown field '{err['loc'][-1]}' ({hint}allowed: {', '.join(allowed)})"
    if typ == "missing":
        return "required field is missing"
    if typ in ("union_tag_invalid", "union_tag_not_found") and err["loc"] and err["loc"][0] == "deployments":
        strategies = list(DEPLOYMENT_MODELS)
        if typ == "union_tag_invalid":
            close = difflib.get_close_matches(str(ctx.get("tag")), strategies, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            return f"unknown strategy {excerpt(ctx.get('tag'))} ({hint}allowed: {', '.join(strategies)})"
        return f"missing 'strategy' (allowed: {', '.join(strategies)})"
    if typ in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(FAULT_MODELS if err["loc"] and err["loc"][0] == "faults" else KINDS)
        if typ == "union_tag_invalid":
            close = difflib.get_close_matches(str(ctx.get("tag")), kinds.split(", "), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            return f"unknown kind {excerpt(ctx.get('tag'))} ({hint}allowed: {kinds})"
        return f"missing 'kind' (allowed: {kinds})"
    if typ == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = difflib.get_close_matches(str(given), allowed, n=1) if isinstance(given, str) else []
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{excerpt(given)} is not allowed ({hint}allowed: {ctx.get('expected')})"
    if typ in _BOUNDS:
        op, key = _BOUNDS[typ]
        return f"must be {op} {ctx.get(key)} (got {excerpt(given)})"
    if typ.endswith("_type") or typ.endswith("_parsing"):
        return f"{msg[0].lower()}{msg[1:]} (got {excerpt(given)})"
    if typ == "int_from_float":
        return f"must be a whole number (got {excerpt(given)})"
    if typ == "too_short":
        return "must not be empty"
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, "):]
    return msg


def spec_error_from_validation(exc: ValidationError, source: str | None = None,
                               prefix: tuple = ()) -> SpecError:
    """One :class:`SpecError` for the first (most specific) error of a pydantic failure."""
    errors = exc.errors(include_url=False)
    # an unknown field usually explains a "missing" one next to it (a typo): report it first
    errors.sort(key=lambda e: 0 if e["type"] == "extra_forbidden" else 1)
    first = errors[0]
    loc = prefix + _clean_loc(tuple(first["loc"]))
    msg = _message(first)
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return SpecError(msg, loc, source)


# --------------------------------------------------------------------------- loading


def parse_spec(data: dict, source: str | None = None, base_dir: Path | None = None) -> Spec:
    """Validate a spec mapping into a :class:`Spec`; raises :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(f"a spec is a mapping, got {type(data).__name__}", (), source)
    catalogue = load_catalogue(data.get("catalogue"), base_dir, source)  # what instance_type may name
    try:
        return Spec.model_validate(data, context={"base_dir": base_dir, "catalogue": catalogue})
    except ValidationError as e:
        raise spec_error_from_validation(e, source) from None


def parse_component(name: str, data: dict, base_dir: Path | None = None,
                    catalogue: Any = None) -> ComponentBase:
    """Validate one component mapping (used by the Python builder); ``catalogue`` is the
    design's top-level ``catalogue`` (a file or a mapping; default: the built-in one)."""
    if not isinstance(data, dict):
        raise SpecError(f"a component is a mapping of fields, got {excerpt(data)}", ("components", name))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in COMPONENT_MODELS:
        raise SpecError(f"unknown kind {excerpt(kind)} (allowed: {', '.join(KINDS)})",
                        ("components", name, "kind"))
    context = {"base_dir": base_dir, "catalogue": load_catalogue(catalogue, base_dir)}
    try:
        return COMPONENT_MODELS[kind].model_validate(data, context=context)
    except ValidationError as e:
        raise spec_error_from_validation(e, None, ("components", name)) from None


def parse_call(index: int, data: dict) -> CallSpec:
    try:
        return CallSpec.model_validate(data)
    except ValidationError as e:
        raise spec_error_from_validation(e, None, ("calls", index)) from None


def component_to_spec(comp: ComponentBase) -> dict[str, Any]:
    """The plain-dict form of a validated component (defaults omitted)."""
    return model_to_spec(comp)
