"""Two designs under growing load: single_server against scaled_service, 1x to 10x.

    python experiments/compare_under_10x.py [--duration 300s] [--replications 10] [--out DIR]

The full-size version of notebooks/02_compare_under_10x.ipynb. Both designs carry the same
traffic (the single server's workload at --rate requests per second at 1x) and are held to
the same SLO (the single server's). Every design and load is run --replications times with
common random numbers (replication r uses the same seed for both designs and every load);
the report gives means with t-intervals, the paired differences against single_server with
their intervals, and the knee (the highest load multiplier that still meets the SLO) of each
design with its interval. With --out: the comparison (Parquet, via Comparison.save), the
tables as CSV and the two figures (p50/p99 against load, availability against load) as PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import simarch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def designs(rate: float) -> list[simarch.Architecture]:
    """single_server at ``rate`` requests per second, and scaled_service on the same traffic
    and SLO."""
    single = simarch.load(ROOT / "architectures" / "single_server.yaml").with_changes({"workload.rate": rate})
    shared = single.to_dict()
    scaled = simarch.load(ROOT / "architectures" / "scaled_service.yaml").with_changes(
        {"workload": shared["workload"], "slo": shared["slo"]})
    return [single, scaled]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="300s", help="measured window of each run (default 300s)")
    ap.add_argument("--warmup", default="30s", help="warm-up of each run (default 30s)")
    ap.add_argument("--replications", type=int, default=10, help="runs per design and load (default 10)")
    ap.add_argument("--loads", default="1,2,3,5,7,10", help="load multipliers (default 1,2,3,5,7,10)")
    ap.add_argument("--rate", type=float, default=300.0,
                    help="requests per second at 1x, shared by both designs (default 300)")
    ap.add_argument("--knee-steps", type=int, default=5, help="bisection steps of the knee search (default 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--executor", default="processes",
                    help="serial, processes (default), local (Dask) or tcp://scheduler:port")
    ap.add_argument("--workers", type=int, default=None, help="processes or Dask workers (default: all cores)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--out", type=Path, default=None, help="folder for the tables and figures")
    args = ap.parse_args()

    loads = [float(x) for x in args.loads.split(",") if x.strip()]
    archs = designs(args.rate)
    print(f"{' vs '.join(a.name for a in archs)} at {args.rate:g} req/s x {args.loads}; "
          f"{args.replications} replications of {args.duration} after {args.warmup} of warm-up")
    cmp = simarch.compare(archs, loads=loads, replications=args.replications, seed=args.seed,
                          duration=args.duration, warmup=args.warmup, knee_steps=args.knee_steps,
                          executor=args.executor, workers=args.workers, progress=not args.no_progress)
    print()
    print(cmp)

    tables = {
        "p50_ms": cmp.metric("p50_ms"),
        "p99_ms": cmp.metric("p99_ms"),
        "availability": cmp.metric("availability"),
        "slo": cmp.slo.pivot(index="load", columns="design", values=["slo_met", "met_share"]),
        "diff": cmp.diff[cmp.diff.metric.isin(["p50_ms", "p99_ms", "throughput_rps", "availability"])]
        .set_index(["load", "metric"]).sort_index(),
        "knee": cmp.knee.set_index("design"),
    }
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        for name in ("p99_ms", "availability", "knee"):
            print(f"\n== {name}")
            print(tables[name].round(4).to_string())

    if args.out is not None:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        cmp.save(out / "comparison")
        for name, df in tables.items():
            df.to_csv(out / f"{name}.csv")
        (out / "report.txt").write_text(str(cmp) + "\n")
        fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), layout="constrained")
        cmp.plot_latency(["p99_ms", "p50_ms"], ax=axes[0])
        cmp.plot_availability(ax=axes[1])
        fig.savefig(out / "latency_availability_vs_load.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        print(f"\ntables and figures written to {out}")


if __name__ == "__main__":
    main()
