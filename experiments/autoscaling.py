"""An autoscaled API under a diurnal day against the same API at fixed sizes.

    python experiments/autoscaling.py [--replications 3] [--duration 1h] [--out DIR]

The full-size run of architectures/autoscaled_diurnal.yaml: a day whose peak is 10x its
trough, compressed into one hour. Three designs carry the same traffic:

* autoscaled: the example as it is (target tracking at 60% utilisation, 2 to 12 instances,
  provisioning delays and cold starts);
* fixed at the peak: the instances the peak needs at the same utilisation target;
* fixed at the mean: the instances the day's mean rate needs.

For each, over --replications runs (seeds 1..R, the same for every design): the p99 and
availability of the whole day, the p99 of the busiest hour-tenth, the instance-hours of the
API and the cost of the run (instance-hours x hourly prices, plus the fixed components).
Prints a table; with --out writes it as CSV and the autoscaled run's timeline as PNG.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

import simarch  # noqa: E402
from simarch import plots  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def designs() -> dict[str, simarch.Architecture]:
    auto = simarch.load(ROOT / "architectures" / "autoscaled_diurnal.yaml")
    spec = auto.spec
    api = spec.components["api"]
    wl = spec.workload
    per_instance = api.workers / api.service_time.lookup("default", None).mean  # requests/s at 100%
    at_target = per_instance * api.autoscale.target
    peak = wl.rate * (1 + wl.profile.diurnal.amplitude)
    sizes = {"fixed at peak": math.ceil(peak / at_target), "fixed at mean": math.ceil(wl.rate / at_target)}
    out = {"autoscaled": auto}
    for name, n in sizes.items():
        out[f"{name} ({n})"] = auto.with_changes({"components.api.autoscale": None, "components.api.instances": n})
    return out


def row(name: str, r: simarch.Result) -> dict:
    s = r.summary().loc["all"]
    ts = r.timeseries(f"{r.duration / 10:g}s")
    api = r.components().loc["api"]
    hours = api["instance_hours"] if "instance_hours" in api and api["instance_hours"] == api["instance_hours"] \
        else api["instances"] * r.duration / 3600
    return {"design": name, "p99_ms": s["p99_ms"], "busiest_p99_ms": ts["p99_ms"].max(),
            "availability": s["availability"], "api_instance_hours": hours,
            "mean_instances": api["instances"], "cost_usd": r.run_cost_usd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=3, help="runs per design (default 3)")
    ap.add_argument("--duration", default=None, help="measured window (default: the spec's, one compressed day)")
    ap.add_argument("--warmup", default=None, help="warm-up (default: the spec's)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the table and the timeline")
    args = ap.parse_args()
    rows = []
    for name, arch in designs().items():
        for seed in range(1, args.replications + 1):
            r = simarch.simulate(arch, duration=args.duration, warmup=args.warmup, seed=seed, hops=False,
                                 progress=False)
            rows.append(row(name, r))
            if args.out is not None and name == "autoscaled" and seed == 1:
                args.out.mkdir(parents=True, exist_ok=True)
                axes = plots.timeline(r, None)
                axes[0].figure.savefig(args.out / "autoscaled_timeline.png", dpi=110)
    df = pd.DataFrame(rows).groupby("design", sort=False).mean()
    print(f"{args.replications} replication(s) per design, one compressed day each")
    print(df.to_string(float_format=lambda v: f"{v:,.4g}"))
    if args.out is not None:
        df.to_csv(args.out / "autoscaling.csv")


if __name__ == "__main__":
    main()
