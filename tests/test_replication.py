"""Replication lag, stale reads, read policies, sessions, quorums and scatter-gather reads of
the datastore, against theory (the statistical checks are marked slow; each states its N, the
SE from independent replications, and a tolerance of about 4 SE)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import simarch
from simarch import Architecture, SpecError
from simarch.analysis.pbs import order_statistic_mean, order_statistic_quantile, stale_probability
from simarch.run.simulation import Simulation
from simarch.runtime.tasks import run_until, spawn


def _lagged(w: float = 50.0, reads: float = 200.0, lag: float = 0.02, **db) -> Architecture:
    """One key, Poisson writes at ``w``/s and reads at ``reads``/s, two copies, an
    exponential replication delay of mean ``lag``, no service time and no queueing."""
    opts = {"replicas": 2, "workers": 100_000, "policy": "round_robin",
            "service_time": {"read": 0, "write": 0}, "lag": {"network": {"exponential": lag}}}
    opts.update(db)
    return (Architecture("lag", workload={"rate": reads + w, "requests": {
        "read": {"weight": reads, "keys": {"uniform": 1}, "session": "key"},
        "write": {"weight": w, "keys": {"uniform": 1}, "session": "key"}}})
        .add("db", kind="datastore", **opts))


def _fresh(result, cls: str = "read") -> dict:
    fr = result.freshness().set_index(["component", "class"])
    return fr.loc[("db", cls)].to_dict()


@pytest.mark.slow
def test_stale_reads_from_a_lagging_replica_match_w_l_over_1_plus_w_l():
    """Poisson writes at rate w to one key; each copy reaches the replica after an
    independent exponential delay of mean l (no apply time, no queueing); a replica keeps the
    newest version it has received (a late copy never undoes a newer one, so copies may
    overtake). A read at a random time finds the newest write committed A ago, A ~ Exp(w)
    (the backward recurrence time of the write process), and is stale iff that write's delay
    D ~ Exp(1/l) exceeds A: P = w l / (1 + w l) (= 1/2 at w = 50/s, l = 20 ms). Reads alternate
    between the primary (always fresh) and the replica, so the stale share over all reads is
    half of that: 0.25.

    N = 6 replications x 60 s (about 12,000 reads each); SE from the replications (about
    0.003); tolerance 4 SE."""
    w, lag = 50.0, 0.02
    theory = 0.5 * w * lag / (1 + w * lag)
    shares = []
    for seed in range(6):
        r = simarch.simulate(_lagged(w=w, lag=lag), duration="60s", warmup="1s", seed=100 + seed)
        shares.append(_fresh(r)["stale_fraction"])
    mean, se = float(np.mean(shares)), float(np.std(shares, ddof=1) / math.sqrt(len(shares)))
    assert abs(mean - theory) <= 4 * se, (
        f"stale share {mean:.4f} vs theory {theory:.4f} (N = 6 x 60 s, SE {se:.4f}, tolerance 4 SE)")


def test_bounded_staleness_never_serves_a_replica_lagging_more_than_the_bound():
    """A stale read's age is at most its replica's lag (the first version it missed is no
    older than the oldest write in flight there), so with bounded_staleness every stale
    read is younger than max_staleness; with `any` some are older."""
    bound = 0.005
    r = simarch.simulate(_lagged(read_from="bounded_staleness", max_staleness=bound),
                         duration="10s", warmup="0.5s", seed=3)
    row = _fresh(r)
    assert row["stale"] > 0 and row["age_max_ms"] <= bound * 1e3, row
    r_any = simarch.simulate(_lagged(), duration="10s", warmup="0.5s", seed=3)
    assert _fresh(r_any)["age_max_ms"] > bound * 1e3


def test_read_your_writes_routing_gives_no_violations_and_any_does():
    r = simarch.simulate(_lagged(read_from="read_your_writes"), duration="10s", warmup="0.5s", seed=4)
    row = _fresh(r)
    assert row["session_reads"] > 1000 and row["read_your_writes_violations"] == 0, row
    r_any = simarch.simulate(_lagged(), duration="10s", warmup="0.5s", seed=4)
    row = _fresh(r_any)
    assert row["read_your_writes_violations"] > 0 and row["monotonic_read_violations"] > 0, row


def test_every_replicated_store_tracks_freshness_and_one_copy_does_not():
    """Replicas apply writes after the primary even with no ``lag`` (their queue and service):
    a replicated store always keeps the accounting; a store with one copy has nothing to lag."""
    arch = _lagged().with_changes({"components.db.lag": None})
    r = simarch.simulate(arch, duration="2s", warmup="0s", seed=1)
    assert r.freshness_stats is not None and "stale_reads" in r.summary().columns
    one = arch.with_changes({"components.db.replicas": 1})
    r = simarch.simulate(one, duration="2s", warmup="0s", seed=1)
    assert r.freshness_stats is None and "stale_reads" not in r.summary().columns


def test_stale_reads_slo_is_missed_by_a_lagging_design():
    arch = _lagged().with_changes({"slo": {"stale_reads": "0.1%"}})
    r = simarch.simulate(arch, duration="5s", warmup="0.5s", seed=2)
    slo = r.slo()
    assert not bool(slo.loc["stale_reads", "met"]), slo
    assert r.summary().loc["read", "stale_reads"] > 0.001


def test_a_failover_to_a_lagging_replica_loses_writes():
    arch = (_lagged(w=200.0, lag=0.05, failover="1s")
            .with_changes({"faults": [{"kind": "crash", "target": "db", "shard": 0, "replica": 0,
                                       "at": "2s", "duration": "3s"}]}))
    r = simarch.simulate(arch, duration="6s", warmup="0.5s", seed=5)
    assert r.lost_writes.get("db", 0) > 0, r.lost_writes
    assert any(e["what"] == "failover" for e in r.event_log)


def test_semi_sync_and_majority_wait_for_acknowledgements():
    """semi_sync acknowledges once one replica has the write: with two copies a session
    then always reads its own writes."""
    r = simarch.simulate(_lagged(replication="semi_sync"), duration="5s", warmup="0.5s", seed=6)
    assert _fresh(r)["read_your_writes_violations"] == 0
    assert r.summary().loc["write", "mean_ms"] > 10.0  # there and back, 2 x 20 ms on average
    r = simarch.simulate(_lagged(replication="majority", replicas=3), duration="5s", warmup="0.5s", seed=6)
    assert r.summary().loc["write", "availability"] == 1.0


# -- quorums

def _quorum(r, w, n=3, st=None, lag=None, rate=200.0) -> Architecture:
    opts = {"replicas": n, "workers": 100_000, "quorum": {"r": r, "w": w},
            "service_time": st if st is not None else {"read": 0, "write": 0}}
    if lag is not None:
        opts["lag"] = {"network": {"exponential": lag}}
    return (Architecture("q", workload={"rate": rate, "requests": {
        "read": {"weight": 1, "keys": {"uniform": 1000}},
        "write": {"weight": 1, "keys": {"uniform": 1000}}}})
        .add("db", kind="datastore", **opts))


@pytest.mark.slow
def test_quorum_latency_is_the_kth_order_statistic_of_the_copies():
    """Exponential copy times of mean 1 ms (no network, no queueing): a read with R = 2 of
    N = 3 takes the 2nd fastest, mean (1/3 + 1/2) ms; a write with W = 3 the slowest, mean
    (1/3 + 1/2 + 1) ms; the p99 solves P(k-th of N <= x) = 0.99.

    N = 8 replications x 40 s (about 4,000 requests per class each); SE from the
    replications; tolerance 4 SE."""
    arch = _quorum(2, "all", st={"exponential": "1ms"})
    rows = {"read": [], "write": []}
    for seed in range(8):
        s = simarch.simulate(arch, duration="40s", warmup="1s", seed=200 + seed).summary()
        for c in rows:
            rows[c].append((s.loc[c, "mean_ms"], s.loc[c, "p99_ms"]))
    for c, k in (("read", 2), ("write", 3)):
        a = np.array(rows[c])
        for j, (what, theory) in enumerate((("mean", order_statistic_mean(k, 3, 1.0)),
                                            ("p99", order_statistic_quantile(0.99, k, 3, 1.0)))):
            m, se = a[:, j].mean(), a[:, j].std(ddof=1) / math.sqrt(len(a))
            assert abs(m - theory) <= 4 * se, (
                f"{c} {what} {m:.4f} ms vs theory {theory:.4f} ms (N = 8 x 40 s, SE {se:.4f}, 4 SE)")


def _pbs_trials(t: float, trials: int, seed: int, n=3, r=1, w=1, leg=0.001) -> float:
    """The stale share of reads begun exactly ``t`` after a quorum write committed (one
    write, then one read, then a pause long enough for every copy to settle)."""
    sim = Simulation(_quorum(r, w, n=n, lag=leg, rate=1e-6), duration=1e9, warmup=0.0, seed=seed)
    db = sim.components["db"]
    write, read = sim.classes.index("write"), sim.classes.index("read")

    def driver():
        for _ in range(trials):
            yield db.serve(None, write, 0, -1)
            if t > 0:
                yield float(t)
            yield db.serve(None, read, 0, -1)
            yield 50.0 * leg
    spawn(sim.env, driver())
    run_until(sim.env, 1e9)
    log = sim.freshness.log("db")
    rd = sim.classes.index("read")
    assert log.reads[rd] == trials
    return log.stale[rd] / trials


@pytest.mark.slow
def test_quorum_stale_reads_match_the_pbs_model():
    """N = 3, R = W = 1, every leg (write, ack, read, response) exponential with mean 1 ms,
    no service time: the share of reads begun t after the commit that are stale matches
    :func:`simarch.stale_probability` (WARS) at t = 0, 0.5, 1 and 2 ms.

    N = 6 replications x 3,000 write-read pairs per t; SE from the replications (about
    0.002), combined with the PBS estimate's own (200,000 trials, SE <= 0.0011); tolerance 4 SE."""
    for t in (0.0, 0.0005, 0.001, 0.002):
        shares = [_pbs_trials(t, 3000, 300 + s) for s in range(6)]
        m, se = float(np.mean(shares)), float(np.std(shares, ddof=1) / math.sqrt(6))
        p = stale_probability(t, 3, 1, 1, write=0.001)
        se = math.hypot(se, math.sqrt(p * (1 - p) / 200_000))
        assert abs(m - p) <= 4 * se, f"t = {t}: stale {m:.4f} vs PBS {p:.4f} (N = 6 x 3,000, SE {se:.4f}, 4 SE)"


