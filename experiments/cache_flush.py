"""A cache flush under load: every read goes to a database sized for the miss traffic.

    python experiments/cache_flush.py [--duration 90s]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import simarch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", default="90s", help="measured window after a 60 s warm-up")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    arch = simarch.load(ROOT / "architectures/cache_flush.yaml")
    r = simarch.simulate(arch, duration=args.duration, warmup="60s", seed=args.seed)
    ts = r.timeseries("5s")
    print(ts[["start_s", "throughput_rps", "availability", "p99_ms", "timeout", "rejected",
              "faults"]].to_string(index=False))
    print()
    print(r.components()[["throughput_rps", "utilization", "hit_ratio", "rejected"]].to_string())


if __name__ == "__main__":
    main()
