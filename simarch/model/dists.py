"""Distributions of durations (in seconds) as immutable, validated value objects.

Each distribution knows its exact ``mean`` and ``variance``, samples vectorised from a
``numpy.random.Generator``, and converts to and from the spec syntax used in architecture
files (see :func:`parse_distribution`). :func:`sampler` turns a distribution into a fast
zero-argument callable for the simulation hot path.
"""

from __future__ import annotations

import abc
import csv
import itertools
import math
import numbers
import pathlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import excerpt
from .files import open_text
from .units import DURATION_UNITS, format_duration, parse_duration, parse_rate

__all__ = [
    "DISTRIBUTION_NAMES",
    "Constant",
    "Distribution",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "LogNormal",
    "Mixture",
    "Normal",
    "Pareto",
    "Uniform",
    "Weibull",
    "parse_distribution",
    "sampler",
]

#: z such that P(Z <= z) = 0.99 for a standard normal Z.
_Z99 = 2.3263478740408408
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Normal(mu, sigma) keeps less than 1e-88 of its mass above 0 when mu < -20 sigma: refuse it.
_NORMAL_MIN_Z = -20.0


# --------------------------------------------------------------------------- validation


def _number(where: str, name: str, value: object) -> float:
    """``value`` as a finite float, or a ValueError naming ``where.name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where}: {name} must be finite, got {value!r}")
    return number


def _non_negative(where: str, name: str, value: object) -> float:
    number = _number(where, name, value)
    if number < 0:
        raise ValueError(f"{where}: {name} must not be negative, got {value!r}")
    return number


def _positive(where: str, name: str, value: object) -> float:
    number = _number(where, name, value)
    if number <= 0:
        raise ValueError(f"{where}: {name} must be > 0, got {value!r}")
    return number


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _gamma_fn(x: float) -> float:
    """math.gamma, with overflow mapped to infinity."""
    try:
        return math.gamma(x)
    except OverflowError:
        return math.inf


def _dur(seconds: float) -> str:
    return format_duration(seconds)


def _num(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------- base class


class Distribution(abc.ABC):
    """A distribution of non-negative durations, in seconds."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def mean(self) -> float:
        """Exact mean (``inf`` when infinite)."""

    @property
    @abc.abstractmethod
    def variance(self) -> float:
        """Exact variance (``inf`` when infinite)."""

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, variance / mean**2 (0 for a point mass at 0)."""
        variance, mean = self.variance, self.mean
        if math.isinf(variance):
            return math.inf
        if variance == 0:
            return 0.0
        return variance / mean**2

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` independent samples: a float64 array of shape (n,), all values >= 0."""

    @abc.abstractmethod
    def to_spec(self) -> Any:
        """A plain dict (YAML-ready) that :func:`parse_distribution` reads back to an equal object."""


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True, slots=True, repr=False)
class Constant(Distribution):
    """Always ``value`` seconds."""

    value: float

    def __post_init__(self) -> None:
        _set(self, "value", _non_negative("constant", "value", self.value))

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.float64)

    def to_spec(self) -> dict[str, Any]:
        return {"constant": _duration_spec(self.value)}

    def __repr__(self) -> str:
        return f"Constant({_dur(self.value)})"


@dataclass(frozen=True, slots=True, repr=False)
class Exponential(Distribution):
    """Exponential with the given ``mean`` (> 0) in seconds; rate = 1 / mean."""

    # An explicit field() keeps the inherited ``mean`` property from being taken as the default.
    mean: float = field()

    def __post_init__(self) -> None:
        _set(self, "mean", _positive("exponential", "mean", self.mean))

    @property
    def variance(self) -> float:
        return self.mean**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    def to_spec(self) -> dict[str, Any]:
        return {"exponential": {"mean": _duration_spec(self.mean)}}

    def __repr__(self) -> str:
        return f"Exponential(mean={_dur(self.mean)})"


@dataclass(frozen=True, slots=True, repr=False)
class Uniform(Distribution):
    """Uniform on [low, high], with 0 <= low <= high."""

    low: float
    high: float

    def __post_init__(self) -> None:
        low = _non_negative("uniform", "low", self.low)
        high = _non_negative("uniform", "high", self.high)
        if high < low:
            raise ValueError(f"uniform: high must be >= low, got low={low!r}, high={high!r}")
        _set(self, "low", low)
        _set(self, "high", high)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def to_spec(self) -> dict[str, Any]:
        return {"uniform": {"low": _duration_spec(self.low), "high": _duration_spec(self.high)}}

    def __repr__(self) -> str:
        return f"Uniform(low={_dur(self.low)}, high={_dur(self.high)})"


