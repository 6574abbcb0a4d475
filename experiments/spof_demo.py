"""Single points of failure: the single-instance design against its redundant version.

    python experiments/spof_demo.py [--window 30s]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import simarch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--window", default="30s", help="how long each component or zone is down")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for name in ("spof_single.yaml", "spof_redundant.yaml"):
        rep = simarch.spof(simarch.load(ROOT / "architectures" / name), window=args.window, seed=args.seed)
        print(rep)
        print()


if __name__ == "__main__":
    main()
