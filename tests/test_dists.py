"""Tests of simarch.model.dists: moments, sampling, validation, spec parsing and the hot-path sampler."""

from __future__ import annotations

import math
import pathlib
import pickle

import numpy as np
import pytest
import yaml

from simarch.model import dists
from simarch.model.dists import (
    DISTRIBUTION_NAMES,
    Constant,
    Distribution,
    Empirical,
    Erlang,
    Exponential,
    Gamma,
    LogNormal,
    Mixture,
    Normal,
    Pareto,
    Uniform,
    Weibull,
    parse_distribution,
    sampler,
)

MS = 1e-3
US = 1e-6

# (id, distribution, check the sample variance?) -- one or more cases for every class.
# The variance check needs a finite 4th moment; the parameters below keep the relative standard
# error of the sample variance at N = 200_000 under ~1%, so a 5% tolerance is > 4 SE (the
# lognormal uses sigma ~0.47: heavier tails make the sample variance converge too slowly).
# Pareto(3.5) has a finite variance but an infinite 4th moment: mean check only.
CASES: list[tuple[str, Distribution, bool]] = [
    ("constant", Constant(4 * MS), True),
    ("exponential", Exponential(2 * MS), True),
    ("uniform", Uniform(1 * MS, 3 * MS), True),
    ("normal", Normal(5 * MS, 1 * MS), True),
    ("normal-truncated", Normal(1 * MS, 2 * MS), True),
    ("normal-far-tail", Normal(-6 * MS, 2 * MS), True),
    ("lognormal", LogNormal.from_median_p99(4 * MS, 12 * MS), True),
    ("gamma", Gamma.from_mean_cv(2 * MS, 0.5), True),
    ("erlang", Erlang(3, 3 * MS), True),
    ("weibull", Weibull(1.5, 2 * MS), True),
    ("pareto", Pareto(3.5, 1 * MS), False),
    ("empirical", Empirical((1 * MS, 2 * MS, 5 * MS)), True),
    (
        "mixture",
        Mixture(
            (
                (0.5, Constant(2 * MS)),
                (0.3, Exponential(2 * MS)),
                (0.2, LogNormal.from_median_p99(10 * MS, 30 * MS)),
            )
        ),
        True,
    ),
]
DISTS = [d for _, d, _ in CASES]
IDS = [name for name, _, _ in CASES]


def test_cases_cover_every_class() -> None:
    exported = {getattr(dists, name) for name in dists.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, Distribution)}
    assert {type(d) for d in DISTS} == classes - {Distribution}


# ----------------------------------------------------------------------------- moments


@pytest.mark.parametrize(("name", "dist", "check_variance"), CASES, ids=IDS)
def test_sample_moments_match_analytic(name: str, dist: Distribution, check_variance: bool) -> None:
    # N = 200_000 draws; the sample mean has standard error SE = sqrt(variance / N), and must
    # lie within 4 SE of the analytic mean (a false alarm about once in 16_000 runs per case).
    n = 200_000
    x = dist.sample(np.random.default_rng(12345), n)
    assert x.shape == (n,)
    assert x.dtype == np.float64
    assert np.all(x >= 0)
    se = math.sqrt(dist.variance / n)
    assert abs(x.mean() - dist.mean) <= 4 * se + 1e-15, (x.mean(), dist.mean, se)
    if check_variance:
        assert x.var() == pytest.approx(dist.variance, rel=0.05, abs=1e-18)


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_scv_is_variance_over_mean_squared(dist: Distribution) -> None:
    assert dist.scv == pytest.approx(dist.variance / dist.mean**2)


