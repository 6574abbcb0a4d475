"""Draw the README figure: the cached-sharded design and its p99 latency as load grows.

    python experiments/readme_figure.py [--out docs/img/cached_sharded.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

import simarch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs/img/cached_sharded.png"))
    ap.add_argument("--duration", default="30s")
    args = ap.parse_args()

    arch = simarch.load(ROOT / "architectures/cached_sharded.yaml")
    loads = [1, 2, 4, 6, 8, 9, 10, 11, 12]
    rows = []
    for x in loads:
        r = simarch.simulate(arch, load=x, duration=args.duration, warmup="10s", seed=1)
        s = r.summary().loc["all"]
        c = r.components()
        rows.append((x, s["p50_ms"], s["p99_ms"], s["availability"], c["utilization"].to_dict()))

    fig, (ax_g, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    g = arch.graph
    pos = {"lb": (0, 0), "api": (1, 0), "cache": (2, 0.6), "db": (2, -0.6)}
    util = rows[0][4]
    colors = [plt.cm.RdYlGn_r(min(util.get(n, 0) or 0, 1.0)) for n in g.nodes]
    nx.draw_networkx(g, pos, ax=ax_g, node_color=colors, node_size=2200, font_size=10,
                     edgecolors="black", arrowsize=18)
    for (u, v), lab in {("cache", "db"): "on miss", ("api", "db"): "writes", ("api", "cache"): "reads"}.items():
        x = (pos[u][0] + pos[v][0]) / 2
        y = (pos[u][1] + pos[v][1]) / 2
        ax_g.annotate(lab, (x, y), fontsize=8, ha="center", va="bottom", color="dimgray")
    ax_g.set_title("architectures/cached_sharded.yaml")
    ax_g.axis("off")
    ax_g.margins(0.2)

    ax_l.plot(loads, [r[2] for r in rows], "o-", label="p99")
    ax_l.plot(loads, [r[1] for r in rows], "s--", label="p50")
    ax_l.axhline(50, color="crimson", lw=1, ls=":", label="SLO p99 50 ms")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("load multiplier (1x = 1200 req/s)")
    ax_l.set_ylabel("latency of successful requests (ms)")
    ax_l.set_title("Latency as load grows (one run per load)")
    ax_l.legend()
    ax_l.grid(alpha=0.3, which="both")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    for x, p50, p99, av, _ in rows:
        print(f"{x:>4}x  p50 {p50:8.2f} ms  p99 {p99:9.2f} ms  availability {av:.4%}")


if __name__ == "__main__":
    main()
