"""Two datastore archetypes under one read-heavy workload: PostgreSQL with two read replicas
(model: primary_replica) against Cassandra at QUORUM (model: leaderless_quorum).

    python experiments/datastore_archetypes.py [--replications 3] [--duration 60s]

For each design and each scenario (no fault; the primary of shard 0 crashes; a replica of
shard 0 crashes), it runs independent replications (seeds 1, 2, ...) and prints the mean and
the standard error over them of: the p99 (ms), the share of stale reads, the availability
over the whole window, and the availability while the node is down. A crashed node stays
down for --outage from 10 s into the measured window.

The presets are typical starting points, not benchmarks (docs/background/datastore-archetypes.md);
the point is the mechanism: a primary's crash stops writes until the failover (30 s here),
while a quorum of 2 of 3 copies keeps answering with one copy down.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import simarch
from simarch.model.units import parse_duration

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = {
    "primary_replica": ROOT / "architectures" / "store_primary_replica.yaml",
    "leaderless_quorum": ROOT / "architectures" / "store_leaderless_quorum.yaml",
}
SCENARIOS = {
    "no fault": None,
    "primary dies": 0,   # replica 0 of shard 0: the primary at the start of the run
    "replica dies": 1,   # replica 1 of shard 0: a read replica (for the quorum, one more node)
}
WARMUP = 10.0


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def run_one(path: Path, replica: int | None, seed: int, duration: float, outage: float) -> dict[str, float]:
    """One replication: p99, stale-read share, availability over the window and while the
    node is down."""
    arch = simarch.load(path)
    at = WARMUP + 10.0
    if replica is not None:
        arch = arch.with_changes({"faults": [{"kind": "crash", "target": "db", "shard": 0,
                                              "replica": replica, "at": at, "duration": outage}]})
    r = simarch.simulate(arch, duration=duration, warmup=WARMUP, seed=seed, progress=False)
    s = r.summary().loc["all"]
    req = r.requests
    down = req[(req["start_s"] >= at) & (req["start_s"] < at + outage)]
    ok = float((down["status"] == "ok").mean()) if len(down) else math.nan
    return {"p99_ms": float(s["p99_ms"]),
            "stale_reads": float(s.get("stale_reads", 0.0)),
            "availability": float(s["availability"]),
            "availability_down": ok if replica is not None else math.nan}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=3, help="independent runs per cell (seeds 1..N)")
    ap.add_argument("--duration", default="60s", help="measured window after a 10 s warm-up")
    ap.add_argument("--outage", default="40s", help="how long the crashed node stays down")
    args = ap.parse_args()
    duration, outage = parse_duration(args.duration), parse_duration(args.outage)
    print(f"{args.replications} replications x {duration:g} s per cell; mean (standard error)")
    header = f"{'model':<18} {'scenario':<13} {'p99 ms':>14} {'stale reads':>16} {'availability':>18} {'while down':>18}"
    print(header)
    print("-" * len(header))
    for model, path in DESIGNS.items():
        for scenario, replica in SCENARIOS.items():
            rows = [run_one(path, replica, seed, duration, outage) for seed in range(1, args.replications + 1)]
            cells = []
            for key, fmt in (("p99_ms", "{:.2f}"), ("stale_reads", "{:.3%}"), ("availability", "{:.4%}"),
                             ("availability_down", "{:.4%}")):
                m, se = _mean_se([row[key] for row in rows])
                cells.append("-" if math.isnan(m) else f"{fmt.format(m)} ({fmt.format(se) if se == se else '-'})")
            print(f"{model:<18} {scenario:<13} {cells[0]:>14} {cells[1]:>16} {cells[2]:>18} {cells[3]:>18}")


if __name__ == "__main__":
    main()
