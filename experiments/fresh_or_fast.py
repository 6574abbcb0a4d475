"""Fresh against fast: how much freshness each step of a read path costs, and buys.

    python experiments/fresh_or_fast.py [--replications 3] [--duration 60s]

Runs architectures/fresh_or_fast.yaml (reads and writes through a cache that writes
invalidate, with a 30 s TTL as a safety net, in front of a primary with two async replicas)
and four variants:

- ``ttl 30s, no invalidation``: cache-aside, writes go to the store only; an entry keeps its
  value until its TTL ends;
- ``ttl 1s, no invalidation``: the same with a 1 s TTL;
- ``invalidate + primary``: the design, and every read from the primary (``read_from:
  primary``), so a refill right after an invalidation can no longer read a lagging replica;
- ``no cache, primary``: every read from the primary.

For each it prints the mean over independent replications (seeds 1..N) of the read p99, the
stale share of reads, the read-your-writes violations per 1,000 reads (a user reading their own
profile), the primary's utilisation and the cache's hit ratio, with the standard error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import simarch

ROOT = Path(__file__).resolve().parents[1]

WRITES_AROUND_CACHE = {
    "calls": [
        {"from": "api", "to": "cache", "requests": ["read"], "timeout": "200ms"},
        {"from": "cache", "to": "db", "on": "miss"},
        {"from": "api", "to": "db", "requests": ["write"], "timeout": "200ms"},
    ],
    "cache.write_policy": None,
}


def variants(arch: simarch.Architecture) -> dict[str, simarch.Architecture]:
    """The design and its four variants, by name."""
    spec = arch.to_dict()
    return {
        "invalidate (the design)": arch,
        "ttl 30s, no invalidation": arch.with_changes(WRITES_AROUND_CACHE),
        "ttl 1s, no invalidation": arch.with_changes({**WRITES_AROUND_CACHE, "cache.ttl": "1s"}),
        "invalidate + primary": arch.with_changes({"db.read_from": "primary"}),
        "no cache, primary": arch.with_changes({
            "components": {"api": spec["components"]["api"],
                           "db": {**spec["components"]["db"], "read_from": "primary"}},
            "calls": [{"from": "api", "to": "db", "timeout": "200ms"}]}),
    }


def figures(r: simarch.Result) -> dict[str, float]:
    """The figures of one run."""
    s = r.summary()
    fr = r.freshness().set_index(["component", "class"])
    front = "cache" if ("cache", "read") in fr.index else "db"
    row = fr.loc[(front, "read")]
    primary = r.instances().set_index("instance").loc["db.shard0.replica0", "utilization"]
    comps = r.components()
    return {
        "read p99 ms": float(s.loc["read", "p99_ms"]),
        "stale reads": float(s.loc["read", "stale_reads"]),
        "RYW per 1k reads": 1e3 * float(row["read_your_writes_violations"]) / float(row["reads"]),
        "primary util": float(primary),
        "hit ratio": float(comps.loc["cache", "hit_ratio"]) if "cache" in comps.index else float("nan"),
    }


def table(duration: str = "60s", replications: int = 3) -> pd.DataFrame:
    """Mean and standard error per variant and figure, over ``replications`` runs."""
    arch = simarch.load(ROOT / "architectures" / "fresh_or_fast.yaml")
    rows = []
    for name, a in variants(arch).items():
        runs = pd.DataFrame([figures(simarch.simulate(a, duration=duration, seed=seed, progress=False))
                             for seed in range(1, replications + 1)])
        for col in runs:
            x = runs[col].to_numpy(dtype=float)
            se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
            rows.append({"variant": name, "figure": col, "mean": float(x.mean()), "se": se})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replications", type=int, default=3, help="independent runs per variant (seeds 1..N)")
    ap.add_argument("--duration", default="60s", help="measured window after the spec's warm-up")
    args = ap.parse_args()
    t = table(args.duration, args.replications)
    print(f"{args.replications} replications x {args.duration} per variant; mean (standard error)")
    wide = t.pivot(index="variant", columns="figure", values="mean").reindex(t["variant"].unique())
    se = t.pivot(index="variant", columns="figure", values="se").reindex(wide.index)
    fmt = {"read p99 ms": "{:.2f}", "stale reads": "{:.2%}", "RYW per 1k reads": "{:.1f}",
           "primary util": "{:.1%}", "hit ratio": "{:.1%}"}
    out = pd.DataFrame({c: [f"{fmt[c].format(m)} ({fmt[c].format(s)})" if m == m else "-"
                            for m, s in zip(wide[c], se[c], strict=True)] for c in fmt}, index=wide.index)
    print(out.to_string())


if __name__ == "__main__":
    main()
