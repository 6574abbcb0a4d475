"""Where the retry storm's stability boundary lies, with and without a retry budget.

``architectures/retry_storm.yaml`` (4 attempts, no backoff, an unbounded database queue) and
``architectures/retry_storm_budget.yaml`` (a retry budget, jittered backoff and a bounded
queue) meet a 3x slowdown of the database of each length in ``--durations``, in
``--replications`` independent replications; the boundary between the longest slowdown
they recover from and the shortest they do not is then bisected. The fluid model's
prediction (simarch/analysis/fluid.py) is printed beside it.

    python experiments/stability_boundary.py [--durations 0.05s,0.1s,0.2s,0.5s,1s,2s,5s,20s]
        [--replications 5] [--within 60s] [--out DIR]

At full size (the defaults) this takes a while: a run that does not recover simulates a
minute of retry storm, a few million attempts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import simarch
from simarch.analysis.fluid import fluid_boundary, retry_loop

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = [ROOT / "architectures" / "retry_storm.yaml", ROOT / "architectures" / "retry_storm_budget.yaml"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trigger", default="slow:db,factor=3")
    ap.add_argument("--durations", default="0.05s,0.1s,0.2s,0.5s,1s,2s,5s,20s")
    ap.add_argument("--replications", type=int, default=5)
    ap.add_argument("--within", default="60s")
    ap.add_argument("--baseline", default="30s")
    ap.add_argument("--warmup", default="30s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--serial", action="store_true", help="run in this process")
    ap.add_argument("--out", default=None, help="write the tables and the timeline figure here")
    args = ap.parse_args()

    for path in DESIGNS:
        loop = retry_loop(simarch.load(path))
        print(f"{path.name}: {loop.verdict()}")
        if loop.bistable:
            print(f"  fluid boundary of a 3x slowdown: {fluid_boundary(loop, factor=3):.3f} s "
                  f"(first estimate B* / (lambda - mu / F) = {loop.slowdown_boundary(3):.3f} s)")
    st = simarch.stability([str(p) for p in DESIGNS], args.trigger, durations=args.durations,
                           replications=args.replications, within=args.within, baseline=args.baseline,
                           warmup=args.warmup, seed=args.seed,
                           executor="serial" if args.serial else "processes")
    print()
    print(st)
    if args.out:
        st.save(args.out)
        print(f"\nwrote {args.out}/")


if __name__ == "__main__":
    main()