def test_closed_form_moments() -> None:
    assert Exponential(2 * MS).scv == pytest.approx(1.0)
    assert Erlang(4, 8 * MS).scv == pytest.approx(0.25)
    assert Uniform(0, 6).variance == pytest.approx(3.0)
    assert Gamma(2.0, 3.0).mean == pytest.approx(6.0)
    assert Gamma(2.0, 3.0).variance == pytest.approx(18.0)
    assert Gamma.from_mean_cv(5.0, 0.5).scv == pytest.approx(0.25)
    assert Weibull(1.0, 2.0).mean == pytest.approx(2.0)  # shape 1 is exponential
    assert Weibull(1.0, 2.0).variance == pytest.approx(4.0)
    assert Weibull(2.0, 1.0).mean == pytest.approx(math.sqrt(math.pi) / 2)
    assert Constant(0.0).scv == 0.0
    assert Empirical((1.0, 3.0)).variance == pytest.approx(1.0)  # population variance


def test_lognormal_from_mean_cv() -> None:
    d = LogNormal.from_mean_cv(4 * MS, 1.5)
    assert d.mean == pytest.approx(4 * MS)
    assert d.scv == pytest.approx(1.5**2)


def test_pareto_infinite_moments() -> None:
    assert Pareto(3.5, 1.0).mean == pytest.approx(3.5 / 2.5)
    assert Pareto(3.5, 1.0).variance == pytest.approx(3.5 / (2.5**2 * 1.5))
    assert Pareto(2.0, 1.0).mean == pytest.approx(2.0)
    assert Pareto(2.0, 1.0).variance == math.inf
    assert Pareto(2.0, 1.0).scv == math.inf
    assert Pareto(1.0, 1.0).mean == math.inf
    assert Pareto(0.5, 1.0).variance == math.inf
    x = Pareto(0.5, 3 * MS).sample(np.random.default_rng(0), 10_000)
    assert x.min() >= 3 * MS


def test_pareto_tail_probability() -> None:
    # P(X > 2 * scale) = 2 ** -shape; binomial SE at N = 200_000 is about 0.0008.
    d = Pareto(1.5, 1 * MS)
    x = d.sample(np.random.default_rng(3), 200_000)
    assert np.mean(x > 2 * MS) == pytest.approx(2**-1.5, abs=0.004)


def test_mixture_moments_total_variance() -> None:
    d = Mixture(((1.0, Constant(1.0)), (3.0, Constant(5.0))))
    assert d.probabilities == (0.25, 0.75)
    assert d.mean == pytest.approx(4.0)
    assert d.variance == pytest.approx(0.25 * 9 + 0.75 * 1)
    # a zero-weight component never contributes, even with an infinite mean
    assert Mixture(((1.0, Constant(2.0)), (0.0, Pareto(0.5, 1.0)))).mean == 2.0


def _truncated_normal_moments_by_quadrature(mu: float, sigma: float) -> tuple[float, float]:
    x = np.linspace(0.0, max(mu, 0.0) + 14 * sigma, 400_001)
    f = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    mass = np.trapezoid(f, x)
    mean = np.trapezoid(x * f, x) / mass
    return mean, np.trapezoid((x - mean) ** 2 * f, x) / mass


@pytest.mark.parametrize(("mu", "sigma"), [(1 * MS, 2 * MS), (5 * MS, 1 * MS), (-6 * MS, 2 * MS)])
def test_truncated_normal_moments_are_exact(mu: float, sigma: float) -> None:
    d = Normal(mu, sigma)
    mean, variance = _truncated_normal_moments_by_quadrature(mu, sigma)
    assert d.mean == pytest.approx(mean, rel=1e-6)
    assert d.variance == pytest.approx(variance, rel=1e-6)


def test_heavily_truncated_normal_sample_mean() -> None:
    # mu = 1ms, sigma = 2ms: about 31% of the untruncated mass lies below 0 and is cut off.
    # N = 200_000, SE = sqrt(variance / N) ~ 3.1us; tolerance 4 SE.
    d = Normal(1 * MS, 2 * MS)
    assert d.mean > 2 * MS  # the truncation shifts the mean well above mu
    n = 200_000
    x = d.sample(np.random.default_rng(7), n)
    assert abs(x.mean() - d.mean) <= 4 * math.sqrt(d.variance / n)


