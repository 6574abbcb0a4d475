"""The cheapest cached-sharded design that meets its SLO at 10x, and what it costs.

    python experiments/capacity_plan.py [--load 10x] [--replications 5] [--confirm 3]
                                        [--duration 120s] [--out DIR]

The full-size version of notebooks/04_capacity_plan.ipynb. The planner varies the API
tier's instances (4 to 32), the datastore's shards (1, 2, 4, 8) and the cache's capacity
(10k to 1M keys, a 1-2-5 series): 812 designs. The queueing, availability and cost models
screen all of them; the cheapest the models accept, the closest cheaper misses and the
input design are simulated (--replications runs each, common random numbers), and judged on
the bounds of their 95% intervals. It prints the plan (frontier, simulated designs, chosen
against input) and the time each step took. With --out: the plan folder (resumable: rerun
to continue an interrupted plan), frontier.png, chosen.yaml and report.html.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import simarch  # noqa: E402
from simarch.present.html import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARY = {"api.instances": "4..32", "db.shards": [1, 2, 4, 8], "cache.capacity": "10k..1M"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load", default="10x")
    ap.add_argument("--replications", type=int, default=5)
    ap.add_argument("--confirm", type=int, default=3)
    ap.add_argument("--duration", default="120s")
    ap.add_argument("--warmup", default="90s", help="the 20,000-key cache needs about a minute to fill")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    arch = simarch.load(ROOT / "architectures" / "cached_sharded.yaml")
    t0 = time.perf_counter()
    plan = simarch.plan(arch, VARY, load=args.load, replications=args.replications,
                        confirm=args.confirm, duration=args.duration, warmup=args.warmup,
                        out=args.out)
    took = time.perf_counter() - t0
    print(plan)
    s = plan.settings
    print(f"\nscreened {s['screened']} designs in {s['screen_seconds']:.1f} s "
          f"({1e3 * s['screen_seconds'] / s['screened']:.1f} ms each); {s['simulations']} "
          f"simulations; {took:.0f} s in all")
    if args.out is not None:
        fig, ax = plt.subplots(figsize=(8, 5))
        plan.plot_frontier(ax=ax)
        fig.tight_layout()
        fig.savefig(args.out / "frontier.png", dpi=110)
        write_report(args.out, args.out / "report.html")
        print(f"wrote {args.out}/ (frontier.png, chosen.yaml, report.html)")


if __name__ == "__main__":
    main()
