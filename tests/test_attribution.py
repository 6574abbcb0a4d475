"""Hop records and tail attribution against queueing theory, and the exactness of each
request's critical path.

Every statistical check runs R independent replications (seeds ``seed + i``) and compares
their mean with theory within K_SE = 4 standard errors, the SE being the spread of the
replications' estimates over sqrt(R); each test also asserts that 4 SE is small against the
theory value, so that the check can fail. N, the SE and the tolerance are printed (``-s``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import simarch
from simarch.results.hops import END, START

ROOT = Path(__file__).resolve().parents[1]
K_SE = 4.0


def _check(label: str, estimates: list[float], theory: float, max_rel: float) -> None:
    x = np.asarray(estimates, dtype=float)
    r = len(x)
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(r))
    print(f"{label:<44} sim={mean:.6g} theory={theory:.6g} SE={se:.3g} tol={K_SE * se:.3g} (R={r})")
    assert se > 0
    assert K_SE * se <= max_rel * abs(theory), f"{label}: 4 SE = {K_SE * se:.3g} is too wide to be a check"
    assert abs(mean - theory) <= K_SE * se, (
        f"{label}: simulated {mean:.6g} vs theory {theory:.6g} ({(mean - theory) / se:+.2f} SE)")


def _pieces_sum(result: simarch.Result, idx: np.ndarray) -> np.ndarray:
    m = result.hops.phase_matrix(idx, result.start[idx], result.end[idx])
    return m.sum(axis=1)


# ----------------------------------------------------------------------------- Jackson tandem
TAN_LAM, TAN_S = 0.5, (1.2, 1.5, 1.0)  # rho = 0.6, 0.75, 0.5


def _tandem() -> simarch.Architecture:
    a = simarch.Architecture("tandem", workload={"rate": TAN_LAM})
    names = [f"st{i}" for i in range(len(TAN_S))]
    for name, s in zip(names, TAN_S, strict=True):
        a.add(name, kind="service", workers=1, service_time={"exponential": f"{s}s"})
    for src, dst in zip(names, names[1:], strict=False):
        a.call(src, dst, mode="forward")
    return a


@pytest.mark.slow
def test_jackson_tandem_shares_and_exact_phases():
    """Three M/M/1 stations in series (forward calls): station i's mean time per request
    (wait + service) is W_i = S_i / (1 - rho_i), its share of the end-to-end time is
    W_i / sum W, and each request's phases add up to its latency exactly. R = 12
    replications of 10,000 s (about 5,000 requests each)."""
    arch = _tandem()
    w = [s / (1 - TAN_LAM * s) for s in TAN_S]
    per_station: list[list[float]] = [[] for _ in TAN_S]
    shares: list[list[float]] = [[] for _ in TAN_S]
    for i in range(12):
        r = simarch.simulate(arch, duration=10_000, warmup=500, seed=4_100 + i, progress=False)
        att = r.attribution("all")
        ok = np.flatnonzero(r.status == 0)
        gap = np.abs(_pieces_sum(r, ok) - (r.end - r.start)[ok])
        assert gap.max() <= 1e-9, f"phases and latency differ by up to {gap.max():.3g} s"
        for k in range(len(TAN_S)):
            rows = att[(att["component"] == f"st{k}") & (att["class"] == "all")]
            assert set(rows["phase"]) <= {"wait", "service"}
            per_station[k].append(rows["mean_ms"].sum() / 1e3)
            shares[k].append(rows["share"].sum())
        assert abs(att[att["class"] == "all"]["share"].sum() - 1.0) < 1e-9
    for k in range(len(TAN_S)):
        _check(f"tandem st{k} mean time W_{k}", per_station[k], w[k], 0.10)
        _check(f"tandem st{k} share W_{k}/sum W", shares[k], w[k] / sum(w), 0.10)


# ----------------------------------------------------------------------------- fan-out
FAN_N, FAN_MEAN = 5, 0.010


def _fanout() -> simarch.Architecture:
    a = simarch.Architecture("fanout", workload={"rate": 200})
    a.add("front", kind="service", workers=100_000, fanout="parallel")  # no service time
    for j in range(FAN_N):  # workers enough that no visit ever waits
        a.add(f"leaf{j}", kind="service", workers=100_000, service_time={"exponential": f"{FAN_MEAN}s"})
        a.call("front", f"leaf{j}")
    return a


@pytest.mark.slow
def test_fanout_critical_child_is_the_maximum_of_n_exponentials():
    """A parallel fan-out to n = 5 exponential leaves with no queueing: the critical-path
    child's mean time is the mean of the maximum of n exponentials, H_n / mu, and each leaf
    is the critical one with probability 1/n. R = 10 replications of 10 s (about 2,000
    requests each)."""
    arch = _fanout()
    h_n = sum(1 / k for k in range(1, FAN_N + 1))
    crit, first_share = [], []
    for i in range(10):
        r = simarch.simulate(arch, duration=10, warmup=0.5, seed=5_200 + i, progress=False)
        ok = np.flatnonzero(r.status == 0)
        lat = (r.end - r.start)[ok]
        m = r.hops.phase_matrix(ok, r.start[ok], r.end[ok])
        assert np.abs(m.sum(axis=1) - lat).max() <= 1e-12
        att = r.attribution("all")
        leaves = att[att["component"].str.startswith("leaf")]
        assert set(leaves["phase"]) == {"service"}
        crit.append(leaves["mean_ms"].sum() / 1e3)
        # the leaf on the path is the one that finished last: the request's latency
        nonzero = (m > 0).sum(axis=1)
        assert np.all(nonzero == 1), "exactly one leaf is on each request's path"
        first_share.append(float((m[:, 1 * 7 + 2] > 0).mean()))  # leaf0 = component 1, service = phase 2
    _check("fan-out critical child mean H_n/mu", crit, h_n * FAN_MEAN, 0.05)
    _check("fan-out P(leaf0 critical) = 1/n", first_share, 1 / FAN_N, 0.25)


# ----------------------------------------------------------------------------- M/M/c hops
MMC_LAM, MMC_C = 3.2, 4  # mu = 1, rho = 0.8


def _erlang_c(c: int, a: float) -> float:
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1 - b))


@pytest.mark.slow
def test_hop_wait_times_follow_erlang_c():
    """The wait of each visit of an M/M/4 station at rho = 0.8, read from the hop records:
    P(wait > 0) is Erlang C, and given that it waits, the wait is exponential with mean
    1 / (c mu - lambda) (checked at its mean and at P(W > 2 s | W > 0)). R = 10
    replications of 10,000 s (about 32,000 visits each)."""
    arch = (simarch.Architecture("mmc", workload={"rate": MMC_LAM})
            .add("s", kind="service", workers=MMC_C, service_time={"exponential": "1s"}))
    p_wait, cond_mean, cond_tail = [], [], []
    for i in range(10):
        r = simarch.simulate(arch, duration=10_000, warmup=200, seed=6_300 + i, progress=False)
        rows = r.hops.rows
        wait = rows[:, START] - rows[:, 3]
        assert np.all(wait >= 0) and np.all(rows[:, END] >= rows[:, START])
        waited = wait[wait > 0]
        p_wait.append(len(waited) / len(wait))
        cond_mean.append(float(waited.mean()))
        cond_tail.append(float((waited > 2.0).mean()))
    gap = MMC_C * 1.0 - MMC_LAM
    _check("M/M/4 P(wait > 0) = Erlang C", p_wait, _erlang_c(MMC_C, MMC_LAM), 0.05)
    _check("M/M/4 E[W | W > 0] = 1/(c mu - lambda)", cond_mean, 1 / gap, 0.08)
    _check("M/M/4 P(W > 2 s | W > 0)", cond_tail, math.exp(-gap * 2.0), 0.15)


# ----------------------------------------------------------------------------- every example
SPECS = sorted((ROOT / "architectures").glob("*.yaml")) + sorted((ROOT / "tests" / "golden" / "specs").glob("*.yaml"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_recorded_request_is_covered_exactly(spec):
    """On every example (retries, timeouts, hedges, fallbacks, forwards, async calls, queues,
    replica copies, crashes): each recorded request's pieces add up to its latency, and no
    piece is negative."""
    arch = simarch.load(spec)
    warm = arch.spec.simulation.warmup
    r = simarch.simulate(arch, duration=min(20.0, arch.spec.simulation.duration), warmup=min(warm, 60.0),
                         seed=3, progress=False)
    rec = np.flatnonzero(r.hops.request_root >= 0)
    assert len(rec) == len(r.start)
    idx = rec[np.linspace(0, len(rec) - 1, min(len(rec), 4000)).astype(int)] if len(rec) else rec
    m = r.hops.phase_matrix(idx, r.start[idx], r.end[idx])
    assert (m >= 0).all()
    gap = np.abs(m.sum(axis=1) - (r.end - r.start)[idx])
    assert gap.max(initial=0.0) <= 1e-9 * max(1.0, float((r.end - r.start).max(initial=0.0)))


# ----------------------------------------------------------------------------- API and outputs
def _orders() -> simarch.Architecture:
    """An API in front of a datastore at 88% utilisation: its p99 band waits at db."""
    return (simarch.Architecture("orders", workload={"rate": 700})
            .add("api", kind="service", instances=2, workers=32,
                 service_time={"lognormal": {"median": "3ms", "p99": "9ms"}})
            .add("db", kind="datastore", workers=8, service_time={"erlang": {"k": 4, "mean": "10ms"}})
            .call("api", "db", latency="0.5ms"))


def test_bands_shares_and_the_report_section():
    r = simarch.simulate(_orders(), duration=30, warmup=5, seed=2, progress=False)
    att = r.attribution()
    assert set(att["band"]) == {"median", "p99", "p99.9"}
    for _, g in att.groupby(["band", "class"]):
        assert abs(g["share"].sum() - 1.0) < 1e-9
    ok = r.latency[r.status == 0]
    p99 = att[att["band"] == "p99"]
    assert p99["requests"].iloc[0] == int(((ok >= np.quantile(ok, 0.99)) & (ok < np.quantile(ok, 0.999))).sum())
    wait = p99[(p99["component"] == "db") & (p99["phase"] == "wait")]["share"].iloc[0]
    med = att[(att["band"] == "median") & (att["component"] == "db") & (att["phase"] == "wait")]["share"].iloc[0]
    assert wait > 2 * med  # the tail waits at db
    # a network piece is the call's constant latency, exactly
    net = att[(att["component"] == "db") & (att["phase"] == "network")]["mean_ms"]
    assert np.allclose(net, 0.5, atol=1e-9)
    text = r.report()
    assert "What makes the p99" in text
    assert "waiting for a worker at db (not served)" in text
    assert "Time per visit by component and class" in text
    c = r.tail_contrast()
    assert c["grows"]["component"] == "db" and c["grows"]["phase"] == "wait"
    # named and numeric bands agree
    a = r.attribution((0.99, 0.999), per_class=False)
    b = att[(att["band"] == "p99") & (att["class"] == "all")]
    assert np.allclose(sorted(a["share"]), sorted(b["share"]))


def test_attribution_errors_are_clear():
    r = simarch.simulate(_orders(), duration=5, warmup=1, seed=2, progress=False, hops=False)
    assert r.hops is None and r.tail_contrast() is None
    assert "What makes the p99" not in r.report()
    with pytest.raises(simarch.SimarchError, match="no hop records"):
        r.attribution()
    r = simarch.simulate(_orders(), duration=5, warmup=1, seed=2, progress=False)
    with pytest.raises(simarch.SimarchError, match="a latency band is one of"):
        r.attribution("p42")
    with pytest.raises(simarch.SimarchError, match="0 <= lo < hi <= 1"):
        r.attribution((0.9, 0.5))
    with pytest.raises(simarch.SimarchError, match="no request class 'nope'"):
        r.attribution(classes=["nope"])
    with pytest.raises(simarch.SpecError, match="hops is true, false or a whole number"):
        simarch.simulate(_orders(), duration=5, hops=0, progress=False)


def test_sampling_records_one_request_in_n():
    r = simarch.simulate(_orders(), duration=10, warmup=1, seed=2, progress=False, hops=7)
    rec = r.hops.request_root >= 0
    assert r.hops.every == 7
    assert abs(rec.mean() - 1 / 7) < 0.01
    assert (r.hops.request_of() >= 0).all()
    att = r.attribution("median", per_class=False)
    assert att["requests"].iloc[0] <= rec.sum() * 0.11 + 1
    assert "one request in 7" in r.report()


def test_hops_off_changes_no_number():
    """Recording is observation only: the same run with and without hop records gives the
    same request records and component figures."""
    a = simarch.simulate(_orders(), duration=10, warmup=1, seed=4, progress=False, hops=True)
    b = simarch.simulate(_orders(), duration=10, warmup=1, seed=4, progress=False, hops=False)
    assert np.array_equal(a.start, b.start) and np.array_equal(a.end, b.end)
    assert a.components().equals(b.components())


def test_plot_and_compare(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from simarch import plots

    r = simarch.simulate(_orders(), duration=10, warmup=1, seed=2, progress=False)
    ax = plots.attribution(r)
    widths = {}
    for patch in ax.patches:
        y = round(patch.get_y() + patch.get_height() / 2)
        widths[y] = widths.get(y, 0.0) + patch.get_width()
    assert len(widths) == 3 and all(abs(w - 100) < 1e-6 for w in widths.values())
    fixed = _orders().with_changes({"db.replicas": 2})
    cmp = simarch.compare([_orders(), fixed], loads=[1], replications=2, duration=8, warmup=1,
                          knee=False, attribution=True, executor="serial", progress=False)
    att = cmp.attribution
    assert set(att["design"]) == {"orders", "orders#2"} and set(att["band"]) == {"median", "p99"}
    w = att[(att["band"] == "p99") & (att["component"] == "db") & (att["phase"] == "wait")]
    assert w.set_index("design")["share"]["orders"] > w.set_index("design")["share"].get("orders#2", 0.0)
    assert "Where the p99 goes" in str(cmp)
    plots.attribution(cmp)
    cmp.save(tmp_path / "cmp")
    back = type(cmp).load(tmp_path / "cmp")
    assert back.attribution.equals(cmp.attribution)
