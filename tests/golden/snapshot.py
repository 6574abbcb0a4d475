"""Golden snapshots: the complete result of every example design at a fixed seed.

Every number a :class:`~simarch.Result` exposes (summary per class, components, instances,
shards, time series, calls, events, faults, the SLO verdict, warnings, Little's law) and a
SHA-256 of the raw request records is written as JSON, one file per design, under
``tests/golden/``. ``tests/test_golden.py`` re-runs each design and asserts that the text is
identical, so a refactor that changes any number, even in the last bit, fails.

Regenerate (only on purpose, in a commit of its own that says why)::

    .venv/bin/python tests/golden/snapshot.py            # all designs
    .venv/bin/python tests/golden/snapshot.py cache_flush  # one
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
SPECS = sorted((ROOT / "architectures").glob("*.yaml")) + sorted((GOLDEN / "specs").glob("*.yaml"))
SEED = 7
# short runs that still cover each design's faults (fault times count from t = 0)
RUNS: dict[str, dict[str, Any]] = {
    "cache_flush": {"warmup": "20s", "duration": "80s"},
    "cached_sharded": {"warmup": "10s", "duration": "20s"},
    "retry_storm": {"warmup": "50s", "duration": "25s"},
    "retry_storm_budget": {"warmup": "50s", "duration": "25s"},
    "rolling_deploy": {"warmup": "30s", "duration": "140s"},  # its deployment: 60 s to ~162 s
    "two_regions": {"warmup": "30s", "duration": "600s"},  # us-east-1 down 200-500 s, back at ~620 s
}
DEFAULT_RUN = {"warmup": None, "duration": "20s"}  # None: the spec's own warm-up


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return repr(f) if (math.isnan(f) or math.isinf(f)) else f
    if v is None or isinstance(v, str):
        return v
    if hasattr(v, "item"):
        return _plain(v.item())
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _frame(df) -> Any:
    if df is None:
        return None
    df = df.reset_index() if df.index.name is not None else df
    return {"columns": [str(c) for c in df.columns],
            "rows": [_plain(list(r)) for r in df.itertuples(index=False, name=None)]}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def snapshot(result) -> dict[str, Any]:
    """Every number of a result, as plain JSON values."""
    out = {
        "summary": _frame(result.summary()),
        "components": _frame(result.components()),
        "instances": _frame(result.instances()),
        "shards": _frame(result.shards()),
        "timeseries": _frame(result.timeseries("5s")),
        "calls": _frame(result.calls()),
        "events": _frame(result.events()),
        "faults": _frame(result.faults()),
        "slo": _frame(result.slo()),
        "stable": bool(result.stable),
        "warnings": list(result.all_warnings()),
        "littles_law": _plain(result.littles_law()),
        "records": {
            "n": int(len(result.start)),
            "sha256": _digest(result.start.astype(np.float64), result.end.astype(np.float64),
                              result.cls.astype(np.int64), result.status.astype(np.int64)),
        },
    }
    if result.deployment_runs:  # designs with deployments only: the other snapshots stay as they were
        out["deployments"] = _frame(result.deployments())
        out["deployment_log"] = _frame(result.deployment_log())
    return out


def run(spec: Path):
    import simarch

    if spec.parent == GOLDEN / "specs":
        opts = {"warmup": None, "duration": None}  # coverage designs: their own simulation section
    else:
        opts = RUNS.get(spec.stem, DEFAULT_RUN)
    return simarch.simulate(str(spec), load=1.0, duration=opts["duration"], warmup=opts["warmup"],
                            seed=SEED)


def path_for(spec: Path) -> Path:
    return GOLDEN / f"{spec.stem}.json"


def render(spec: Path) -> str:
    return json.dumps(snapshot(run(spec)), indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> None:
    wanted = set(argv)
    for spec in SPECS:
        if wanted and spec.stem not in wanted:
            continue
        path_for(spec).write_text(render(spec))
        print(f"wrote {path_for(spec).relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