def test_strict_quorums_never_read_stale():
    r = simarch.simulate(_quorum("quorum", "quorum", lag=0.001), duration="5s", warmup="0.5s", seed=8)
    assert _fresh(r)["stale"] == 0 and _fresh(r)["reads"] > 300
    assert stale_probability([0.0, 0.001], 3, 2, 2).tolist() == [0.0, 0.0]


def test_quorum_ops_fail_at_once_when_too_few_copies_are_up():
    arch = _quorum("all", "one", lag=0.001).with_changes(
        {"faults": [{"kind": "crash", "target": "db", "shard": 0, "replica": 1, "at": "1s", "duration": "1s"}]})
    s = simarch.simulate(arch, duration="3s", warmup="0s", seed=9).summary()
    assert s.loc["read", "failed"] > 0 and s.loc["write", "failed"] == 0


def test_pbs_function():
    p = stale_probability(np.array([0.0, 0.001, 0.003, 0.05]), 3, 1, 1, write=0.001, trials=20_000)
    assert 0.15 < p[0] < 0.35 and np.all(np.diff(p) <= 0) and p[-1] == 0.0
    assert stale_probability(0.0, 5, 1, 5) == 0.0  # r + w > n
    with pytest.raises(ValueError, match="at most n"):
        stale_probability(0.0, 3, 4, 1)
    assert order_statistic_mean(1, 1, 2.0) == 2.0
    assert order_statistic_quantile(0.5, 1, 1, 1.0) == pytest.approx(math.log(2))


