"""What if? Change one parameter of cached_sharded at a time and rerun with the same seed.

    python experiments/what_if.py [--duration 300s] [--warmup 60s] [--growth 6] [--out DIR]

The full-size version of notebooks/01_what_if.ipynb:

1. the baseline at today's load, its components and the static capacity report;
2. the cache cut from 20,000 to 2,000 keys;
3. the API tier halved (6 -> 3 instances), at today's load and at --growth times it;
4. two of the six API instances crashed for a third of a --fault-run window, without and
   with load-balancer health checks.

Every run uses the same seed, so the differences come from the change alone. The tables are
printed; with --out they are also written as CSV, and the figures as PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import simarch  # noqa: E402
from simarch import plots  # noqa: E402
from simarch.model.units import parse_duration  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEALTH_CHECK = {"interval": "1s", "unhealthy_after": 2, "healthy_after": 2}


def headline(result: simarch.Result) -> pd.Series:
    """The numbers a reviewer looks at first, for one run."""
    s = result.summary().loc["all"]
    c = result.components()
    return pd.Series({
        "p50 (ms)": s["p50_ms"],
        "p99 (ms)": s["p99_ms"],
        "availability": s["availability"],
        "throughput (rps)": s["throughput_rps"],
        "rejected": s["rejected"],
        "cache hit ratio": c.loc["cache", "hit_ratio"],
        "db utilisation": c.loc["db", "utilization"],
        "api utilisation": c.loc["api", "utilization"],
    })


def side_by_side(runs: dict[str, simarch.Result]) -> pd.DataFrame:
    """One column per run; with two runs, the change and the relative change as well."""
    df = pd.DataFrame({label: headline(r) for label, r in runs.items()})
    if len(runs) == 2:
        before, after = df.columns
        df["change"] = df[after] - df[before]
        df["change (%)"] = 100 * df["change"] / df[before].where(df[before] != 0)
    return df


def during(result: simarch.Result, start: float, end: float) -> pd.Series:
    """Availability, p99 and failures of the requests that arrived in [start, end)."""
    req = result.requests
    w = req[(req["start_s"] >= start) & (req["start_s"] < end)]
    ok = w["status"] == "ok"
    return pd.Series({
        "requests": len(w),
        "unsuccessful": int((~ok).sum()),
        "availability": ok.mean(),
        "p99 (ms)": w.loc[ok, "latency_ms"].quantile(0.99),
    })


class Output:
    """Prints tables and, with a folder, saves them (CSV) and figures (PNG)."""

    def __init__(self, out: Path | None):
        self.out = out
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def table(self, name: str, title: str, df: pd.DataFrame, digits: int = 4) -> None:
        print(f"\n== {title}")
        print(df.round(digits).to_string())
        if self.out is not None:
            df.to_csv(self.out / f"{name}.csv")

    def text(self, name: str, title: str, text: str) -> None:
        print(f"\n== {title}")
        print(text)
        if self.out is not None:
            (self.out / f"{name}.txt").write_text(text + "\n")

    def figure(self, name: str, fig) -> None:
        if self.out is not None:
            fig.savefig(self.out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--design", default=str(ROOT / "architectures" / "cached_sharded.yaml"),
                    help="the spec (default: architectures/cached_sharded.yaml)")
    ap.add_argument("--duration", default="300s", help="measured window of each run (default 300s)")
    ap.add_argument("--warmup", default="60s",
                    help="warm-up at 1x; the cache needs about a minute to fill (default 60s); "
                         "runs at --growth x load warm up --growth times shorter")
    ap.add_argument("--growth", type=float, default=6.0,
                    help="load multiplier of the headroom check (default 6)")
    ap.add_argument("--fault-run", default=None,
                    help="measured window of the crash runs, a third before, during and after "
                         "the crash (default: --duration)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="folder for CSV tables and PNG figures")
    args = ap.parse_args()

    duration = parse_duration(args.duration, allow_zero=False)
    warmup = parse_duration(args.warmup)
    fault_run = duration if args.fault_run is None else parse_duration(args.fault_run, allow_zero=False)
    growth = args.growth
    out = Output(args.out)

    def run(arch: simarch.Architecture, load: float = 1.0, measured: float = duration) -> simarch.Result:
        return simarch.simulate(arch, load=load, duration=measured, warmup=warmup / load, seed=args.seed)

    arch = simarch.load(args.design)
    print(f"{arch.name}: {args.duration} measured after {args.warmup} of warm-up (at 1x), seed {args.seed}")

    # 1. baseline
    base = run(arch)
    out.table("baseline_summary", "Baseline at 1x: summary", base.summary())
    out.table("baseline_components", "Baseline at 1x: components", base.components()[
        ["instances", "workers", "throughput_rps", "utilization", "mean_queue", "mean_wait_ms",
         "mean_latency_ms", "p99_latency_ms", "rejected", "hit_ratio"]])
    out.text("capacity", "Static capacity report", str(simarch.capacity_report(arch)))
    out.figure("architecture", plots.architecture(arch, result=base).figure)

    # 2. a ten times smaller cache
    small_cache = arch.with_changes({"cache.capacity": 2000})
    small = run(small_cache)
    out.table("cache_2000", "What if the cache held 2,000 keys instead of 20,000? (1x)",
              side_by_side({"cache 20,000": base, "cache 2,000": small}))
    out.table("cache_2000_headroom", "Saturation load (static), before and after", pd.DataFrame({
        label: simarch.capacity_report(a).table["saturates_at"]
        for label, a in {"cache 20,000": arch, "cache 2,000": small_cache}.items()}).loc[["api", "db"]], 2)
    out.figure("cache_2000_latency_cdf",
               plots.latency_cdf({"cache 20,000": base, "cache 2,000": small}).figure)

    # 3. half the API instances, today and under growth
    fewer_api = arch.with_changes({"api.instances": 3})
    out.text("api_3_capacity", "Static capacity report with 3 api instances",
             str(simarch.capacity_report(fewer_api)))
    g = f"{growth:g}x"
    runs = {"6 api, 1x": base, "3 api, 1x": run(fewer_api),
            f"6 api, {g}": run(arch, growth), f"3 api, {g}": run(fewer_api, growth)}
    out.table("api_3", f"What if we ran 3 api instances instead of 6? (1x and {g})", side_by_side(runs))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2), layout="constrained",
                             gridspec_kw={"width_ratios": [1.2, 1, 1]})
    plots.latency_cdf({k: runs[k] for k in (f"6 api, {g}", f"3 api, {g}")}, ax=axes[0])
    plots.utilization(runs[f"6 api, {g}"], ax=axes[1])
    plots.utilization(runs[f"3 api, {g}"], ax=axes[2])
    out.figure("api_3_latency_utilization", fig)

    # 4. two api instances crash, without and with load-balancer health checks
    start, end = warmup + fault_run / 3, warmup + 2 * fault_run / 3
    crash = {"kind": "crash", "target": "api", "instances": 2, "at": start, "duration": end - start,
             "name": "2 of 6 api instances down"}
    crashed = arch.with_changes({"faults": [crash]})
    checked = crashed.with_changes({"lb.health_check": HEALTH_CHECK})
    r_crash = run(crashed, measured=fault_run)
    r_checked = run(checked, measured=fault_run)
    out.table("api_crash", f"2 of 6 api instances down from {start:g}s to {end:g}s (requests arriving then)",
              pd.DataFrame({"no health check": during(r_crash, start, end),
                            "lb health check": during(r_checked, start, end)}))
    window = max(1.0, fault_run / 60)
    out.figure("api_crash_timeline", plots.timeline(r_crash, window=window)[0].figure)
    out.figure("api_crash_health_check_timeline", plots.timeline(r_checked, window=window)[0].figure)
    if args.out is not None:
        print(f"\ntables and figures written to {args.out}")


if __name__ == "__main__":
    main()