def test_lognormal_from_median_p99_quantiles() -> None:
    # N = 200_000: the relative SE of the sample median is ~0.2% and of the p99 ~0.7%.
    d = LogNormal.from_median_p99(4 * MS, 25 * MS)
    assert d.median == pytest.approx(4 * MS)
    assert d.sigma == pytest.approx(math.log(25 / 4) / 2.3263478740408408)
    x = d.sample(np.random.default_rng(99), 200_000)
    median, p99 = np.quantile(x, [0.5, 0.99])
    assert median == pytest.approx(4 * MS, rel=0.02)
    assert p99 == pytest.approx(25 * MS, rel=0.03)


def test_lognormal_median_equal_p99_is_a_point_mass() -> None:
    d = LogNormal.from_median_p99(4 * MS, 4 * MS)
    assert d.sigma == 0.0
    assert d.variance == 0.0
    assert np.allclose(d.sample(np.random.default_rng(0), 5), 4 * MS)


def test_empirical_samples_only_its_values() -> None:
    values = (1 * MS, 2 * MS, 5 * MS)
    x = Empirical(values).sample(np.random.default_rng(0), 30_000)
    assert set(x.tolist()) == set(values)
    # each value drawn with probability 1/3; binomial SE ~ 0.0027
    for v in values:
        assert np.mean(x == v) == pytest.approx(1 / 3, abs=0.015)


def test_sample_zero_draws() -> None:
    for d in DISTS:
        assert d.sample(np.random.default_rng(0), 0).shape == (0,)


# ----------------------------------------------------------------------------- value objects


def test_equality_hash_and_immutability() -> None:
    assert Exponential(2 * MS) == Exponential(0.002)
    assert Constant(1) == Constant(1.0)
    assert len({Gamma(2, 1.0), Gamma(2.0, 1.0), Gamma(3.0, 1.0)}) == 2
    assert Empirical([1.0, 2.0]) == Empirical((1.0, 2.0))  # lists are stored as tuples
    assert hash(Empirical([1.0, 2.0])) == hash(Empirical((1.0, 2.0)))
    assert Mixture([(1, Constant(1.0))]) == Mixture(((1.0, Constant(1.0)),))
    assert Exponential(1.0) != Erlang(1, 1.0)
    with pytest.raises(AttributeError):
        Exponential(1.0).mean = 2.0  # type: ignore[misc]


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_pickle_round_trip(dist: Distribution) -> None:
    assert pickle.loads(pickle.dumps(dist)) == dist