@dataclass(frozen=True, slots=True, repr=False)
class Normal(Distribution):
    """Normal(mu, sigma) truncated to [0, inf): the conditional law of X given X >= 0.

    ``mu`` and ``sigma`` are the parameters before truncation; ``mean`` and ``variance`` are the
    exact moments after it. ``mu`` may be negative, down to -20 sigma.
    """

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        mu = _number("normal", "mu", self.mu)
        sigma = _positive("normal", "sigma", self.sigma)
        if mu < _NORMAL_MIN_Z * sigma:
            raise ValueError(
                f"normal: the mean before truncation must be >= {_NORMAL_MIN_Z:g} sd (truncation "
                f"at 0 would cut off almost all of the distribution), got mean={mu!r}, sd={sigma!r}"
            )
        _set(self, "mu", mu)
        _set(self, "sigma", sigma)

    def _alpha_lambda(self) -> tuple[float, float]:
        """Standardised truncation point and inverse Mills ratio phi(alpha) / (1 - Phi(alpha))."""
        alpha = -self.mu / self.sigma
        tail = 0.5 * math.erfc(alpha / _SQRT2)
        density = _INV_SQRT_2PI * math.exp(-0.5 * alpha * alpha)
        return alpha, density / tail

    @property
    def mean(self) -> float:
        _, lam = self._alpha_lambda()
        return self.mu + self.sigma * lam

    @property
    def variance(self) -> float:
        alpha, lam = self._alpha_lambda()
        return self.sigma**2 * max(0.0, 1.0 + alpha * lam - lam * lam)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        alpha = -self.mu / self.sigma
        if alpha <= 0:
            # At least half of the untruncated mass is above 0: plain rejection.
            accept = 0.5 * math.erfc(alpha / _SQRT2)

            def propose(m: int) -> np.ndarray:
                z = rng.standard_normal(m)
                return z[z >= alpha]
        else:
            # Far tail: exponential proposal (Robert, 1995), acceptance rate >= ~0.76.
            accept = 0.75
            lam = (alpha + math.sqrt(alpha * alpha + 4.0)) / 2.0

            def propose(m: int) -> np.ndarray:
                z = alpha + rng.standard_exponential(m) / lam
                keep = rng.random(m) <= np.exp(-0.5 * (z - lam) ** 2)
                return z[keep]

        z = _fill_by_rejection(n, propose, accept)
        return np.maximum(self.mu + self.sigma * z, 0.0)

    def to_spec(self) -> dict[str, Any]:
        return {"normal": {"mean": _duration_spec(self.mu), "sd": _duration_spec(self.sigma)}}

    def __repr__(self) -> str:
        return f"Normal(mu={_dur(self.mu)}, sigma={_dur(self.sigma)})"


def _fill_by_rejection(n: int, propose: Callable[[int], np.ndarray], accept: float) -> np.ndarray:
    """Collect ``n`` accepted values from ``propose(m)``, which returns the accepted subset of m draws."""
    out = np.empty(n, dtype=np.float64)
    filled = 0
    while filled < n:
        need = n - filled
        got = propose(int(need / accept * 1.05) + 16)
        take = min(got.size, need)
        out[filled : filled + take] = got[:take]
        filled += take
    return out


