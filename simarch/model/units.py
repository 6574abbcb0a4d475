"""Parsing and formatting of the quantities found in specs: durations, rates, fractions,
multipliers, counts and byte sizes.

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
    "COUNT_UNITS",
    "DURATION_UNITS",
    "SIZE_UNITS",
    "format_duration",
    "format_size",
    "parse_count",
    "parse_duration",
    "parse_fraction",
    "parse_multiplier",
    "parse_rate",
    "parse_size",
]

SECONDS_PER_DAY = 86_400.0
DAYS_PER_YEAR = 365  # a year is 365 days: no leap days in a back-of-envelope estimate

#: Seconds per duration unit. ``m`` is minutes; ``µs`` (micro sign or Greek mu) equals ``us``;
#: ``d`` is 24 hours and ``y`` 365 days.
DURATION_UNITS: MappingProxyType[str, float] = MappingProxyType(
    {"us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
     "d": SECONDS_PER_DAY, "y": DAYS_PER_YEAR * SECONDS_PER_DAY}
)

#: Bytes per size unit. The decimal (SI) units are powers of 1000 (``KB`` = 1,000 bytes,
#: ``MB`` = 10⁶), as disks are sold; the binary (IEC) units powers of 1024 (``KiB`` = 1,024
#: bytes, ``MiB`` = 1,048,576). ``kB`` is the same as ``KB``; a bare number is bytes.
SIZE_UNITS: MappingProxyType[str, float] = MappingProxyType({
    "B": 1.0, "KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15,
    "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40, "PiB": 2.0**50,
})

#: Multiples of a count: ``k`` (or ``K``) a thousand, ``M`` a million, ``B`` a billion (10⁹).
COUNT_UNITS: MappingProxyType[str, float] = MappingProxyType({"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9})

_RATE_UNITS = {"": 1.0, "/s": 1.0, "rps": 1.0, "/m": 1 / 60, "/h": 1 / 3600}

# A signed decimal number, optional spaces, then an optional unit suffix (anything without spaces).
_QUANTITY = re.compile(
    r"\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>\S*)\s*"
)

MIN_MULTIPLIER, MAX_MULTIPLIER = 1e-6, 1e6  # a load multiplier outside these means nothing
_MAX_TEXT = 64  # a quantity written as text is short; a longer string is refused unread

_DURATION_HINT = "a duration such as '4ms' or '1.5s' (units: us, ms, s, m, h, d, y)"
_RATE_HINT = "a rate such as '1200', '1200/s', '1200 rps', '300/m' or '10/h'"
_FRACTION_HINT = "a fraction between 0 and 1 such as 0.999 or '99.9%'"
_MULTIPLIER_HINT = "a multiplier > 0 such as 10, '10x', '0.5x' or '150%'"
_COUNT_HINT = "a number such as 2000000, '2M', '50k' or '1.5B' (k = thousand, M = million, B = billion)"
_SIZE_HINT = ("a size such as 512, '2KB', '1.5 MB' or '4KiB' (units: B, KB, MB, GB, TB, PB = powers "
              "of 1000; KiB, MiB, GiB, TiB, PiB = powers of 1024)")


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
    optional spaces and a unit among ``us``, ``µs``, ``ms``, ``s``, ``m`` (minutes), ``h``,
    ``d`` (days) and ``y`` (years of 365 days); a bare numeric string means seconds. Negative, NaN and infinite values are rejected, and
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


def parse_count(value: object) -> float:
    """Parse a count ≥ 0: a number, or a number with ``k``/``K`` (thousand), ``M`` (million) or
    ``B`` (billion): ``'2M'`` -> 2,000,000, ``'1.5k'`` -> 1,500. Not necessarily whole."""
    count = _split(value, {"": 1.0, **COUNT_UNITS}, _COUNT_HINT)
    if count < 0:
        raise ValueError(f"must not be negative, got {excerpt(value)}")
    return count


def parse_size(value: object) -> float:
    """Parse a size in bytes ≥ 0: a number of bytes, or a number with a unit of
    :data:`SIZE_UNITS` (``'2KB'`` -> 2,000, ``'2KiB'`` -> 2,048, ``'1.5 GB'`` -> 1.5e9)."""
    size = _split(value, {"": 1.0, **SIZE_UNITS}, _SIZE_HINT)
    if size < 0:
        raise ValueError(f"size must not be negative, got {excerpt(value)}")
    return size


_SIZE_DISPLAY = ((1e18, "EB"), (1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB"))


def format_size(size: float) -> str:
    """Format bytes in decimal units with 3 significant digits: 2000 -> '2 KB',
    3.65e15 -> '3.65 PB', 512 -> '512 B'."""
    if not math.isfinite(size):
        return str(size)
    rounded = float(f"{abs(size):.3g}")  # round first so 999,999 shows as '1 MB', not '1e+03 KB'
    factor, unit = next(((f, u) for f, u in _SIZE_DISPLAY if rounded >= f), (1.0, "B"))
    number = rounded / factor
    text = f"{number:,.0f}" if 1000 <= number < 1e6 else f"{number:.3g}"  # 1.2e+07 EB: absurd
    return f"{'-' if size < 0 else ''}{text} {unit}"


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