@pytest.mark.parametrize(
    ("dist", "text"),
    [
        (Constant(4 * MS), "Constant(4ms)"),
        (Exponential(2 * MS), "Exponential(mean=2ms)"),
        (Uniform(1 * MS, 3 * MS), "Uniform(low=1ms, high=3ms)"),
        (Normal(5 * MS, 1 * MS), "Normal(mu=5ms, sigma=1ms)"),
        (LogNormal(math.log(4 * MS), 0.8), "LogNormal(median=4ms, sigma=0.8)"),
        (Gamma(2, 1 * MS), "Gamma(shape=2, scale=1ms)"),
        (Erlang(3, 3 * MS), "Erlang(k=3, mean=3ms)"),
        (Weibull(1.5, 2 * MS), "Weibull(shape=1.5, scale=2ms)"),
        (Pareto(2.5, 50 * US), "Pareto(shape=2.5, scale=50us)"),
        (Empirical((1 * MS, 2 * MS)), "Empirical(1ms, 2ms)"),
        (
            Empirical(tuple(i * MS for i in range(1, 11))),
            "Empirical(n=10, mean=5.5ms, min=1ms, max=10ms)",
        ),
        (
            Mixture(((9, Constant(2 * MS)), (1, Exponential(50 * MS)))),
            "Mixture(0.9: Constant(2ms), 0.1: Exponential(mean=50ms))",
        ),
    ],
)
def test_repr(dist: Distribution, text: str) -> None:
    assert repr(dist) == text


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Constant(-1.0), "constant: value must not be negative"),
        (lambda: Constant(math.nan), "constant: value must be finite"),
        (lambda: Constant("4ms"), "constant: value must be a number"),
        (lambda: Exponential(0.0), "exponential: mean must be > 0"),
        (lambda: Exponential(-2.0), "exponential: mean must be > 0"),
        (lambda: Uniform(-1.0, 1.0), "uniform: low must not be negative"),
        (lambda: Uniform(3.0, 1.0), "uniform: high must be >= low"),
        (lambda: Normal(1.0, 0.0), "normal: sigma must be > 0"),
        (lambda: Normal(-30.0, 1.0), "must be >= -20 sd"),
        (lambda: LogNormal(0.0, -1.0), "lognormal: sigma must not be negative"),
        (lambda: LogNormal.from_median_p99(4.0, 3.0), "p99 must be >= median"),
        (lambda: LogNormal.from_median_p99(0.0, 3.0), "median must be > 0"),
        (lambda: LogNormal.from_mean_cv(1.0, -0.5), "cv must not be negative"),
        (lambda: Gamma(0.0, 1.0), "gamma: shape must be > 0"),
        (lambda: Gamma.from_mean_cv(1.0, 0.0), "gamma: cv must be > 0"),
        (lambda: Erlang(2.5, 1.0), "erlang: k must be an integer >= 1"),
        (lambda: Erlang(0, 1.0), "erlang: k must be an integer >= 1"),
        (lambda: Weibull(1.0, 0.0), "weibull: scale must be > 0"),
        (lambda: Pareto(-1.0, 1.0), "pareto: shape must be > 0"),
        (lambda: Empirical(()), "empirical: needs at least one value"),
        (lambda: Empirical((1.0, -2.0)), r"empirical: values\[1\] must not be negative"),
        (lambda: Empirical("123"), "empirical: values must be a list"),
        (lambda: Mixture(()), "mixture: needs at least one component"),
        (lambda: Mixture(((0.0, Constant(1.0)),)), "weights must sum to > 0"),
        (lambda: Mixture(((-1.0, Constant(1.0)),)), "must not be negative"),
        (lambda: Mixture(((1.0, 2.0),)), "must be a Distribution"),
        (lambda: Mixture((1.0,)), r"must be a \(weight, dist\) pair"),
    ],
)
def test_constructor_validation(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_erlang_accepts_whole_float_k() -> None:
    assert Erlang(3.0, 1.0) == Erlang(3, 1.0)  # type: ignore[arg-type]
    assert isinstance(Erlang(3.0, 1.0).k, int)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- spec round trip


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_to_spec_round_trips(dist: Distribution) -> None:
    spec = dist.to_spec()
    assert parse_distribution(spec) == dist
    # the spec is plain data that survives YAML
    assert parse_distribution(yaml.safe_load(yaml.safe_dump(spec))) == dist


@pytest.mark.parametrize(
    "dist",
    [
        Exponential(1 / 3),
        Uniform(0.0, 0.1 + 0.2),
        Normal(-1 * MS, 2 * MS),
        Gamma.from_mean_cv(1.7 * MS, 0.3),
        Weibull(0.7, math.pi * MS),
        Mixture(((1 / 3, Exponential(1.0)), (2 / 3, Constant(0.0)))),
        Mixture(((1.0, Mixture(((1.0, Constant(1.0)), (1.0, Uniform(0.0, 1.0))))),)),
    ],
    ids=repr,
)
def test_to_spec_round_trips_awkward_numbers(dist: Distribution) -> None:
    assert parse_distribution(dist.to_spec()) == dist


def test_to_spec_is_readable() -> None:
    assert Exponential(2 * MS).to_spec() == {"exponential": {"mean": "2ms"}}
    assert Uniform(1 * MS, 3 * MS).to_spec() == {"uniform": {"low": "1ms", "high": "3ms"}}
    assert Exponential(1 / 3).to_spec() == {"exponential": {"mean": 1 / 3}}


# ----------------------------------------------------------------------------- spec parsing


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4ms", Constant(4 * MS)),
        (0.25, Constant(0.25)),
        (0, Constant(0.0)),
        ({"constant": "4ms"}, Constant(4 * MS)),
        ({"exponential": "2ms"}, Exponential(2 * MS)),
        ({"exponential": {"mean": "2ms"}}, Exponential(2 * MS)),
        ({"exponential": {"rate": 500}}, Exponential(2 * MS)),
        ({"exponential": {"rate": "30000/m"}}, Exponential(2 * MS)),
        ({"uniform": {"low": "1ms", "high": "3ms"}}, Uniform(1 * MS, 3 * MS)),
        ({"uniform": ["1ms", "3ms"]}, Uniform(1 * MS, 3 * MS)),
        ({"normal": {"mean": "5ms", "sd": "1ms"}}, Normal(5 * MS, 1 * MS)),
        ({"normal": {"mean": "-1ms", "sd": "1ms"}}, Normal(-1 * MS, 1 * MS)),
        (
            {"lognormal": {"median": "4ms", "p99": "25ms"}},
            LogNormal.from_median_p99(4 * MS, 25 * MS),
        ),
        ({"lognormal": {"mean": "4ms", "cv": 1.5}}, LogNormal.from_mean_cv(4 * MS, 1.5)),
        ({"lognormal": {"mu": -5.5, "sigma": 0.8}}, LogNormal(-5.5, 0.8)),
        ({"gamma": {"mean": "2ms", "cv": 0.5}}, Gamma.from_mean_cv(2 * MS, 0.5)),
        ({"gamma": {"shape": 2, "scale": "1ms"}}, Gamma(2.0, 1 * MS)),
        ({"erlang": {"k": 3, "mean": "3ms"}}, Erlang(3, 3 * MS)),
        ({"weibull": {"shape": 1.5, "scale": "2ms"}}, Weibull(1.5, 2 * MS)),
        ({"pareto": {"shape": 2.5, "scale": "1ms"}}, Pareto(2.5, 1 * MS)),
        ({"empirical": ["1ms", "2ms", "5ms"]}, Empirical((1 * MS, 2 * MS, 5 * MS))),
        (
            {
                "mixture": [
                    {"weight": 0.9, "dist": "2ms"},
                    {"weight": 0.1, "dist": {"exponential": "50ms"}},
                ]
            },
            Mixture(((0.9, Constant(2 * MS)), (0.1, Exponential(50 * MS)))),
        ),
    ],
    ids=repr,
)
def test_parse_distribution(spec: object, expected: Distribution) -> None:
    assert parse_distribution(spec) == expected


