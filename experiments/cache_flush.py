"""A cache flush under load: every read goes to a database sized for the miss traffic.

    python experiments/cache_flush.py [--duration 90s]
    python experiments/cache_flush.py --herd     # the herd after the flush, with and without coalescing

``--herd`` runs a variant with a slow store (100 ms a query) and a hot key set (zipf 1.1),
once as it is and once with ``coalesce: true`` on the cache (single flight: one fetch per key
in flight), and prints per second after the flush the store's arrivals (from the hop
records) and the end-to-end availability, then the cache's fetches, coalesced misses and
peak of fetches in flight.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import simarch

ROOT = Path(__file__).resolve().parents[1]

# the herd variant of architectures/cache_flush.yaml: a slow store and hot keys, where misses
# of one key overlap while its fetch is in flight
HERD = {
    "workload.requests.read.keys": {"zipf": 1.1, "n": 100000},
    "api.workers": 256,
    "cache.capacity": 20000,
    "db.workers": 32,
    "db.queue": 400,
    "db.service_time": {"exponential": "100ms"},
}


def store_arrivals(r: simarch.Result, store: str, t0: float, t1: float, step: float = 1.0) -> np.ndarray:
    """Visits reaching ``store`` per ``step`` seconds in [t0, t1), from the hop records."""
    h = r.hops
    assert h is not None
    visits = (h.kind() == 0) & (h.component_of() == h.components.index(store))
    counts, _ = np.histogram(h.rows[visits, 3], bins=np.arange(t0, t1 + step / 2, step))
    return counts * h.every / step


def herd(seed: int) -> None:
    base = simarch.load(ROOT / "architectures/cache_flush.yaml").with_changes(HERD)
    flush = 90.0
    for coalesce in (False, True):
        arch = base.with_changes({"cache.coalesce": coalesce})
        r = simarch.simulate(arch, duration="40s", warmup="60s", seed=seed, hops=True, progress=False)
        rate = store_arrivals(r, "db", flush - 2, flush + 8)
        ts = r.timeseries("1s")
        avail = ts.set_index("start_s")["availability"].reindex(np.arange(flush - 2, flush + 8)).to_numpy()
        print(f"coalesce: {str(coalesce).lower()}")
        print("  t - flush (s)      " + " ".join(f"{t:>6.0f}" for t in np.arange(-2, 8)))
        print("  store arrivals/s   " + " ".join(f"{x:>6.0f}" for x in rate))
        print("  availability       " + " ".join(f"{x:>6.1%}" for x in avail))
        c = r.components()
        cols = ["received_rps", "max_queue", "hit_ratio"] + (["fetches", "coalesced", "peak_fetches"]
                                                             if coalesce else [])
        print(c.loc[["cache", "db"], cols].to_string())
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", default="90s", help="measured window after a 60 s warm-up")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--herd", action="store_true", help="the herd after the flush, with and without coalescing")
    args = ap.parse_args()
    if args.herd:
        herd(args.seed)
        return
    arch = simarch.load(ROOT / "architectures/cache_flush.yaml")
    r = simarch.simulate(arch, duration=args.duration, warmup="60s", seed=args.seed)
    ts = r.timeseries("5s")
    print(ts[["start_s", "throughput_rps", "availability", "p99_ms", "timeout", "rejected",
              "faults"]].to_string(index=False))
    print()
    print(r.components()[["throughput_rps", "utilization", "hit_ratio", "rejected"]].to_string())


if __name__ == "__main__":
    main()
