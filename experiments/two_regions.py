"""Two regions: latency per user region, and the availability through a region failure,
with and without the second region.

    python experiments/two_regions.py [--replications 3] [--duration 900s]

Runs architectures/two_regions.yaml (users half in us-east-1 and half in eu-west-1, a load
balancer and API instances in each region, the database's primary in us-east-1 with an
asynchronous replica in eu-west-1, us-east-1 lost for 300 s) and the same design in
us-east-1 only (every component and every user there). For each, over --replications runs
(seeds 1..R): per user region the requests, availability and latency percentiles, and the
availability of the requests that arrived while us-east-1 was down.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pandas as pd

import simarch

ROOT = Path(__file__).resolve().parents[1]


def designs() -> dict[str, simarch.Architecture]:
    two = simarch.load(ROOT / "architectures" / "two_regions.yaml")
    one = copy.deepcopy(two.to_dict())
    one["name"] = "one-region"
    one["workload"]["regions"] = {"us-east-1": 1.0}
    for comp in one["components"].values():
        comp["region"] = "us-east-1"
    return {"two regions": two, "us-east-1 only": simarch.Architecture.from_dict(one)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=3)
    ap.add_argument("--duration", default="900s")
    args = ap.parse_args()
    rows, per_region = [], []
    for label, arch in designs().items():
        fault = arch.spec.faults[0]
        for seed in range(1, args.replications + 1):
            r = simarch.simulate(arch, duration=args.duration, seed=seed, progress=False)
            during = (r.start >= fault.at) & (r.start < fault.end)
            rows.append({"design": label, "seed": seed,
                         "availability": float((r.status == 0).mean()),
                         "availability_during_failure": float((r.status[during] == 0).mean()),
                         "cross_region_calls": r.cross_region_share})
            reg = r.regions().reset_index()
            reg.insert(0, "design", label)
            per_region.append(reg)
    print("Latency per user region (mean over the replications)")
    reg = pd.concat(per_region).groupby(["design", "region"], sort=False).mean(numeric_only=True)
    print(reg.round(4).to_string())
    print()
    print("Availability through the region failure (mean over the replications)")
    print(pd.DataFrame(rows).groupby("design", sort=False).mean(numeric_only=True).drop(columns="seed")
          .round(4).to_string())


if __name__ == "__main__":
    main()