def test_parse_distribution_from_yaml_text() -> None:
    spec = yaml.safe_load(
        """
        mixture:
          - {weight: 0.9, dist: {lognormal: {median: 4ms, p99: 25ms}}}
          - {weight: 0.1, dist: {pareto: {shape: 2.5, scale: 1ms}}}
        """
    )
    d = parse_distribution(spec)
    assert isinstance(d, Mixture)
    assert d.components[1] == (0.1, Pareto(2.5, 1 * MS))


def test_parse_distribution_passes_distributions_through() -> None:
    d = Exponential(1.0)
    assert parse_distribution(d) is d


def test_distribution_names() -> None:
    assert DISTRIBUTION_NAMES == (
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
    assert {next(iter(d.to_spec())) for d in DISTS} <= set(DISTRIBUTION_NAMES)


def _assert_lists_names(message: str) -> None:
    for name in DISTRIBUTION_NAMES:
        assert name in message


@pytest.mark.parametrize(
    "spec",
    [
        {"poisson": {"mean": "2ms"}},
        {"exponential": "2ms", "uniform": [1, 2]},
        {},
        {1: 2},
        None,
        True,
        ["2ms"],
        "4 sec",
        {"mixture": [{"weight": 1, "dist": {"triangular": [1, 2, 3]}}]},
    ],
    ids=repr,
)
def test_parse_distribution_bad_shape_lists_allowed_names(spec: object) -> None:
    with pytest.raises(ValueError) as err:
        parse_distribution(spec)
    _assert_lists_names(str(err.value))


def test_parse_distribution_unknown_name_message() -> None:
    with pytest.raises(ValueError) as err:
        parse_distribution({"poisson": 3})
    assert str(err.value) == (
        "unknown distribution 'poisson'; allowed: constant, exponential, uniform, normal, "
        "lognormal, gamma, erlang, weibull, pareto, empirical, mixture"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # unknown, missing and conflicting parameters name them and list what is allowed
        (
            {"exponential": {"avg": "2ms"}},
            r"exponential: unknown parameter\(s\) 'avg'; expected \{mean\} or \{rate\}",
        ),
        (
            {"exponential": {"mean": "2ms", "rate": 5}},
            "cannot be combined; expected {mean} or {rate}",
        ),
        (
            {"uniform": {"low": "1ms"}},
            r"uniform: missing parameter\(s\) 'high'; expected \{low, high\}",
        ),
        ({"uniform": ["1ms"]}, r"uniform: expected \[low, high\]"),
        ({"uniform": ["3ms", "1ms"]}, "uniform: high must be >= low"),
        (
            {"normal": {"mean": "5ms", "sigma": "1ms"}},
            r"unknown parameter\(s\) 'sigma'; expected \{mean, sd\}",
        ),
        ({"normal": {"mean": "5ms", "sd": 0}}, r"normal.sd: duration must be > 0"),
        (
            {"lognormal": {"median": "4ms"}},
            r"missing parameter\(s\) 'p99'; expected \{median, p99\} or \{mean, cv\} or \{mu, sigma\}",
        ),
        ({"lognormal": {"median": "4ms", "cv": 1}}, "cannot be combined"),
        ({"lognormal": {"median": "25ms", "p99": "4ms"}}, "p99 must be >= median"),
        (
            {"lognormal": {"mu": "-5.5", "sigma": 0.8}},
            "lognormal.mu: expected a number, got '-5.5'",
        ),
        ({"lognormal": "4ms"}, "lognormal: expected a mapping with parameters"),
        ({"gamma": {"mean": "2ms"}}, r"missing parameter\(s\) 'cv'"),
        ({"gamma": {"shape": 2, "scale": "-1ms"}}, "gamma.scale: duration must not be negative"),
        ({"erlang": {"k": 2.5, "mean": "1ms"}}, "erlang: k must be an integer >= 1"),
        ({"weibull": {"shape": 1.5}}, r"weibull: missing parameter\(s\) 'scale'"),
        (
            {"pareto": {"alpha": 2, "scale": "1ms"}},
            r"pareto: unknown parameter\(s\) 'alpha'; expected \{shape, scale\}",
        ),
        ({"exponential": "4 sec"}, r"exponential: expected a duration such as '4ms'.*got '4 sec'"),
        ({"exponential": 0}, "exponential: duration must be > 0"),
        ({"exponential": {"rate": 0}}, "exponential.rate: must be > 0"),
        ({"constant": "-4ms"}, "constant: duration must not be negative"),
        ({"empirical": []}, "empirical: needs at least one value"),
        ({"empirical": ["1ms", "x"]}, r"empirical\[1\]: expected a duration"),
        ({"empirical": {"column": "a"}}, r"empirical: missing parameter\(s\) 'csv'"),
        ({"mixture": []}, "mixture: expected a non-empty list"),
        ({"mixture": [{"weight": 1}]}, r"mixture\[0\]: missing parameter\(s\) 'dist'"),
        ({"mixture": [{"weight": 0, "dist": "1ms"}]}, "weights must sum to > 0"),
        ({"mixture": [{"weight": "x", "dist": "1ms"}]}, r"mixture\[0\].weight: expected a number"),
        (
            {"mixture": [{"weight": 1, "dist": {"exponential": -1}}]},
            r"mixture\[0\].dist: exponential:",
        ),
    ],
    ids=repr,
)
def test_parse_distribution_errors(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_distribution(spec)


# ----------------------------------------------------------------------------- empirical CSV


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_empirical_from_csv_relative_to_base_dir(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "lat.csv", "request,latency_ms\na,1.5\nb,2\nc, 10 \n")
    d = parse_distribution(
        {"empirical": {"csv": "lat.csv", "column": "latency_ms", "unit": "ms"}}, base_dir=tmp_path
    )
    assert d == Empirical((1.5 * MS, 2 * MS, 10 * MS))


def test_empirical_from_csv_default_unit_and_absolute_path(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "lat.csv", "\ufefflatency\n0.5\n0.25\n4ms\n")  # BOM, cell with a unit
    d = parse_distribution({"empirical": {"csv": str(path), "column": "latency"}})
    assert d == Empirical((0.5, 0.25, 4 * MS))


def test_empirical_csv_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="CSV file .* does not exist") as err:
        parse_distribution({"empirical": {"csv": "nope.csv", "column": "x"}}, base_dir=tmp_path)
    assert str(tmp_path / "nope.csv") in str(err.value)


