"""Factorial parameter sweeps, saved as a Parquet dataset that an interrupted sweep resumes.

Every finished point (one combination of parameters, one load, one replication) is written
at once as its own Parquet file in the dataset folder (write to a temporary file, then
rename), so nothing finished is lost and a rerun skips what is there. A point that errors is
recorded with its error and the sweep goes on. Each row carries the resolved parameters, the
load, the seed and replication, a hash of the resolved spec and the simarch version.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from .._version import __version__
from ..errors import SpecError, argument, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.spec import yaml_load
from ..model.units import parse_duration
from .experiment import Task, check_runs, parse_loads, positive_int, run_tasks


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short, stable hash of a spec mapping (sorted-key JSON, SHA-256)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_set(option: str) -> tuple[str, list[Any]]:
    """``"api.instances=2,4,8"`` -> ``("api.instances", [2, 4, 8])`` (values read as YAML)."""
    path, eq, values = option.partition("=")
    if not eq or not path.strip() or not values.strip():
        raise SpecError(f"expected PATH=V1,V2,... (e.g. api.instances=2,4,8), got {excerpt(option)}", ("--set",))
    try:
        return path.strip(), [yaml_load(v.strip()) for v in values.split(",")]
    except SpecError as e:
        raise SpecError(f"{path.strip()}: {e.message}", ("--set",)) from None


def _point_id(h: str, load: float, replication: int, seed: int, duration: float | None,
              warmup: float | None) -> str:
    key = f"{h}|{load!r}|{replication}|{seed}|{duration!r}|{warmup!r}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


MANIFEST = "_simarch.json"  # beside the parts; the leading '_' keeps it out of a Parquet dataset
LOCK = ".simarch.lock"


def _parts(d: Path) -> tuple[list[pd.DataFrame], list[Path]]:
    """The readable part files of a sweep folder, and the unreadable ones (a write cut short)."""
    good, bad = [], []
    for f in sorted(d.glob("part-*.parquet")) if d.exists() else []:
        try:
            good.append(pq.read_table(f).to_pandas())
        except (OSError, ValueError, pa.ArrowException):
            bad.append(f)
    return good, bad


def read_dataset(directory: str | Path) -> pd.DataFrame:
    """Every row of a sweep dataset (an empty frame if there is none yet). The folder is also
    a plain Parquet dataset: ``pd.read_parquet(directory)`` reads the same rows. Unreadable
    part files are left out with a warning that names them."""
    good, bad = _parts(Path(directory))
    for f in bad:
        warnings.warn(f"sweep part {f} is unreadable (a write cut short?) and was left out",
                      stacklevel=2)
    return pd.concat(good, ignore_index=True) if good else pd.DataFrame()


def _write_row(directory: Path, row: dict[str, Any]) -> None:
    path = directory / f"part-{row['point_id']}.parquet"
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    table = pa.Table.from_pylist([{k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                                   for k, v in row.items()}])
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def lock_folder(out: Path, what: str) -> FileLock:
    """Create the folder of a study and hold its lock (released by the caller), or refuse
    with a :class:`SpecError` on ``--out`` when it is a file or another study holds it."""
    if out.exists() and not out.is_dir():
        raise SpecError(f"'{out}' is a file, not a folder for the {what}", ("--out",))
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SpecError(f"another {what} is writing to '{out}' right now; wait for it, or choose "
                        "another --out", ("--out",)) from None
    return lock


def sweep(
    design: Architecture | str | Path | dict,
    params: Mapping[str, Sequence[Any]],
    out: str | Path,
    *,
    loads: Sequence[float | str] = (1,),
    replications: int = 1,
    seed: int = 1,
    duration: str | float | None = None,
    warmup: str | float | None = None,
    executor: str | Any = "processes",
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the full factorial of ``params`` (dotted paths, e.g. ``{"api.instances": [2, 4]}``)
    at every load, append every point to the dataset in ``out`` and return the whole dataset.

    Points already in ``out`` are skipped, so an interrupted sweep picks up where it stopped.
    """
    arch = load_arch(design)
    if not isinstance(params, Mapping) or not params:
        raise SpecError(f"params map dotted paths to lists of values, got {excerpt(params)}", ("params",))
    for path, values in params.items():
        if not isinstance(path, str) or not path:
            raise SpecError(f"a parameter is a dotted path such as 'api.workers', got {excerpt(path)}",
                            ("params",))
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"give a non-empty list of values, got {excerpt(values)}", ("params", path))
    mults = parse_loads(loads)
    replications = positive_int(replications, "replications")
    with argument("duration"):
        dur = None if duration is None else parse_duration(duration, allow_zero=False)
    with argument("warmup"):
        warm = None if warmup is None else parse_duration(warmup)
    out = Path(out)
    lock = lock_folder(out, "sweep")
    try:
        return _sweep_locked(arch, params, out, mults, replications, seed, dur, warm, executor,
                             workers, progress)
    finally:
        lock.release()


