"""Parsing and formatting of the quantities found in specs: durations, rates, fractions, multipliers.

Every parser accepts a plain number (already in base units: seconds, per second, ...) or a
string with a unit suffix, and raises a one-line ``ValueError`` that says what is allowed and
what was given. The caller adds the file and field context.
"""

from __future__ import annotations

import math
import numbers
import re
from types import MappingProxyType

from ..errors import excerpt

__all__ = [
    "DURATION_UNITS",
    "format_duration",
    "parse_duration",
    "parse_fraction",
    "parse_multiplier",
    "parse_rate",
    "parse_size",
]

#: Seconds per duration unit. ``m`` is minutes; ``µs`` (micro sign or Greek mu) equals ``us``.
DURATION_UNITS: MappingProxyType[str, float] = MappingProxyType(
    {"us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
)

_RATE_UNITS = {"": 1.0, "/s": 1.0, "rps": 1.0, "/m": 1 / 60, "/h": 1 / 3600}

# A signed decimal number, optional spaces, then an optional unit suffix (anything without spaces).
_QUANTITY = re.compile(
    r"\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>\S*)\s*"
)

MIN_MULTIPLIER, MAX_MULTIPLIER = 1e-6, 1e6  # a load multiplier outside these means nothing
_MAX_TEXT = 64  # a quantity written as text is short; a longer string is refused unread

_DURATION_HINT = "a duration such as '4ms' or '1.5s' (units: us, ms, s, m, h)"
_RATE_HINT = "a rate such as '1200', '1200/s', '1200 rps', '300/m' or '10/h'"
_FRACTION_HINT = "a fraction between 0 and 1 such as 0.999 or '99.9%'"
_MULTIPLIER_HINT = "a multiplier > 0 such as 10, '10x', '0.5x' or '150%'"


def _split(
    value: object, units: dict[str, float] | MappingProxyType[str, float], hint: str
) -> float:
    """Return ``value`` in base units: a real number as is, or a '<number><unit>' string scaled."""
    if isinstance(value, bool):
        raise ValueError(f"expected {hint}, got {value!r}")
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"expected {hint}, got {excerpt(value)} (too large)") from None
    elif isinstance(value, str):
        match = _QUANTITY.fullmatch(value) if len(value) <= _MAX_TEXT else None
        if match is None or match["unit"] not in units:
            raise ValueError(f"expected {hint}, got {excerpt(value)}")
        number = float(match["num"]) * units[match["unit"]]
    else:
        raise ValueError(f"expected {hint}, got {excerpt(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected {hint}, got {excerpt(value)} (must be finite)")
    return number


def parse_duration(value: object, *, allow_zero: bool = True) -> float:
    """Parse a duration and return it in seconds.

    ``value`` is a number of seconds (``bool`` is rejected) or a string made of a number,
    optional spaces and a unit among ``us``, ``µs``, ``ms``, ``s``, ``m`` (minutes) and ``h``;
    a bare numeric string means seconds. Negative, NaN and infinite values are rejected, and
    zero too when ``allow_zero`` is false.
    """
    seconds = _split(value, {"": 1.0, **DURATION_UNITS}, _DURATION_HINT)
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {excerpt(value)}")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"duration must be > 0, got {excerpt(value)}")
    return seconds


def parse_rate(value: object) -> float:
    """Parse a rate and return it per second: a number, or ``'1200/s'``, ``'1200 rps'``, ``'300/m'``, ``'10/h'``."""
    rate = _split(value, _RATE_UNITS, _RATE_HINT)
    if rate < 0:
        raise ValueError(f"rate must not be negative, got {excerpt(value)}")
    return rate


def parse_fraction(value: object) -> float:
    """Parse a fraction in [0, 1]: a number, or a percentage string (``'99.9%'`` -> 0.999)."""
    fraction = _split(value, {"": 1.0, "%": 0.01}, _FRACTION_HINT)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1 (0% to 100%), got {excerpt(value)}")
    return fraction


def parse_multiplier(value: object) -> float:
    """Parse a factor > 0: a number, ``'10x'``, ``'0.5x'``, ``'10'`` or a percentage (``'150%'`` -> 1.5)."""
    factor = _split(value, {"": 1.0, "x": 1.0, "%": 0.01}, _MULTIPLIER_HINT)
    if factor <= 0:
        raise ValueError(f"multiplier must be > 0, got {excerpt(value)}")
    if not MIN_MULTIPLIER <= factor <= MAX_MULTIPLIER:
        raise ValueError(f"multiplier must be between {MIN_MULTIPLIER:g} and {MAX_MULTIPLIER:g}, "
                         f"got {excerpt(value)}")
    return factor


#: Bytes per size unit (case-insensitive): decimal ``KB``/``MB``/``GB``/``TB`` (10^3 steps)
#: and binary ``KiB``/``MiB``/``GiB``/``TiB`` (2^10 steps).
SIZE_UNITS: MappingProxyType[str, float] = MappingProxyType({
    "": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40})
_SIZE_HINT = "a size such as '1KB', '512B', '4KiB' or '2MB' (a bare number is bytes)"


def parse_size(value: object) -> float:
    """Parse a size > 0 and return it in bytes: a number of bytes, or a string with a unit
    among ``B``, ``KB``, ``MB``, ``GB``, ``TB`` (powers of 1000) and ``KiB``, ``MiB``, ``GiB``,
    ``TiB`` (powers of 1024), in any case: ``'1KB'`` -> 1000.0, ``'4KiB'`` -> 4096.0."""
    given = value
    if isinstance(value, str) and len(value) <= _MAX_TEXT:
        match = _QUANTITY.fullmatch(value)
        if match is not None and match["unit"].lower() in SIZE_UNITS:
            value = f"{match['num']}{match['unit'].lower()}"
    try:
        size = _split(value, SIZE_UNITS, _SIZE_HINT)
    except ValueError:
        raise ValueError(f"expected {_SIZE_HINT}, got {excerpt(given)}") from None
    if not size > 0:
        raise ValueError(f"size must be > 0, got {excerpt(given)}")
    return size


_DISPLAY_UNITS = ((3600.0, "h"), (60.0, "m"), (1.0, "s"), (1e-3, "ms"), (1e-6, "us"))


def format_duration(seconds: float) -> str:
    """Format seconds for humans with 4 significant digits: 0.0042 -> '4.2ms', 2.0 -> '2s', 5e-05 -> '50us'."""
    if math.isnan(seconds):
        return "nan"
    if math.isinf(seconds):
        return "inf" if seconds > 0 else "-inf"
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    rounded = float(f"{abs(seconds):.4g}")  # round first so 0.99999 shows as '1s', not '1000ms'
    factor, unit = next(((f, u) for f, u in _DISPLAY_UNITS if rounded >= f), _DISPLAY_UNITS[-1])
    return f"{sign}{rounded / factor:.4g}{unit}"