def test_empirical_csv_missing_column(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "lat.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError) as err:
        parse_distribution(
            {"empirical": {"csv": "lat.csv", "column": "latency"}}, base_dir=tmp_path
        )
    message = str(err.value)
    assert "lat.csv" in message and "'latency'" in message and "columns: a, b" in message


@pytest.mark.parametrize("cell", ["slow", "", "-3", "nan"])
def test_empirical_csv_bad_cell(tmp_path: pathlib.Path, cell: str) -> None:
    _write(tmp_path / "lat.csv", f"latency_ms\n1\n{cell},\n")
    with pytest.raises(ValueError) as err:
        parse_distribution(
            {"empirical": {"csv": "lat.csv", "column": "latency_ms", "unit": "ms"}},
            base_dir=tmp_path,
        )
    message = str(err.value)
    assert "lat.csv" in message and "'latency_ms'" in message and "line 3" in message
    assert repr(cell) in message


def test_empirical_csv_empty_column(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "lat.csv", "latency\n")
    with pytest.raises(ValueError, match="has no values"):
        parse_distribution(
            {"empirical": {"csv": "lat.csv", "column": "latency"}}, base_dir=tmp_path
        )


def test_empirical_csv_bad_unit(tmp_path: pathlib.Path) -> None:
    with pytest.raises(
        ValueError, match="empirical.unit: must be one of us, ms, s, m, h, d, y, got 'sec'"
    ):
        parse_distribution(
            {"empirical": {"csv": "x.csv", "column": "a", "unit": "sec"}}, base_dir=tmp_path
        )


# ----------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_sampler_matches_batched_sample(dist: Distribution) -> None:
    batch = 64
    draw = sampler(dist, np.random.default_rng(2024), batch=batch)
    got = [draw() for _ in range(3 * batch + 5)]
    rng = np.random.default_rng(2024)
    if isinstance(dist, Constant):
        expected = [dist.value] * len(got)
    else:
        expected = np.concatenate([dist.sample(rng, batch) for _ in range(4)]).tolist()
    assert got == expected[: len(got)]
    assert all(type(v) is float for v in got)


def test_sampler_default_batch_matches_sample() -> None:
    dist = LogNormal.from_median_p99(4 * MS, 25 * MS)
    draw = sampler(dist, np.random.default_rng(5))
    got = [draw() for _ in range(5000)]
    rng = np.random.default_rng(5)
    expected = np.concatenate([dist.sample(rng, 4096), dist.sample(rng, 4096)])
    assert got == expected[:5000].tolist()


def test_sampler_constant_consumes_no_randomness() -> None:
    rng = np.random.default_rng(11)
    before = rng.bit_generator.state
    draw = sampler(Constant(3 * MS), rng)
    assert [draw() for _ in range(1000)] == [3 * MS] * 1000
    assert rng.bit_generator.state == before


def test_sampler_rejects_bad_batch() -> None:
    with pytest.raises(ValueError, match="batch must be >= 1"):
        sampler(Exponential(1.0), np.random.default_rng(0), batch=0)