def _sweep_locked(arch, params, out: Path, mults, replications, seed, dur, warm, executor, workers,
                  progress) -> pd.DataFrame:
    names = list(params)
    check_runs(math.prod(len(v) for v in params.values()) * len(mults) * replications, "sweep")
    for manifest in (out / MANIFEST, out / "simarch.json"):  # (simarch.json: older sweeps, runs)
        if not manifest.exists():
            continue
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("type") != "sweep" or old.get("design") != arch.name or \
                sorted(old.get("params", {})) != sorted(names):
            what = (f"a sweep of design {excerpt(old.get('design'))} over "
                    f"{', '.join(sorted(old.get('params', {}))) or 'no parameters'}"
                    if old.get("type") == "sweep" else f"the results of a {old.get('type', 'other study')}")
            raise SpecError(f"holds {what}: resume a sweep with the same design and parameters, or "
                            "choose another --out", (), str(out))

    tasks: list[Task] = []
    invalid: list[dict[str, Any]] = []
    points: dict[str, tuple[str, Any]] = {}  # point id -> (spec hash, what to run or the error)
    for combo in itertools.product(*(params[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        tags: dict[str, Any] = {f"param.{k}": v for k, v in values.items()}
        try:
            variant = arch.with_changes(values)
            spec = variant.resolved()
            h = spec_hash(spec)
            data, base = variant.to_dict(), str(variant.base_dir) if variant.base_dir else None
        except SpecError as e:
            h, data, base, spec = spec_hash({"base": arch.to_dict(), "changes": values}), None, None, None
            err = str(e)
        for load in mults:
            for r in range(replications):
                pid = _point_id(h, load, r, seed, dur, warm)
                row_tags = {**tags, "point_id": pid, "spec_hash": h, "design": arch.name,
                            "simarch_version": __version__,
                            "duration": dur, "warmup": warm}
                if data is None:
                    points[pid] = (h, {**row_tags, "load": load, "replication": r, "seed": seed, "error": err})
                else:
                    points[pid] = (h, Task(data, base, load, dur, warm, seed, r, row_tags))

    # what the folder holds already: only rows of this very sweep, each once
    good, bad = _parts(out)
    for f in bad:
        warnings.warn(f"sweep part {f.name} is unreadable (a write cut short?): its point is run again",
                      stacklevel=3)
        f.unlink()
    finished: set[str] = set()
    for part in good:
        for pid, h, design in zip(part.get("point_id", []), part.get("spec_hash", []),
                                  part.get("design", [None] * len(part)), strict=True):
            if pid not in points or points[pid][0] != h or design != arch.name:
                raise SpecError(
                    f"holds rows of another sweep (design {excerpt(design)}, point {excerpt(pid)}): "
                    "resume a sweep with the same design, parameters, loads, replications and seed, "
                    "or choose another --out", (), str(out))
            finished.add(pid)
    for pid, (_h, what) in points.items():
        if pid in finished:
            continue
        if isinstance(what, Task):
            tasks.append(what)
        else:
            invalid.append(what)
    if invalid and not tasks and not finished:
        raise SpecError(f"every point of the sweep is invalid, e.g. {invalid[0]['error']}", ("--set",))
    for row in invalid:
        _write_row(out, row)
    run_tasks(tasks, executor=executor, workers=workers, progress=progress, desc="sweep",
              on_result=lambda _i, row: _write_row(out, row))
    meta = {"type": "sweep", "design": arch.name, "params": {k: list(v) for k, v in params.items()},
            "loads": mults, "replications": replications, "seed": seed, "duration": dur, "warmup": warm,
            "simarch_version": __version__}
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    os.replace(tmp, out / MANIFEST)
    old_manifest = out / "simarch.json"
    if old_manifest.exists():
        old_manifest.unlink()
    return read_dataset(out)
