"""Calibration round trip: simulate a known design, export its traces, fit them, simulate the
fitted design.

The design: ``api`` (lognormal service time) fans out in parallel to ``db`` (gamma) and
``search`` (Weibull), every service with workers enough that no visit waits, no network
latency; so each visit's exclusive time in its span is its service time, and the fit sees
exact service-time samples. Checks:

* each service's fitted family is the true one, and each fitted parameter lies within
  K_SE = 4 of its standard errors (the fit's own, from the Fisher information) of the truth;
* the inferred call graph is the design's (api calls both, in parallel, once per visit);
* the fitted design, simulated with the same R = 8 seeds, has an end-to-end p50 and p99
  whose means lie inside the original design's 95% t-interval over its R replications.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

import simarch
from simarch.model.stats import t_quantile

K_SE = 4.0
RATE, DURATION, REPS = 40.0, 150.0, 8
LN_MEDIAN, LN_P99 = 0.004, 0.020  # api: sigma = ln(p99 / median) / z_0.99
GAMMA_SHAPE, GAMMA_SCALE = 4.0, 0.00075  # db: mean 3 ms, cv 0.5
WEIBULL_SHAPE, WEIBULL_SCALE = 1.5, 0.005  # search


def _design() -> dict:
    big = 100_000  # no visit ever waits for a worker
    return {
        "name": "known",
        "workload": {"rate": RATE, "entry": "api", "requests": {"get": {"weight": 1}}},
        "components": {
            "api": {"kind": "service", "workers": big, "fanout": "parallel",
                    "service_time": {"lognormal": {"median": f"{LN_MEDIAN}s", "p99": f"{LN_P99}s"}}},
            "db": {"kind": "service", "workers": big,
                   "service_time": {"gamma": {"shape": GAMMA_SHAPE, "scale": f"{GAMMA_SCALE}s"}}},
            "search": {"kind": "service", "workers": big,
                       "service_time": {"weibull": {"shape": WEIBULL_SHAPE, "scale": f"{WEIBULL_SCALE}s"}}},
        },
        "calls": [{"from": "api", "to": "db"}, {"from": "api", "to": "search"}],
    }


def _ci(x: list[float]) -> tuple[float, float, float]:
    a = np.asarray(x)
    m, se = float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))
    h = t_quantile(0.975, len(a) - 1) * se
    return m, m - h, m + h


@pytest.mark.slow
def test_simulate_export_fit_simulate(tmp_path):
    original = simarch.load(_design())
    first = simarch.simulate(original, duration=DURATION, warmup=1, seed=100, progress=False)
    path = tmp_path / "spans.json"
    written = first.traces(path, sample="limit=none")
    assert "of" in str(written)
    fit = simarch.fit(path)

    # --- the service times: family and parameters within 4 SE of the truth
    truth = {
        "api": ("lognormal", {"mu": math.log(LN_MEDIAN), "sigma": math.log(LN_P99 / LN_MEDIAN) / 2.3263478740408408}),
        "db": ("gamma", {"shape": GAMMA_SHAPE, "scale": GAMMA_SCALE}),
        "search": ("weibull", {"shape": WEIBULL_SHAPE, "scale": WEIBULL_SCALE}),
    }
    for (service, _op), p in fit.proposals.items():
        family, params = truth[service]
        c = p.chosen
        assert c.family == family, f"{service}: fitted {c.family}, the truth is {family}"
        for name, true in params.items():
            est, se = c.params[name], c.se[name]
            print(f"{service}.{name}: fitted {est:.6g} truth {true:.6g} SE {se:.3g} "
                  f"tol {K_SE * se:.3g} (n={p.n})")
            assert se > 0 and K_SE * se < 0.1 * abs(true), f"{service}.{name}: SE {se:.3g} too wide"
            assert abs(est - true) <= K_SE * se, (
                f"{service}.{name}: fitted {est:.6g} vs {true:.6g} ({(est - true) / se:+.2f} SE)")
    assert {s for s, _ in fit.proposals} == {"api", "db", "search"}

    # --- the call graph
    g = fit.graph
    assert set(g.edges) == {("api", "db"), ("api", "search")}
    for e in g.edges:
        attrs = g.edges[e]
        assert attrs["parallel"] >= 0.99, (e, attrs)  # the share of visits where it overlaps a sibling
        assert abs(attrs.get("probability", 0) - 1.0) < 1e-9, (e, attrs)

    # --- the fitted design behaves like the original
    fragment = yaml.safe_load(fit.fragment())
    fitted_spec = {"name": "fitted", "workload": _design()["workload"], **fragment}
    for name, comp in fitted_spec["components"].items():
        comp["workers"] = 100_000
        if name == "api":
            comp["fanout"] = "parallel"
    fitted = simarch.load(fitted_spec)
    p50, p99, f50, f99 = [], [], [], []
    for i in range(REPS):
        seed = 200 + i
        a = simarch.simulate(original, duration=DURATION, warmup=1, seed=seed, progress=False, hops=False)
        b = simarch.simulate(fitted, duration=DURATION, warmup=1, seed=seed, progress=False, hops=False)
        p50.append(a.summary().loc["all", "p50_ms"])
        p99.append(a.summary().loc["all", "p99_ms"])
        f50.append(b.summary().loc["all", "p50_ms"])
        f99.append(b.summary().loc["all", "p99_ms"])
    for label, orig, new in (("p50", p50, f50), ("p99", p99, f99)):
        m, lo, hi = _ci(orig)
        got = float(np.mean(new))
        print(f"end-to-end {label}: original {m:.4g} ms [{lo:.4g}, {hi:.4g}] (R={REPS}), fitted {got:.4g} ms")
        assert lo <= got <= hi, f"fitted design's {label} {got:.4g} ms is outside the original's [{lo:.4g}, {hi:.4g}]"
