"""Tests of simarch.model.units: parsing and formatting of durations, rates, fractions, multipliers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simarch.model.units import (
    DURATION_UNITS,
    SIZE_UNITS,
    format_duration,
    format_size,
    parse_count,
    parse_duration,
    parse_fraction,
    parse_multiplier,
    parse_rate,
    parse_size,
)

# ----------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (2, 2.0),
        (0.25, 0.25),
        (np.float64(0.5), 0.5),
        ("2.5", 2.5),
        ("4ms", 0.004),
        ("4 ms", 0.004),
        ("  4ms  ", 0.004),
        ("1.5s", 1.5),
        ("250us", 250e-6),
        ("250µs", 250e-6),  # micro sign
        ("250μs", 250e-6),  # Greek mu
        ("2m", 120.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1e3ms", 1.0),
        ("+3ms", 0.003),
        ("0ms", 0.0),
        ("1d", 86_400.0),
        ("90d", 90 * 86_400.0),
        ("5y", 5 * 365 * 86_400.0),  # a year is 365 days
        ("1.5 y", 1.5 * 365 * 86_400.0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value",
    ["4 sec", "4ms ms", "ms", "", "4MS", "4 m s", "four", "1,5s", "nan", "inf", "4ns", None, [4]],
)
def test_parse_duration_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration such as '4ms'") as err:
        parse_duration(value)
    assert repr(value) in str(err.value)
    assert "us, ms, s, m, h, d, y" in str(err.value)


def test_parse_duration_message_is_one_readable_line() -> None:
    with pytest.raises(ValueError) as err:
        parse_duration("4 sec")
    assert str(err.value) == (
        "expected a duration such as '4ms' or '1.5s' (units: us, ms, s, m, h, d, y), got '4 sec'"
    )


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bool(value: bool) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.001, "-4ms", "-2"])
def test_parse_duration_rejects_negative(value: object) -> None:
    with pytest.raises(ValueError, match="must not be negative") as err:
        parse_duration(value)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_parse_duration_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, 0.0, "0ms", "0"])
def test_parse_duration_allow_zero(value: object) -> None:
    assert parse_duration(value) == 0.0
    with pytest.raises(ValueError, match=r"must be > 0") as err:
        parse_duration(value, allow_zero=False)
    assert repr(value) in str(err.value)
    assert parse_duration("1ms", allow_zero=False) == pytest.approx(0.001)


def test_duration_units_table() -> None:
    assert DURATION_UNITS["ms"] == 1e-3
    assert DURATION_UNITS["m"] == 60.0
    assert DURATION_UNITS["d"] == 24 * 3600.0
    assert DURATION_UNITS["y"] == 365 * 24 * 3600.0
    with pytest.raises(TypeError):
        DURATION_UNITS["w"] = 7 * 86400.0  # type: ignore[index]


# ----------------------------------------------------------------------------- parse_rate


@pytest.mark.parametrize(
    ("value", "per_second"),
    [
        (0, 0.0),
        (1200, 1200.0),
        (2.5, 2.5),
        ("1200", 1200.0),
        ("1200/s", 1200.0),
        ("1200 /s", 1200.0),
        ("1200 rps", 1200.0),
        ("300/m", 5.0),
        ("10/h", 10 / 3600),
        ("1e3/s", 1000.0),
    ],
)
def test_parse_rate_accepts(value: object, per_second: float) -> None:
    assert parse_rate(value) == pytest.approx(per_second, rel=1e-12)


@pytest.mark.parametrize("value", ["1200 per second", "1200/d", "fast", "", "1200qps", True, None])
def test_parse_rate_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="expected a rate such as") as err:
        parse_rate(value)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", [-1, "-5/s"])
def test_parse_rate_rejects_negative(value: object) -> None:
    with pytest.raises(ValueError, match="must not be negative") as err:
        parse_rate(value)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_parse_rate_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_rate(value)


# ----------------------------------------------------------------------------- parse_fraction


@pytest.mark.parametrize(
    ("value", "fraction"),
    [
        (0, 0.0),
        (1, 1.0),
        (0.999, 0.999),
        ("0.5", 0.5),
        ("99.9%", 0.999),
        ("100%", 1.0),
        ("0%", 0.0),
        ("50 %", 0.5),
    ],
)
def test_parse_fraction_accepts(value: object, fraction: float) -> None:
    assert parse_fraction(value) == pytest.approx(fraction, rel=1e-12)


@pytest.mark.parametrize("value", [1.5, -0.1, "150%", "-1%", "2"])
def test_parse_fraction_rejects_out_of_range(value: object) -> None:
    with pytest.raises(ValueError, match="between 0 and 1") as err:
        parse_fraction(value)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["half", "99.9 percent", "0.5x", True, math.nan, None])
def test_parse_fraction_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="expected a fraction between 0 and 1") as err:
        parse_fraction(value)
    assert repr(value) in str(err.value)


# ----------------------------------------------------------------------------- parse_multiplier


@pytest.mark.parametrize(
    ("value", "factor"),
    [
        (10, 10.0),
        (0.5, 0.5),
        ("10", 10.0),
        ("10x", 10.0),
        ("0.5x", 0.5),
        ("2 x", 2.0),
        ("150%", 1.5),
    ],
)
def test_parse_multiplier_accepts(value: object, factor: float) -> None:
    assert parse_multiplier(value) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize("value", [0, "0x", -2, "-2x", "0%"])
def test_parse_multiplier_rejects_non_positive(value: object) -> None:
    with pytest.raises(ValueError, match=r"must be > 0") as err:
        parse_multiplier(value)
    assert repr(value) in str(err.value)


@pytest.mark.parametrize("value", ["ten", "10 times", "x10", True, math.inf, None])
def test_parse_multiplier_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="expected a multiplier") as err:
        parse_multiplier(value)
    assert repr(value) in str(err.value)


# ----------------------------------------------------------------------------- format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0042, "4.2ms"),
        (2.0, "2s"),
        (0.00005, "50us"),
        (0.0, "0s"),
        (0.001, "1ms"),
        (0.25, "250ms"),
        (1.23456, "1.235s"),
        (90.0, "1.5m"),
        (7200.0, "2h"),
        (0.99999, "1s"),  # rounds up into the next unit rather than '1000ms'
        (-0.003, "-3ms"),
        (5e-8, "0.05us"),
        (math.inf, "inf"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.0042, 2.0, 5e-05, 0.125, 42.0, 150.0, 36000.0])
def test_format_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-12)


# ----------------------------------------------------------------------------- parse_count


@pytest.mark.parametrize(
    ("value", "count"),
    [(0, 0.0), (50, 50.0), (2.5, 2.5), ("2000000", 2e6), ("2M", 2e6), ("2 M", 2e6), ("50k", 5e4),
     ("50K", 5e4), ("1.5B", 1.5e9), ("1e6", 1e6), ("0.5M", 5e5)],
)
def test_parse_count_accepts(value: object, count: float) -> None:
    assert parse_count(value) == pytest.approx(count, rel=1e-12)


@pytest.mark.parametrize("value", ["2m", "2 million", "2MM", "lots", "", "2KB", True, None, [2]])
def test_parse_count_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="expected a number such as 2000000, '2M'") as err:
        parse_count(value)
    assert repr(value) in str(err.value)


def test_parse_count_rejects_negative() -> None:
    with pytest.raises(ValueError, match="must not be negative, got '-2M'"):
        parse_count("-2M")


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("value", "size"),
    [(0, 0.0), (512, 512.0), ("512", 512.0), ("512B", 512.0), ("2KB", 2_000.0), ("2kB", 2_000.0),
     ("2 KB", 2_000.0), ("1.5MB", 1.5e6), ("3GB", 3e9), ("4TB", 4e12), ("1PB", 1e15),
     ("2KiB", 2_048.0), ("2.5MiB", 2.5 * 1024**2), ("1GiB", 1024**3), ("1TiB", 1024**4),
     ("1PiB", 1024**5)],
)
def test_parse_size_accepts(value: object, size: float) -> None:
    assert parse_size(value) == pytest.approx(size, rel=1e-12)


def test_size_units_decimal_and_binary() -> None:
    assert SIZE_UNITS["KB"] == 1000 and SIZE_UNITS["MB"] == 1000**2
    assert SIZE_UNITS["KiB"] == 1024 and SIZE_UNITS["MiB"] == 1024**2


@pytest.mark.parametrize("value", ["2kb", "2Kb", "2 bytes", "2K", "2XB", "2Mb", "", True, None])
def test_parse_size_rejects_malformed(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size such as 512, '2KB'") as err:
        parse_size(value)
    assert repr(value) in str(err.value)
    assert "powers of 1000" in str(err.value) and "powers of 1024" in str(err.value)


@pytest.mark.parametrize("value", [-1, "-2KB"])
def test_parse_size_rejects_negative(value: object) -> None:
    with pytest.raises(ValueError, match="size must not be negative"):
        parse_size(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (512, "512 B"), (2_000, "2 KB"), (231_481.5, "231 KB"), (999_999, "1 MB"),
     (2e10, "20 GB"), (7.3e12, "7.3 TB"), (3.65e15, "3.65 PB"), (2.5e18, "2.5 EB"),
     (4e21, "4,000 EB"), (3e25, "3e+07 EB"), (2048, "2.05 KB")],
)
def test_format_size(size: float, text: str) -> None:
    assert format_size(size) == text