# -- scatter-gather

@pytest.mark.slow
def test_scatter_gather_waits_for_the_slowest_shard():
    """A read that fans out to k = 4 shards with exponential service (mean 1 ms, no
    queueing) takes the maximum of 4 exponentials: mean H_4 x 1 ms = 2.0833 ms.

    N = 5 replications x 40 s (about 8,000 reads each); SE from the replications; 4 SE."""
    arch = (Architecture("sg", workload={"rate": 200, "requests": {"read": {}}})
            .add("db", kind="datastore", shards=4, workers=100_000, scatter_gather=True,
                 service_time={"exponential": "1ms"}))
    means = [simarch.simulate(arch, duration="40s", warmup="1s", seed=400 + s).summary().loc["all", "mean_ms"]
             for s in range(5)]
    m, se = float(np.mean(means)), float(np.std(means, ddof=1) / math.sqrt(5))
    theory = sum(1.0 / i for i in range(1, 5))
    assert abs(m - theory) <= 4 * se, f"mean {m:.4f} ms vs H_4 = {theory:.4f} ms (N = 5 x 40 s, SE {se:.4f}, 4 SE)"


def test_scatter_gather_visits_every_shard():
    arch = (Architecture("sg", workload={"rate": 100, "requests": {"read": {}}})
            .add("db", kind="datastore", shards=3, workers=1000, scatter_gather=True, service_time="1ms"))
    r = simarch.simulate(arch, duration="2s", warmup="0s", seed=1, hops=True)
    shards = r.shards()
    assert (shards["requests"] == shards["requests"].iloc[0]).all()
    assert r.summary().loc["all", "mean_ms"] == pytest.approx(1.0)
    rows = r.hops.rows
    parents = (rows[:, 1] // 4).astype(int)
    for root in r.hops.request_root[:20]:
        pools = rows[parents == root, 2].astype(int)
        assert sorted(pools.tolist()) == [0, 1, 2]  # one visit per shard, under the request


# -- bad input

ERRORS = {
    "quorum r > N": ({"replicas": 3, "quorum": {"r": 4, "w": 1}}, ("components", "db", "quorum", "r")),
    "quorum w > N": ({"replicas": 2, "quorum": {"r": 1, "w": 3}}, ("components", "db", "quorum", "w")),
    "quorum with read_from": ({"replicas": 3, "quorum": {}, "read_from": "primary"},
                              ("components", "db", "read_from")),
    "quorum with replication": ({"replicas": 3, "quorum": {}, "replication": "sync"},
                                ("components", "db", "replication")),
    "max_staleness without bounded_staleness": ({"replicas": 2, "max_staleness": "10ms"},
                                                ("components", "db", "max_staleness")),
    "bounded_staleness without max_staleness": ({"replicas": 2, "read_from": "bounded_staleness"},
                                                ("components", "db", "max_staleness")),
    "read_your_writes without sessions": ({"replicas": 2, "read_from": "read_your_writes"},
                                          ("components", "db", "read_from")),
    "quorum size word": ({"replicas": 3, "quorum": {"r": "most"}}, ("components", "db", "quorum", "r")),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_replication_mistakes_name_the_field(case):
    fields, path = ERRORS[case]
    with pytest.raises(SpecError) as err:
        _ = (Architecture("x", workload={"rate": 10, "requests": {"read": {"keys": {"uniform": 10}}}})
             .add("db", kind="datastore", service_time="1ms", **fields)).spec
    assert tuple(err.value.path[:len(path)]) == path, (err.value.path, str(err.value))


def test_a_session_needs_keys():
    with pytest.raises(SpecError) as err:
        _ = Architecture("x", workload={"rate": 10, "requests": {"read": {"session": "key"}}}).add(
            "db", kind="datastore", service_time="1ms").spec
    assert err.value.path == ("workload", "requests", "read", "session")


def test_reads_of_a_shard_with_no_copy_left_fail():
    """Every copy of the shard crashed and the failover took them out of it: a read finds no
    copy and fails (the request path hands over a failing visit, not a bare status), with
    freshness accounting on, and with regions' entry points alike."""
    arch = simarch.Architecture.from_dict({
        "name": "no-copy-left",
        "workload": {"rate": 100, "requests": {"read": {"weight": 0.9, "keys": {"uniform": 100}},
                                               "write": {"weight": 0.1, "keys": {"uniform": 100}}}},
        "components": {"db": {"kind": "datastore", "replicas": 2, "failover": "0.5s",
                              "service_time": {"exponential": "1ms"}}},
        "faults": [{"kind": "crash", "target": "db", "shard": 0, "at": "1s", "duration": "2s"}]})
    r = simarch.simulate(arch, duration="4s", warmup="0s", seed=1, progress=False)
    req = r.requests
    during = req[(req["start_s"] > 1.6) & (req["start_s"] < 2.9)]
    assert len(during) > 50 and (during["status"] != "ok").all()
    after = req[req["start_s"] > 3.1]
    assert (after["status"] == "ok").mean() > 0.9
