"""A metastable failure and its fix.

``architectures/retry_storm.yaml``: a database slowdown of 5 s makes calls time out; every
timed-out call is retried at once while the database keeps working on the abandoned ones.
Goodput collapses and stays at zero long after the slowdown is over.

``architectures/retry_storm_budget.yaml``: the same design with a retry budget, jittered
backoff and a bounded database queue (load shedding): it recovers within seconds.

    python experiments/retry_storm.py [--duration 150s] [--plot out.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import simarch

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = ["retry_storm.yaml", "retry_storm_budget.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="150s", help="measured window after a 30 s warm-up")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plot", default=None, help="write a goodput/availability timeline PNG here")
    args = ap.parse_args()

    timelines = {}
    for name in DESIGNS:
        arch = simarch.load(ROOT / "architectures" / name)
        r = simarch.simulate(arch, duration=args.duration, warmup="30s", seed=args.seed)
        ts = r.timeseries("5s")
        timelines[arch.name] = ts
        after = ts[ts.start_s >= 90]  # 25 s after the slowdown ended
        db = r.components().loc["db"]
        print(f"\n== {arch.name}")
        print(ts[["start_s", "throughput_rps", "availability", "p99_ms", "timeout", "rejected",
                  "faults"]].to_string(index=False))
        print(f"db offered {db.offered_rps:.0f} req/s, received {db.received_rps:.0f} req/s "
              f"(amplification {db.amplification:.2f}x)")
        print(f"goodput from t=90s on: {after.throughput_rps.mean():.0f} req/s, "
              f"availability {after.availability.mean():.2%}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 3.8))
        for label, ts in timelines.items():
            ax.plot(ts.start_s, ts.throughput_rps, drawstyle="steps-post", label=label)
        ax.axvspan(60, 65, color="crimson", alpha=0.15, label="db slowed 3x")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("goodput (successful req/s)")
        ax.set_title("A 5 s slowdown: retry storm vs retry budget + load shedding")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