@dataclass(frozen=True, slots=True, repr=False)
class LogNormal(Distribution):
    """exp(N(mu, sigma**2)): ``mu`` and ``sigma`` are those of ln(seconds); median = exp(mu)."""

    mu: float
    sigma: float

    def __post_init__(self) -> None:
        _set(self, "mu", _number("lognormal", "mu", self.mu))
        _set(self, "sigma", _non_negative("lognormal", "sigma", self.sigma))
        if abs(self.mu) > 50 or self.sigma > 10:
            raise ValueError(
                f"lognormal: mu must be within [-50, 50] and sigma <= 10 (ln-seconds), "
                f"got mu={self.mu!r}, sigma={self.sigma!r}")

    @classmethod
    def from_median_p99(cls, median: float, p99: float) -> LogNormal:
        """The lognormal whose median and 99th percentile are the given durations (p99 >= median > 0)."""
        median = _positive("lognormal", "median", median)
        p99 = _positive("lognormal", "p99", p99)
        if p99 < median:
            raise ValueError(
                f"lognormal: p99 must be >= median, got median={median!r}, p99={p99!r}"
            )
        return cls(math.log(median), math.log(p99 / median) / _Z99)

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> LogNormal:
        """The lognormal with the given mean (> 0) and coefficient of variation (>= 0)."""
        mean = _positive("lognormal", "mean", mean)
        cv = _non_negative("lognormal", "cv", cv)
        s2 = math.log1p(cv * cv)
        return cls(math.log(mean) - s2 / 2, math.sqrt(s2))

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    @property
    def variance(self) -> float:
        s2 = self.sigma**2
        return math.expm1(s2) * math.exp(2 * self.mu + s2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)

    def to_spec(self) -> dict[str, Any]:
        return {"lognormal": {"mu": self.mu, "sigma": self.sigma}}

    def __repr__(self) -> str:
        return f"LogNormal(median={_dur(self.median)}, sigma={_num(self.sigma)})"


@dataclass(frozen=True, slots=True, repr=False)
class Gamma(Distribution):
    """Gamma with ``shape`` k > 0 and ``scale`` theta > 0 (seconds): mean k*theta."""

    shape: float
    scale: float

    def __post_init__(self) -> None:
        _set(self, "shape", _positive("gamma", "shape", self.shape))
        _set(self, "scale", _positive("gamma", "scale", self.scale))

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> Gamma:
        """The gamma with the given mean (> 0) and coefficient of variation (> 0): shape = 1/cv**2."""
        mean = _positive("gamma", "mean", mean)
        cv = _positive("gamma", "cv", cv)
        return cls(1.0 / (cv * cv), mean * cv * cv)

    @property
    def mean(self) -> float:
        return self.shape * self.scale

    @property
    def variance(self) -> float:
        return self.shape * self.scale**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, n)

    def to_spec(self) -> dict[str, Any]:
        return {"gamma": {"shape": self.shape, "scale": _duration_spec(self.scale)}}

    def __repr__(self) -> str:
        return f"Gamma(shape={_num(self.shape)}, scale={_dur(self.scale)})"


@dataclass(frozen=True, slots=True, repr=False)
class Erlang(Distribution):
    """Sum of ``k`` (integer >= 1) exponential phases, with total ``mean`` in seconds."""

    k: int
    mean: float = field()

    def __post_init__(self) -> None:
        k = _number("erlang", "k", self.k)
        if k < 1 or not k.is_integer():
            raise ValueError(f"erlang: k must be an integer >= 1, got {self.k!r}")
        _set(self, "k", int(k))
        _set(self, "mean", _positive("erlang", "mean", self.mean))

    @property
    def variance(self) -> float:
        return self.mean**2 / self.k

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.k, self.mean / self.k, n)

    def to_spec(self) -> dict[str, Any]:
        return {"erlang": {"k": self.k, "mean": _duration_spec(self.mean)}}

    def __repr__(self) -> str:
        return f"Erlang(k={self.k}, mean={_dur(self.mean)})"


@dataclass(frozen=True, slots=True, repr=False)
class Weibull(Distribution):
    """Weibull with ``shape`` k > 0 and ``scale`` lambda > 0 (seconds): mean lambda*Gamma(1 + 1/k)."""

    shape: float
    scale: float

    def __post_init__(self) -> None:
        _set(self, "shape", _positive("weibull", "shape", self.shape))
        _set(self, "scale", _positive("weibull", "scale", self.scale))

    @property
    def mean(self) -> float:
        return self.scale * _gamma_fn(1 + 1 / self.shape)

    @property
    def variance(self) -> float:
        g1 = _gamma_fn(1 + 1 / self.shape)
        g2 = _gamma_fn(1 + 2 / self.shape)
        if math.isinf(g2):
            return math.inf
        return self.scale**2 * (g2 - g1 * g1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, n)

    def to_spec(self) -> dict[str, Any]:
        return {"weibull": {"shape": self.shape, "scale": _duration_spec(self.scale)}}

    def __repr__(self) -> str:
        return f"Weibull(shape={_num(self.shape)}, scale={_dur(self.scale)})"


