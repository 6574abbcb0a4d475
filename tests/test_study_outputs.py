"""What studies report about themselves: the warnings of each run survive into compare and
sweep tables, and a knee the search never bracketed is a lower bound with no interval."""

from __future__ import annotations

import math

from cli_helpers import ROOT

import simarch

SINGLE = ROOT / "architectures" / "single_server.yaml"


def test_run_warnings_reach_the_comparison():
    # 1 s windows hold ~150 requests: too few to judge a p99 (the run warns), so does compare
    cmp = simarch.compare([SINGLE], loads=[1], replications=2, duration="1s", warmup="1s", knee=False,
                          executor="serial", progress=False)
    assert "warnings" in cmp.runs.columns
    assert all("biased low" in w for w in cmp.runs["warnings"])
    assert any("2 of 2 runs warned" in w and "biased low" in w for w in cmp.warnings)


def test_run_warnings_reach_the_sweep_rows(tmp_path):
    df = simarch.sweep(SINGLE, {"app.workers": [32]}, tmp_path, duration="1s", warmup="1s",
                       executor="serial", progress=False)
    assert "biased low" in df["warnings"].iloc[0]


def test_a_knee_above_every_load_simulated_is_a_lower_bound():
    cmp = simarch.compare([SINGLE], loads=[1, 2], replications=2, duration="10s", warmup="2s",
                          executor="serial", progress=False)
    k = cmp.knee.iloc[0]
    assert bool(k["censored"])
    assert math.isnan(k["ci_low"]) and math.isnan(k["ci_high"])  # no interval for a bound
    assert 2 <= k["knee"] < 4  # the highest load simulated that met the SLO (search up to 4x)
    assert "every load simulated" in k["note"] and f"{k['knee']:.4g}x" in k["note"]
    assert ">=" in str(cmp)


def test_percentages_never_round_up_to_all():
    from simarch.results.text import fmt

    assert fmt(1.0, "pct") == "100.00%" and fmt(0.99995, "pct") == "99.9950%"
    assert fmt(0.9999999999, "pct") == ">99.9999%"
