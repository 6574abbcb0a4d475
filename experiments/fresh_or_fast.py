"""Fresh against fast: how much freshness each step of a read path costs, and buys.

    python experiments/fresh_or_fast.py [--replications 3] [--duration 60s]

Runs architectures/fresh_or_fast.yaml (reads through a cache with a 30 s TTL, no
invalidation, in front of a primary with two async replicas) and four variants:

- ``ttl 1s``: the same cache-aside with a 1 s TTL;
- ``invalidate``: writes go through the cache, which deletes the key when the store has the
  write (``write_policy: write_around``); a miss right after may still read a lagging
  replica and cache what it returns, so a little staleness is left;
- ``invalidate + primary``: the same, and every read from the primary (``read_from:
  primary``), so a refill can no longer read an old value;
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

WRITES_THROUGH_CACHE = {
    "calls": [
        {"from": "api", "to": "cache", "timeout": "200ms"},
        {"from": "cache", "to": "db", "on": "miss"},
    ],
    "cache.write_policy": "write_around",
}


def variants(arch: simarch.Architecture) -> dict[str, simarch.Architecture]:
    """The design and its four variants, by name."""
    return {
        "ttl 30s": arch,
        "ttl 1s": arch.with_changes({"cache.ttl": "1s"}),
        "invalidate": arch.with_changes(WRITES_THROUGH_CACHE),
        "invalidate + primary": arch.with_changes({**WRITES_THROUGH_CACHE, "db.read_from": "primary"}),
        "no cache, primary": arch.with_changes({
            "components": {"api": arch.to_dict()["components"]["api"],
                           "db": {**arch.to_dict()["components"]["db"], "read_from": "primary"}},
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