@dataclass(frozen=True, slots=True, repr=False)
class Pareto(Distribution):
    """Classic Pareto: X >= scale and P(X > x) = (scale / x) ** shape.

    The mean is infinite for shape <= 1 and the variance for shape <= 2.
    """

    shape: float
    scale: float

    def __post_init__(self) -> None:
        _set(self, "shape", _positive("pareto", "shape", self.shape))
        _set(self, "scale", _positive("pareto", "scale", self.scale))

    @property
    def mean(self) -> float:
        a = self.shape
        return a * self.scale / (a - 1) if a > 1 else math.inf

    @property
    def variance(self) -> float:
        a = self.shape
        if a <= 2:
            return math.inf
        return self.scale**2 * a / ((a - 1) ** 2 * (a - 2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = 1.0 - rng.random(n)  # uniform on (0, 1]
        return self.scale * u ** (-1.0 / self.shape)

    def to_spec(self) -> dict[str, Any]:
        return {"pareto": {"shape": self.shape, "scale": _duration_spec(self.scale)}}

    def __repr__(self) -> str:
        return f"Pareto(shape={_num(self.shape)}, scale={_dur(self.scale)})"


@dataclass(frozen=True, slots=True, repr=False)
class Empirical(Distribution):
    """Draws uniformly, with replacement, from observed ``values`` (seconds)."""

    values: tuple[float, ...]
    _array: np.ndarray = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        raw = self.values
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence | np.ndarray):
            raise ValueError(f"empirical: values must be a list of durations, got {raw!r}")
        if len(raw) == 0:
            raise ValueError("empirical: needs at least one value, got an empty list")
        values = tuple(_non_negative("empirical", f"values[{i}]", v) for i, v in enumerate(raw))
        array = np.array(values, dtype=np.float64)
        array.flags.writeable = False
        _set(self, "values", values)
        _set(self, "_array", array)

    @property
    def mean(self) -> float:
        return float(self._array.mean())

    @property
    def variance(self) -> float:
        return float(self._array.var())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._array[rng.integers(0, self._array.size, n)]

    def to_spec(self) -> dict[str, Any]:
        return {"empirical": list(self.values)}

    def __repr__(self) -> str:
        if len(self.values) <= 5:
            return f"Empirical({', '.join(_dur(v) for v in self.values)})"
        a = self._array
        return (
            f"Empirical(n={a.size}, mean={_dur(self.mean)}, "
            f"min={_dur(float(a.min()))}, max={_dur(float(a.max()))})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Mixture(Distribution):
    """With probability weight_i / sum(weights), a draw from component i.

    ``components`` is a tuple of ``(weight, distribution)`` pairs; weights are kept as given
    (so specs round-trip exactly) and normalised in :attr:`probabilities`.
    """

    components: tuple[tuple[float, Distribution], ...]
    _probs: np.ndarray = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        raw = self.components
        if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
            raise ValueError(
                f"mixture: components must be a list of (weight, dist) pairs, got {raw!r}"
            )
        if len(raw) == 0:
            raise ValueError("mixture: needs at least one component, got none")
        components = []
        for i, pair in enumerate(raw):
            if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(
                    f"mixture: component {i} must be a (weight, dist) pair, got {pair!r}"
                )
            weight = _non_negative("mixture", f"weight of component {i}", pair[0])
            if not isinstance(pair[1], Distribution):
                raise ValueError(f"mixture: component {i} must be a Distribution, got {pair[1]!r}")
            components.append((weight, pair[1]))
        total = math.fsum(w for w, _ in components)
        if not total > 0:
            raise ValueError("mixture: weights must sum to > 0, got all zero")
        probs = np.array([w / total for w, _ in components], dtype=np.float64)
        probs.flags.writeable = False
        _set(self, "components", tuple(components))
        _set(self, "_probs", probs)

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The normalised weights."""
        return tuple(self._probs.tolist())

    def _active(self) -> list[tuple[float, Distribution]]:
        return [
            (p, d) for p, (_, d) in zip(self._probs.tolist(), self.components, strict=True) if p > 0
        ]

    @property
    def mean(self) -> float:
        return math.fsum(p * d.mean for p, d in self._active())

    @property
    def variance(self) -> float:
        # Law of total variance: E[Var(X | C)] + Var(E[X | C]).
        active = self._active()
        mean = math.fsum(p * d.mean for p, d in active)
        if math.isinf(mean):
            return math.inf
        return math.fsum(p * (d.variance + (d.mean - mean) ** 2) for p, d in active)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if len(self.components) == 1:
            return self.components[0][1].sample(rng, n)
        which = rng.choice(len(self.components), size=n, p=self._probs)
        out = np.empty(n, dtype=np.float64)
        for i, (_, dist) in enumerate(self.components):
            mask = which == i
            count = int(np.count_nonzero(mask))
            if count:
                out[mask] = dist.sample(rng, count)
        return out

    def to_spec(self) -> dict[str, Any]:
        return {"mixture": [{"weight": w, "dist": d.to_spec()} for w, d in self.components]}

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{p:.4g}: {d!r}" for p, (_, d) in zip(self.probabilities, self.components, strict=True)
        )
        return f"Mixture({parts})"


# --------------------------------------------------------------------------- hot-path sampling


def sampler(dist: Distribution, rng: np.random.Generator, batch: int = 4096) -> Callable[[], float]:
    """A zero-argument callable returning the next sample of ``dist`` as a Python float.

    Samples are drawn ``batch`` at a time with ``dist.sample(rng, batch)`` and handed out one
    by one, so a call costs well under a microsecond. A :class:`Constant` consumes no randomness.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}")
    if isinstance(dist, Constant):
        return itertools.repeat(float(dist.value)).__next__

    def draws() -> Iterator[float]:
        while True:
            yield from dist.sample(rng, batch).tolist()

    return draws().__next__


# --------------------------------------------------------------------------- spec parsing

DISTRIBUTION_NAMES: tuple[str, ...] = (
    "constant",
    "exponential",
    "uniform",
    "normal",
    "lognormal",
    "gamma",
    "erlang",
    "weibull",
    "pareto",
    "empirical",
    "mixture",
)

_ALLOWED_NAMES = ", ".join(DISTRIBUTION_NAMES)


def _signed_duration(value: object) -> float:
    """Like parse_duration, but a leading minus sign is allowed."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
        return -parse_duration(-value)
    return parse_duration(value)


def _duration_spec(seconds: float) -> str | float:
    """A readable duration string ('2ms') when it reads back exactly, else the float."""
    text = format_duration(seconds)
    try:
        if _signed_duration(text) == seconds:
            return text
    except ValueError:
        pass
    return seconds


def _field(where: str, value: object, parse: Callable[[object], float]) -> float:
    """Apply ``parse`` and prefix any error with ``where`` ('lognormal.median: ...')."""
    try:
        return parse(value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _plain_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _describe(forms: Sequence[Sequence[str]], optional: Sequence[str] = ()) -> str:
    text = " or ".join("{" + ", ".join(form) + "}" for form in forms)
    if optional:
        text += " (optional: " + ", ".join(optional) + ")"
    return text


def _params(
    name: str,
    body: object,
    forms: Sequence[Sequence[str]],
    optional: Sequence[str] = (),
) -> tuple[str, ...]:
    """Check that the mapping ``body`` has exactly the keys of one of ``forms`` (plus any of
    ``optional``) and return that form; otherwise raise a ValueError naming the problem."""
    expected = _describe(forms, optional)
    if not isinstance(body, Mapping):
        raise ValueError(f"{name}: expected a mapping with parameters {expected}, got {body!r}")
    keys = [str(k) for k in body]
    allowed = {p for form in forms for p in form} | set(optional)
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter(s) {', '.join(map(repr, unknown))}; expected {expected}"
        )
    given = set(keys) - set(optional)
    for form in forms:
        if given == set(form):
            return tuple(form)
    for form in forms:
        if given <= set(form):
            missing = [p for p in form if p not in given]
            raise ValueError(
                f"{name}: missing parameter(s) {', '.join(map(repr, missing))}; expected {expected}"
            )
    raise ValueError(
        f"{name}: parameters {', '.join(map(repr, keys))} cannot be combined; expected {expected}"
    )


def _parse_constant(body: object, base_dir: pathlib.Path | None) -> Distribution:
    return Constant(_field("constant", body, parse_duration))


def _parse_exponential(body: object, base_dir: pathlib.Path | None) -> Distribution:
    if not isinstance(body, Mapping):
        return Exponential(
            _field("exponential", body, lambda v: parse_duration(v, allow_zero=False))
        )
    form = _params("exponential", body, [("mean",), ("rate",)])
    if form == ("mean",):
        return Exponential(
            _field("exponential.mean", body["mean"], lambda v: parse_duration(v, allow_zero=False))
        )
    rate = _field("exponential.rate", body["rate"], parse_rate)
    if rate <= 0:
        raise ValueError(f"exponential.rate: must be > 0, got {body['rate']!r}")
    return Exponential(1.0 / rate)


def _parse_uniform(body: object, base_dir: pathlib.Path | None) -> Distribution:
    if isinstance(body, Sequence) and not isinstance(body, str | bytes):
        if len(body) != 2:
            raise ValueError(f"uniform: expected [low, high] or {{low, high}}, got {body!r}")
        low, high = body
    else:
        _params("uniform", body, [("low", "high")])
        assert isinstance(body, Mapping)
        low, high = body["low"], body["high"]
    return Uniform(
        _field("uniform.low", low, parse_duration), _field("uniform.high", high, parse_duration)
    )


def _parse_normal(body: object, base_dir: pathlib.Path | None) -> Distribution:
    _params("normal", body, [("mean", "sd")])
    assert isinstance(body, Mapping)
    mu = _field("normal.mean", body["mean"], _signed_duration)
    sd = _field("normal.sd", body["sd"], lambda v: parse_duration(v, allow_zero=False))
    return Normal(mu, sd)


def _parse_lognormal(body: object, base_dir: pathlib.Path | None) -> Distribution:
    form = _params("lognormal", body, [("median", "p99"), ("mean", "cv"), ("mu", "sigma")])
    assert isinstance(body, Mapping)
    if form == ("median", "p99"):
        median = _field(
            "lognormal.median", body["median"], lambda v: parse_duration(v, allow_zero=False)
        )
        p99 = _field("lognormal.p99", body["p99"], lambda v: parse_duration(v, allow_zero=False))
        return LogNormal.from_median_p99(median, p99)
    if form == ("mean", "cv"):
        mean = _field("lognormal.mean", body["mean"], lambda v: parse_duration(v, allow_zero=False))
        return LogNormal.from_mean_cv(mean, _field("lognormal.cv", body["cv"], _plain_number))
    return LogNormal(
        _field("lognormal.mu", body["mu"], _plain_number),
        _field("lognormal.sigma", body["sigma"], _plain_number),
    )


def _parse_gamma(body: object, base_dir: pathlib.Path | None) -> Distribution:
    form = _params("gamma", body, [("mean", "cv"), ("shape", "scale")])
    assert isinstance(body, Mapping)
    if form == ("mean", "cv"):
        mean = _field("gamma.mean", body["mean"], lambda v: parse_duration(v, allow_zero=False))
        return Gamma.from_mean_cv(mean, _field("gamma.cv", body["cv"], _plain_number))
    return Gamma(
        _field("gamma.shape", body["shape"], _plain_number),
        _field("gamma.scale", body["scale"], lambda v: parse_duration(v, allow_zero=False)),
    )


def _parse_erlang(body: object, base_dir: pathlib.Path | None) -> Distribution:
    _params("erlang", body, [("k", "mean")])
    assert isinstance(body, Mapping)
    return Erlang(
        _field("erlang.k", body["k"], _plain_number),  # type: ignore[arg-type]  # Erlang checks k is whole
        _field("erlang.mean", body["mean"], lambda v: parse_duration(v, allow_zero=False)),
    )


def _shape_scale(name: str, cls: type[Weibull] | type[Pareto], body: object) -> Distribution:
    _params(name, body, [("shape", "scale")])
    assert isinstance(body, Mapping)
    return cls(
        _field(f"{name}.shape", body["shape"], _plain_number),
        _field(f"{name}.scale", body["scale"], lambda v: parse_duration(v, allow_zero=False)),
    )


def _parse_weibull(body: object, base_dir: pathlib.Path | None) -> Distribution:
    return _shape_scale("weibull", Weibull, body)


def _parse_pareto(body: object, base_dir: pathlib.Path | None) -> Distribution:
    return _shape_scale("pareto", Pareto, body)


def _parse_empirical(body: object, base_dir: pathlib.Path | None) -> Distribution:
    if isinstance(body, Sequence) and not isinstance(body, str | bytes):
        return Empirical(
            tuple(_field(f"empirical[{i}]", v, parse_duration) for i, v in enumerate(body))
        )
    _params("empirical", body, [("csv", "column")], optional=("unit",))
    assert isinstance(body, Mapping)
    unit = body.get("unit", "s")
    if unit not in DURATION_UNITS:
        raise ValueError(f"empirical.unit: must be one of us, ms, s, m, h, d, y, got {unit!r}")
    path = pathlib.Path(str(body["csv"])).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = pathlib.Path(base_dir) / path
    return Empirical(_read_csv_column(path, str(body["column"]), DURATION_UNITS[unit]))


def _read_csv_column(path: pathlib.Path, column: str, factor: float) -> tuple[float, ...]:
    """The durations in ``column`` of the CSV file: bare numbers are scaled by ``factor``,
    cells with their own unit ('4ms') are parsed as durations."""
    try:
        handle = open_text(path, "CSV")
    except ValueError as e:
        raise ValueError(f"empirical: {e}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if column not in header:
            raise ValueError(
                f"empirical: {path} has no column {column!r}; columns: {', '.join(header) or '(none)'}"
            )
        values = []
        for row in reader:
            cell = (row.get(column) or "").strip()
            where = f"empirical: {path}, column {column!r}, line {reader.line_num}"
            try:
                value = float(cell) * factor
            except ValueError:
                try:
                    value = parse_duration(cell)
                except ValueError:
                    raise ValueError(
                        f"{where}: expected a non-negative number or a duration such as '4ms', got {excerpt(cell)}"
                    ) from None
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{where}: expected a finite non-negative number, got {excerpt(cell)}")
            values.append(value)
    if not values:
        raise ValueError(f"empirical: {path}, column {column!r} has no values")
    return tuple(values)


def _parse_mixture(body: object, base_dir: pathlib.Path | None) -> Distribution:
    if isinstance(body, str | bytes | Mapping) or not isinstance(body, Sequence) or not body:
        raise ValueError(
            f"mixture: expected a non-empty list of {{weight, dist}} mappings, got {body!r}"
        )
    components = []
    for i, item in enumerate(body):
        _params(f"mixture[{i}]", item, [("weight", "dist")])
        assert isinstance(item, Mapping)
        weight = _field(f"mixture[{i}].weight", item["weight"], _plain_number)
        dist = _field(
            f"mixture[{i}].dist", item["dist"], lambda v: parse_distribution(v, base_dir=base_dir)
        )
        components.append((weight, dist))
    return Mixture(tuple(components))


_PARSERS: dict[str, Callable[[object, pathlib.Path | None], Distribution]] = {
    "constant": _parse_constant,
    "exponential": _parse_exponential,
    "uniform": _parse_uniform,
    "normal": _parse_normal,
    "lognormal": _parse_lognormal,
    "gamma": _parse_gamma,
    "erlang": _parse_erlang,
    "weibull": _parse_weibull,
    "pareto": _parse_pareto,
    "empirical": _parse_empirical,
    "mixture": _parse_mixture,
}
assert tuple(_PARSERS) == DISTRIBUTION_NAMES


def parse_distribution(value: object, *, base_dir: pathlib.Path | None = None) -> Distribution:
    """Build a distribution from its spec (the Python objects YAML loads).

    A scalar duration (``4`` or ``'4ms'``) is a :class:`Constant`; otherwise ``value`` is a
    mapping with exactly one key among :data:`DISTRIBUTION_NAMES`, e.g.
    ``{'exponential': '2ms'}`` or ``{'lognormal': {'median': '4ms', 'p99': '25ms'}}``.
    Relative CSV paths of ``empirical`` specs are resolved against ``base_dir``. A
    :class:`Distribution` is returned as is. Raises ValueError on an invalid spec.
    """
    if isinstance(value, Distribution):
        return value
    if isinstance(value, str | numbers.Real) and not isinstance(value, bool):
        try:
            return Constant(parse_duration(value))
        except ValueError as err:
            raise ValueError(
                f"{err}; or use a mapping with one key among: {_ALLOWED_NAMES}"
            ) from None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"expected a distribution: a duration such as '4ms' or a mapping with one key "
            f"among: {_ALLOWED_NAMES}; got {value!r}"
        )
    if len(value) != 1:
        keys = ", ".join(map(repr, value)) or "none"
        raise ValueError(
            f"a distribution mapping must have exactly one key among: {_ALLOWED_NAMES}; got keys {keys}"
        )
    ((name, body),) = value.items()
    parse = _PARSERS.get(name) if isinstance(name, str) else None
    if parse is None:
        raise ValueError(f"unknown distribution {name!r}; allowed: {_ALLOWED_NAMES}")
    return parse(body, base_dir)
