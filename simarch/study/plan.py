"""The capacity planner: the cheapest design that meets the SLO at a given load.

:func:`plan` searches a space of designs (every combination of the ``vary`` values) in two
steps:

1. **Screening, with the models.** Every combination is priced (:mod:`simarch.model.cost`)
   and judged by the analytic queueing model (:func:`simarch.analysis.queueing.analyze`:
   stability, mean and p99 latency) and the availability model
   (:func:`simarch.analysis.availability.availability_model`: k-of-n boxes under the spec's
   faults, health-check detection included). This takes milliseconds per design.
2. **Confirmation, by simulation.** The cheapest designs the models accept, and the closest
   misses that are cheaper still (the models are approximations), are simulated with
   ``replications`` replications on common random numbers. A design *meets* the SLO when
   every replication is stable, the upper bound of the confidence interval of each latency
   target (the mean of the replications' percentiles) is under its target, and the lower
   bound of the availability's interval is at least its target. If none of them meets, the
   next cheapest accepted designs are simulated (``rounds`` times at most).

The chosen design is the cheapest one the simulation confirmed. Every figure says where it
comes from: ``model`` or ``simulation``. The simulated runs are saved one by one in ``out``
(as a sweep's are), so an interrupted plan resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from .. import plots
from .._version import __version__
from ..analysis.availability import availability_model
from ..analysis.queueing import analyze
from ..analysis.spof import static_spof
from ..errors import SimarchError, SpecError, argument, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.cost import design_cost
from ..model.spec import SLOSpec, spec_error_from_validation, yaml_load
from ..model.units import parse_duration, parse_multiplier
from ..results.text import fmt, html_table
from ..results.text import table as text_table
from .experiment import Task, _progress, _worker_init, check_runs, mean_ci, positive_int, run_tasks
from .sweep import MANIFEST, _parts, _point_id, _write_row, lock_folder, spec_hash

__all__ = ["Plan", "plan", "parse_vary", "expand_range"]

MAX_DESIGNS = 20_000  # combinations one plan may screen
FRONTIER_STEP = 0.005  # a dearer design is on the frontier if its p99 is lower by more than this share
LATENCY_TARGETS = ("mean", "p50", "p90", "p95", "p99", "p999")
MODEL_LATENCY = {"mean": "mean_ms", "p99": "p99_ms"}  # what the queueing model estimates
REQUIRE_METRICS = {"utilization": ("utilization", 1.0), "mean_wait": ("mean_wait_ms", 1e3),
                   "wait_probability": ("wait_probability", 1.0)}
_REQUIRE_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\.([a-z_]+)\s*(<=|<)\s*(\S+)\s*$")
_SUFFIX = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}


# ---------------------------------------------------------------------------- the search space


def _number(text: str) -> float:
    t = text.strip().replace("_", "")
    mult = 1.0
    if t and t[-1] in _SUFFIX:
        mult, t = _SUFFIX[t[-1]], t[:-1]
    return float(t) * mult


def expand_range(text: str) -> list[Any]:
    """The values of ``A..B`` (whole numbers, with k/M suffixes allowed).

    ``2..32``: every whole number when there are at most 64 of them, else a 1-2-5 series
    from A to B (both included); ``A..B:S`` steps by S; ``A..B:xF`` multiplies by F, e.g.
    ``1..64:x2`` is 1, 2, 4 ... 64. Anything without ``..`` is one value, read as YAML.
    """
    if ".." not in text:
        return [yaml_load(text.strip())]
    lo_t, _, rest = text.partition("..")
    hi_t, _, step_t = rest.partition(":")
    try:
        lo, hi = _number(lo_t), _number(hi_t)
    except ValueError:
        raise SpecError(f"a range is A..B with whole numbers, e.g. 2..32 or 10k..1M, got "
                        f"{excerpt(text)}") from None
    if lo != int(lo) or hi != int(hi) or lo > hi or lo < 0:
        raise SpecError(f"a range A..B needs whole numbers with A <= B, got {excerpt(text)}")
    lo, hi = int(lo), int(hi)
    if step_t:
        try:
            if step_t.startswith("x"):
                f = float(step_t[1:])
                if not f > 1 or lo < 1:
                    raise ValueError
                out, v = [], float(lo)
                while v <= hi * (1 + 1e-9):
                    out.append(int(round(v)))
                    v *= f
                return sorted(set(out))
            step = int(_number(step_t))
            if step < 1:
                raise ValueError
        except ValueError:
            raise SpecError(f"a range's step is a whole number >= 1 (A..B:S) or a factor > 1 "
                            f"(A..B:xF), got {excerpt(text)}") from None
        return list(range(lo, hi + 1, step))
    if hi - lo + 1 <= 64:
        return list(range(lo, hi + 1))
    out = [lo]
    decade = 10 ** math.floor(math.log10(max(lo, 1)))
    while decade <= hi:
        for m in (1, 2, 5):
            v = m * decade
            if lo < v < hi:
                out.append(v)
        decade *= 10
    return sorted(set(out + [hi]))


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """``"api.instances=2..32"`` -> ``("api.instances", [2, 3, ..., 32])``; values are a
    comma-separated list of YAML values and ``A..B`` ranges (see :func:`expand_range`)."""
    path, eq, values = option.partition("=")
    if not eq or not path.strip() or not values.strip():
        raise SpecError(f"expected PATH=VALUES, e.g. api.instances=2..32 or db.shards=1,2,4,8, got "
                        f"{excerpt(option)}", ("--vary",))
    try:
        return path.strip(), expand_values(values)
    except SpecError as e:
        raise SpecError(f"{path.strip()}: {e.message}", ("--vary",)) from None


def expand_values(values: str) -> list[Any]:
    """Comma-separated YAML values and ``A..B`` ranges, in order, each value once; or a
    YAML list of values when the text starts with ``[`` (for values that are lists
    themselves: ``[[a], [a, b]]`` for zones)."""
    if values.strip().startswith("["):
        got = yaml_load(values.strip())
        if not isinstance(got, list) or not got:
            raise SpecError(f"a YAML list of values such as [[a], [a, b]], got {excerpt(values)}")
        out_: list[Any] = []
        for v in got:
            if v not in out_:
                out_.append(v)
        return out_
    out: list[Any] = []
    for part in values.split(","):
        out += expand_range(part)
    return list(dict.fromkeys(out))


def _get(arch: Architecture, path: str) -> Any:
    """The value at a dotted path of a design, defaults included (a component name needs no
    ``components.`` prefix); ``None`` when there is none."""
    parts = path.split(".")
    if parts[0] in arch.spec.components:
        parts = ["components", *parts]
    node: Any = arch.spec
    for p in parts:
        if isinstance(node, list) and p.lstrip("-").isdigit():
            node = node[int(p)] if -len(node) <= int(p) < len(node) else None
        elif isinstance(node, Mapping):
            node = node.get(p)
        else:
            node = getattr(node, p, None)
        if node is None:
            return None
    if hasattr(node, "model_dump"):
        return None  # a section, not a value
    return node


# ---------------------------------------------------------------------------- targets


def _targets(arch: Architecture, slo: Mapping[str, Any] | None, required: bool = False) -> dict[str, float]:
    """The SLO the plan must meet: the spec's, with ``slo`` overriding targets."""
    base = arch.spec.slo.model_dump(exclude_none=True) if arch.spec.slo is not None else {}
    if slo:
        if not isinstance(slo, Mapping):
            raise SpecError(f"slo is a mapping of targets such as {{p99: 50ms}}, got {excerpt(slo)}", ("slo",))
        try:
            extra = SLOSpec.model_validate(dict(slo)).model_dump(exclude_none=True)
        except ValidationError as e:
            raise spec_error_from_validation(e, None, ("slo",)) from None
        base.update(extra)
    if not base and not required:
        raise SpecError("the plan needs targets: give the spec an 'slo' (e.g. {p99: 50ms, "
                        "availability: 99.9%}) or pass slo=/--slo", ("slo",))
    return base


@dataclass(frozen=True)
class Requirement:
    """A bound on one component's figure, e.g. ``api.wait_probability<=0.2``."""

    component: str
    metric: str
    bound: float  # in the model table's units (ms for waits)
    text: str

    def column(self) -> str:
        return REQUIRE_METRICS[self.metric][0]


def parse_require(text: str, arch: Architecture) -> Requirement:
    """``COMPONENT.METRIC<=VALUE`` with METRIC one of utilization, mean_wait (a duration)
    or wait_probability."""
    m = _REQUIRE_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise SpecError(f"expected COMPONENT.METRIC<=VALUE, e.g. api.wait_probability<=0.2, got "
                        f"{excerpt(text)}", ("require",))
    comp, metric, _, value = m.groups()
    if comp not in arch.spec.components:
        raise SpecError(f"unknown component '{comp}' (components: {', '.join(arch.spec.components)})",
                        ("require",))
    if metric not in REQUIRE_METRICS:
        raise SpecError(f"unknown metric '{metric}' (allowed: {', '.join(REQUIRE_METRICS)})", ("require",))
    with argument("require"):
        bound = parse_duration(value) * 1e3 if metric == "mean_wait" else float(yaml_load(value))
    return Requirement(comp, metric, float(bound), text.strip())


def _margin(targets: Mapping[str, float], figures: Mapping[str, float]) -> float:
    """The smallest relative margin to the targets: latency ``(target - x) / target``;
    availability, the share of the error budget left ``(a - target) / (1 - target)``.
    Negative: missed. NaN when no figure is known."""
    out = []
    for t, v in targets.items():
        x = figures.get(t)
        if x is None or (isinstance(x, float) and math.isnan(x)):
            continue
        if t == "availability":
            out.append((x - v) / (1 - v) if v < 1 else (0.0 if x >= 1 else -math.inf))
        else:
            out.append((v * 1e3 - x) / (v * 1e3))
    return min(out) if out else math.nan


# ---------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """The outcome of :func:`plan`: every design screened, the simulated ones, the frontier
    and the chosen design."""

    design: str
    load: float
    targets: dict[str, float]
    params: list[str]
    table: pd.DataFrame  # one row per design screened (index: design number)
    runs: pd.DataFrame  # one row per simulation run
    chosen: int | None
    input_design: int
    base_spec: dict[str, Any]
    base_dir: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # ---- views
    @property
    def frontier(self) -> pd.DataFrame:
        """The cost-versus-p99 frontier: among the stable designs that meet the availability
        target (and every ``require`` bound), those no other beats on both cost and p99
        (best known figures: simulated where simulated, else modelled), with their
        availability and margin to the SLO; the chosen design is always listed. A dearer
        design joins only if its p99 is lower by more than :data:`FRONTIER_STEP`."""
        t = self.table
        ok = t["stable"] & t["p99_ms"].notna()
        if "availability" in self.targets:
            ok &= t["availability"] >= self.targets["availability"]
        for c in [c for c in t.columns if c.startswith("model.")]:
            ok &= t[c] <= _bound_of(c)
        ok = t[ok].sort_values(["cost_month", "p99_ms"])
        keep, best = [], math.inf
        for i, r in ok.iterrows():
            if r["p99_ms"] < best * (1 - FRONTIER_STEP):
                keep.append(i)
                best = r["p99_ms"]
        if self.chosen is not None and self.chosen not in keep:
            keep.append(self.chosen)
        cols = [f"param.{p}" for p in self.params] + [
            "cost_month", "p99_ms", "p99_source", "availability", "availability_source", "meets",
            "margin", "verdict"]
        return t.loc[keep, cols].sort_values("cost_month")

    @property
    def chosen_params(self) -> dict[str, Any] | None:
        """The parameter values of the chosen design (``None``: none met the SLO)."""
        if self.chosen is None:
            return None
        return self.values_of(self.chosen)

    def values_of(self, index: int) -> dict[str, Any]:
        """The parameter values of screened design ``index``."""
        return {p: _plain(self.table.at[index, f"param.{p}"]) for p in self.params}

    def design_of(self, index: int) -> Architecture:
        """The architecture of screened design ``index``."""
        base = Architecture.from_dict(self.base_spec, base_dir=Path(self.base_dir) if self.base_dir else None)
        return base.with_changes(self.values_of(index))

    def chosen_design(self) -> Architecture:
        """The chosen design as an :class:`Architecture`."""
        if self.chosen is None:
            raise SimarchError("no design met the SLO, so there is no chosen design: widen the "
                               "ranges (--vary) or relax the targets")
        return self.design_of(self.chosen)

    def write_spec(self, path: str | Path) -> Path:
        """Write the chosen design as a spec file (the input spec with the changes applied)."""
        arch = self.chosen_design()
        data = arch.to_dict()
        changes = ", ".join(f"{p}: {self.changes().loc[p, 'input']} -> {v}"
                            for p, v in (self.chosen_params or {}).items()
                            if self.changes().loc[p, "changed"])
        how = "in simulation" if self.table.at[self.chosen, "simulated"] else "by the models (not simulated)"
        head = (f"# planned by simarch {__version__} for {self.load:g}x load: the cheapest design "
                f"that met the SLO {how}\n# changes against '{self.design}': {changes or 'none'}\n")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(head + yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, path)
        return path

    def changes(self) -> pd.DataFrame:
        """What the chosen design changes against the input design: each parameter, then its
        monthly cost, p99 and availability (with where each figure comes from)."""
        rows = []
        inp = self.table.loc[self.input_design]
        ch = self.table.loc[self.chosen] if self.chosen is not None else None
        for p in self.params:
            a = self.values_of(self.input_design)[p]
            b = self.values_of(self.chosen)[p] if ch is not None else None
            rows.append({"what": p, "input": a, "chosen": b, "changed": ch is not None and a != b})
        for col, src in (("cost_month", None), ("p99_ms", "p99_source"), ("availability", "availability_source")):
            a = inp[col]
            b = ch[col] if ch is not None else math.nan
            rows.append({"what": col, "input": a, "chosen": b, "changed": ch is not None and a != b,
                         "source": f"{inp[src]} / {ch[src] if ch is not None else '-'}" if src else "cost model"})
        return pd.DataFrame(rows, dtype=object).set_index("what")

    def simulated(self) -> pd.DataFrame:
        """The designs that were simulated, with their figures and confidence bounds."""
        return self.table[self.table["simulated"]]

    def plot_frontier(self, ax=None):
        """Cost against p99: every design screened, the frontier, the simulated designs with
        their confidence intervals, the chosen and the input design."""
        return plots.plan_frontier(self, ax=ax)

    def __str__(self) -> str:
        return format_plan(self)

    def _repr_html_(self) -> str:
        parts = [f"<h4>{self.design}: plan for {self.load:g}x</h4>",
                 f"<p>{verdict_text(self)}</p>",
                 html_table(_frontier_view(self), _FORMATS, "design", caption="cost-versus-p99 frontier"),
                 html_table(changes_table(self), {c: "str" for c in changes_table(self).columns},
                            caption="chosen against input")]
        return "<div>\n" + "\n".join(parts) + "\n</div>"

    # ---- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"type": "plan", "design": self.design, "load": self.load, "targets": self.targets,
                "params": self.params, "chosen": self.chosen, "input_design": self.input_design,
                "chosen_params": self.chosen_params, "settings": self.settings,
                "warnings": self.warnings, "simarch_version": __version__}

    def save(self, directory: str | Path) -> Path:
        """Write the plan to ``directory``: ``designs.parquet`` (every design screened),
        ``runs.parquet``, ``frontier.parquet``, ``chosen.yaml`` (if any), the input spec
        and the manifest. Each file is written whole or not at all."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, df in (("designs", self.table), ("runs", self.runs), ("frontier", self.frontier)):
            tmp = d / f".{name}.parquet.tmp"
            _parquet_safe(df).to_parquet(tmp)
            os.replace(tmp, d / f"{name}.parquet")
        tmp = d / ".spec.yaml.tmp"
        tmp.write_text(yaml.safe_dump(self.base_spec, sort_keys=False))
        os.replace(tmp, d / "spec.yaml")
        if self.chosen is not None:
            self.write_spec(d / "chosen.yaml")
        meta = {**self.to_dict(), "base_dir": self.base_dir}
        tmp = d / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        os.replace(tmp, d / MANIFEST)
        return d

    @classmethod
    def read(cls, directory: str | Path) -> Plan:
        """Read a plan written by :meth:`save`."""
        d = Path(directory)
        meta = json.loads((d / MANIFEST).read_text())
        if meta.get("type") != "plan":
            raise SpecError(f"'{d}' holds no plan", ())
        table = pd.read_parquet(d / "designs.parquet")
        runs = pd.read_parquet(d / "runs.parquet")
        base = yaml.safe_load((d / "spec.yaml").read_text())
        return cls(meta["design"], meta["load"], meta["targets"], meta["params"], table, runs,
                   meta["chosen"], meta["input_design"], base, meta.get("base_dir"),
                   meta.get("settings", {}), meta.get("warnings", []))


def _bound_of(column: str) -> float:
    """The bound of a ``model.COMP.METRIC<=V`` column."""
    text = column.removeprefix("model.")
    m = _REQUIRE_RE.match(text)
    metric, value = m.group(2), m.group(4)
    return parse_duration(value) * 1e3 if metric == "mean_wait" else float(yaml_load(value))


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in out[c]]
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out[c]) and \
                    any(isinstance(v, str) for v in out[c]):
                out[c] = out[c].astype(str)
    return out


# ---------------------------------------------------------------------------- screening


#: failures the replications of a design must see, in all, for the simulated availability
#: to decide its verdict; with fewer, the availability model decides (and says so)
MIN_FAILURES = 20


def expected_failures(arch: Architecture, duration: float | None = None, warmup: float | None = None) -> float:
    """The failures one run of ``arch`` sees in its measured window, on average: for each
    ``random`` fault, its boxes times the share of a failure cycle (``mtbf + mttr``) that the
    window covers; each ``crash`` in the window counts once."""
    sim = arch.spec.simulation
    w0 = sim.warmup if warmup is None else warmup
    w1 = w0 + (sim.duration if duration is None else duration)
    total = 0.0
    for f in arch.spec.faults:
        span = max(0.0, min(f.end, w1) - max(f.at, w0))
        if f.kind == "random" and span > 0:
            boxes = arch.spec.components[f.target].boxes if f.target is not None else 1  # a region
            total += boxes * span / (f.mtbf.mean + f.mttr.mean)
        elif f.kind == "crash" and span > 0:
            total += 1.0
    return total


def _screen(arch: Architecture, values: dict[str, Any], load: float, targets: dict[str, float],
            requires: Sequence[Requirement], no_spof: bool, window: tuple[float | None, float | None] = (None, None)
            ) -> dict[str, Any]:
    """The models' figures for one design (an ``error`` when the combination is invalid)."""
    row: dict[str, Any] = {f"param.{k}": v for k, v in values.items()}
    try:
        variant = arch.with_changes(values) if values else arch
        cost = design_cost(variant, load=load)
        q = analyze(variant, load)
        av = availability_model(variant, load) if variant.spec.faults else None
    except SpecError as e:
        row["error"] = str(e)
        return row
    row.update({
        "error": None,
        "cost_month": float(cost.monthly_usd),
        "unpriced": ", ".join(cost.unpriced),
        "model_mean_ms": float(q.mean_ms),
        "model_p99_ms": float(q.p99_ms),
        # requests turned away by full queues (queueing model) and lost to faults
        "model_availability": float(q.availability) * (float(av.availability) if av is not None else 1.0),
        "model_stable": bool(q.stable),
        "model_saturation_load": float(q.saturation_load),
        "failures_per_run": expected_failures(variant, *window),
        "bottleneck": q.bottleneck,
        "max_utilization": float(np.nanmax(q.table["utilization"].to_numpy(dtype=float)))
        if len(q.table) else math.nan,
    })
    for r in requires:
        col = r.column()
        v = float(q.table.loc[r.component, col]) if col in q.table.columns else math.nan
        row[f"model.{r.text}"] = v
    if no_spof:
        static, zones = static_spof(variant)
        spofs = list(static.index[static["spof"]]) + list(zones.index[zones["spof"]])
        row["spofs"] = ", ".join(spofs)
    figures = {"mean": q.mean_ms, "p99": q.p99_ms, "availability": row["model_availability"]}
    row["model_margin"] = _margin(targets, figures) if q.stable else -math.inf
    ok = bool(q.stable)
    for t, v in targets.items():
        if t == "availability":
            ok &= row["model_availability"] >= v
        elif t in MODEL_LATENCY:
            ok &= figures[t] <= v * 1e3
    for r in requires:
        v = row[f"model.{r.text}"]
        ok &= bool(v <= r.bound)  # NaN (no figure: no worker limit) is never within a bound
    if no_spof:
        ok &= not row["spofs"]
    row["model_meets"] = bool(ok)
    return row


#: a space this large is screened in local processes (unless the executor is "serial")
PARALLEL_SCREEN = 64


def _screen_chunk(data: dict[str, Any], source: str | None, base_dir: str | None,
                  chunk: list[dict[str, Any]], load: float, targets: dict[str, float],
                  requires: Sequence[Requirement], no_spof: bool, window: tuple) -> list[dict[str, Any]]:
    arch = Architecture.from_dict(data, source=source, base_dir=Path(base_dir) if base_dir else None)
    return [_screen(arch, v, load, targets, requires, no_spof, window) for v in chunk]


def _screen_all(arch: Architecture, combos: list[dict[str, Any]], load: float, targets, requires,
                no_spof: bool, window: tuple, executor: Any, workers: int | None,
                progress: bool) -> list[dict[str, Any]]:
    """The models' rows of every design, in order: in this process, or for a large space in
    local processes (the figures are the same either way: the models are deterministic)."""
    bar = _progress(len(combos), "screening", progress)
    n_workers = min(workers or os.cpu_count() or 1, max(1, len(combos) // 16))
    try:
        if executor == "serial" or len(combos) < PARALLEL_SCREEN or n_workers < 2:
            rows = []
            for values in combos:
                rows.append(_screen(arch, values, load, targets, requires, no_spof, window))
                bar.update(1)
            return rows
        step = max(1, math.ceil(len(combos) / (4 * n_workers)))
        chunks = [combos[i:i + step] for i in range(0, len(combos), step)]
        base = str(arch.base_dir) if arch.base_dir else None
        out: list[list[dict[str, Any]]] = [[] for _ in chunks]
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context(),
                                   initializer=_worker_init)
        try:
            futures = {pool.submit(_screen_chunk, arch.to_dict(), arch.source, base, c, load, targets,
                                   list(requires), no_spof, window): k for k, c in enumerate(chunks)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(len(out[futures[fut]]))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
        return [r for chunk in out for r in chunk]
    finally:
        bar.close()


# ---------------------------------------------------------------------------- confirmation


def _sim_verdict(g: pd.DataFrame, targets: dict[str, float], requires: Sequence[Requirement],
                 confidence: float, model: pd.Series | None = None) -> dict[str, Any]:
    """Figures and verdict of one design from its replications (``model``: its screening
    row, whose availability decides when the design has faults but its runs saw too few
    failures to measure their effect)."""
    out: dict[str, Any] = {"sim_replications": len(g)}
    errors = g["error"].dropna() if "error" in g else []
    if len(errors):
        out.update({"sim_meets": False, "sim_note": f"run failed: {errors.iloc[0]}", "sim_stable": False})
        return out
    stable = bool(g["stable"].all()) if "stable" in g else True
    out["sim_stable"] = stable
    met, notes, margins = stable, [] if stable else ["unstable in some replication"], []
    for m in ("mean", *LATENCY_TARGETS[1:]):
        col = f"{m}_ms"
        mean, lo, hi, _ = mean_ci(g[col].to_numpy(dtype=float), confidence)
        out[f"sim_{col}"], out[f"sim_{col}_ci_high"] = mean, hi
        if m in targets:
            limit = targets[m] * 1e3
            ok = not math.isnan(hi) and hi < limit
            met &= ok
            margins.append((limit - hi) / limit if not math.isnan(hi) else -math.inf)
            if not ok:
                notes.append(f"{m} upper bound {hi:.4g} ms >= {limit:g} ms")
    mean, lo, hi, _ = mean_ci(g["availability"].to_numpy(dtype=float), confidence)
    lo = min(max(lo, 0.0), 1.0) if not math.isnan(lo) else lo
    out["sim_availability"], out["sim_availability_ci_low"] = mean, lo
    if "availability" in targets:
        v = targets["availability"]
        ok = not math.isnan(lo) and lo >= v
        seen = float(model["failures_per_run"]) * len(g) if model is not None else math.inf
        out["sim_failures"] = seen
        if ok and 0 < seen < MIN_FAILURES and model is not None:
            # the runs saw too few failures to measure it: the model decides
            a = float(model["model_availability"])
            ok = a >= v
            out["availability_judged_by"] = "model"
            margins.append((a - v) / (1 - v) if v < 1 else -math.inf)
            if not ok:
                notes.append(f"modelled availability {a:.4%} < {v:.4%} (the runs saw about "
                             f"{seen:.2g} failures, too few to measure it)")
        else:
            out["availability_judged_by"] = "simulation"
            margins.append((lo - v) / (1 - v) if not math.isnan(lo) and v < 1 else -math.inf)
            if not ok:
                notes.append(f"availability lower bound {lo:.4%} < {v:.4%}")
        met &= ok
    for r in requires:
        col = {"utilization": "util", "mean_wait": "wait_ms", "wait_probability": "wait_p"}[r.metric]
        key = f"{col}.{r.component}"
        if key not in g:
            continue
        mean, lo, hi, _ = mean_ci(g[key].to_numpy(dtype=float), confidence)
        out[f"sim.{r.text}"] = mean
        ok = not math.isnan(hi) and hi <= r.bound
        met &= ok
        if not ok:
            notes.append(f"{r.text}: upper bound {hi:.4g}")
    out["sim_margin"] = min(margins) if margins else math.nan
    out["sim_meets"] = bool(met)
    out["sim_note"] = "; ".join(notes)
    return out


def plan(
    design: Architecture | str | Path | dict,
    vary: Mapping[str, Sequence[Any] | str],
    *,
    load: float | str = 1.0,
    slo: Mapping[str, Any] | None = None,
    require: Sequence[str] = (),
    no_spof: bool = False,
    objective: str = "cost",
    replications: int = 5,
    confirm: int = 3,
    rounds: int = 3,
    seed: int = 1,
    duration: str | float | None = None,
    warmup: str | float | None = None,
    confidence: float = 0.95,
    out: str | Path | None = None,
    executor: str | Any = "processes",
    workers: int | None = None,
    progress: bool = True,
) -> Plan:
    """Find the cheapest design that meets the SLO at ``load``.

    ``vary`` maps dotted paths to values: a list, or a string of comma-separated values and
    ranges such as ``"2..32"`` or ``"10k..1M"`` (:func:`expand_range`). ``slo`` overrides
    the spec's targets; ``require`` adds bounds on single components
    (``"api.wait_probability<=0.2"``, ``"db.utilization<=0.7"``, ``"api.mean_wait<=5ms"``);
    ``no_spof`` rejects designs with a single point of failure (static analysis).
    ``objective`` is ``"cost"`` (the cheapest that meets) or ``"p99"`` (the fastest that
    meets, cost breaking ties).

    The models screen every combination; the simulation confirms the ``confirm`` cheapest
    the models accept and as many of the closest cheaper misses, ``replications`` runs each
    on common random numbers, then the next ``confirm`` if none met (``rounds`` at most).
    With ``out``, every run is saved as it finishes and a rerun resumes; the plan is saved
    there too (:meth:`Plan.save`). Runs go to ``executor`` as in :func:`simarch.sweep`.
    """
    started = time.perf_counter()
    arch = load_arch(design)
    with argument("load"):
        mult = parse_multiplier(load)
    if objective not in ("cost", "p99"):
        raise SpecError(f"{excerpt(objective)} is not allowed (allowed: 'cost', 'p99')", ("objective",))
    replications = positive_int(replications, "replications")
    if replications < 2:
        raise SpecError("a plan judges the SLO on a confidence interval: give at least 2 "
                        "replications", ("replications",))
    if isinstance(confirm, bool) or not isinstance(confirm, (int, np.integer)) or not 0 <= confirm <= 1000:
        raise SpecError(f"a whole number from 0 (the models only) to 1,000, got {excerpt(confirm)}",
                        ("confirm",))
    rounds = positive_int(rounds, "rounds", 100)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise SpecError(f"a confidence level between 0 and 1 such as 0.95, got {excerpt(confidence)}",
                        ("confidence",))
    with argument("duration"):
        dur = None if duration is None else parse_duration(duration, allow_zero=False)
    with argument("warmup"):
        warm = None if warmup is None else parse_duration(warmup)
    requires = [parse_require(r, arch) for r in require]
    targets = _targets(arch, slo, bool(requires))
    params = _space(vary)
    names = list(params)
    n_designs = math.prod(len(v) for v in params.values())
    if n_designs > MAX_DESIGNS:
        raise SpecError(f"the space holds {n_designs:,} designs, more than the {MAX_DESIGNS:,} a plan "
                        "screens: fewer values per parameter (e.g. a range step A..B:S)", ("vary",))
    input_values = {p: _get(arch, p) for p in names}

    # ---- screening
    combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*(params[n] for n in names))]
    if input_values not in combos:
        combos.append(input_values)
    t0 = time.perf_counter()
    rows = _screen_all(arch, combos, mult, targets, requires, no_spof, (dur, warm), executor,
                       workers, progress)
    screen_s = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    table.index.name = "design"
    table["resources"] = _resources(table, params)
    input_index = combos.index(input_values)
    table["input"] = table.index == input_index
    valid = table[table["error"].isna()] if "error" in table else table
    if valid.empty:
        raise SpecError(f"every design of the space is invalid, e.g. {table['error'].iloc[0]}", ("vary",))
    if table.loc[input_index, "error"] is not None and not pd.isna(table.loc[input_index, "error"]):
        raise SpecError(f"the input design is invalid: {table.loc[input_index, 'error']}")

    # ---- confirmation by simulation
    lock, folder = _open_out(out, arch, names)
    try:
        done_rows = _done_runs(folder) if folder is not None else {}
        simulated: dict[int, dict[str, Any]] = {}
        all_runs: list[dict[str, Any]] = []
        order = _order(valid, objective)
        meets = [i for i in order if valid.loc[i, "model_meets"]]
        accepted = set(meets)
        twins = _twin_keys(valid)
        tried: set[Any] = set()  # twin keys of the designs simulated (or queued) so far
        chosen = None
        spent = 0
        scale = {"mean": 1.0, "p99": 1.0}
        for rnd in range(rounds if confirm else 0):
            if rnd > 0:
                scale = _calibration(valid, simulated, targets)
                accepted = {i for i in meets if _accepted_scaled(valid.loc[i], targets, scale)}
            ahead = [i for i in order if i in accepted]
            if chosen is not None:
                ahead = ahead[: ahead.index(chosen)] if chosen in ahead else [
                    i for i in ahead if order.index(i) < order.index(chosen)]
            batch = []
            for i in ahead:
                if len(batch) >= confirm:
                    break
                if i not in simulated and twins[i] not in tried:
                    batch.append(i)
                    tried.add(twins[i])
            if rnd == 0:
                # the closest misses among the designs ranked before the best accepted one
                before = order[: order.index(meets[0])] if meets else order
                misses = valid.loc[before]
                misses = misses[~misses["model_meets"] & misses["model_stable"]]
                for i in misses.sort_values("model_margin", ascending=False).index:
                    if len(batch) >= 2 * confirm:
                        break
                    if twins[i] not in tried:
                        batch.append(int(i))
                        tried.add(twins[i])
                if input_index not in batch:
                    batch.append(input_index)
                    tried.add(twins[input_index])
            if not batch:
                break
            check_runs(len(batch) * replications, "plan")
            tasks, want = [], []
            for i in batch:
                variant = arch.with_changes({p: _plain(table.at[i, f"param.{p}"]) for p in names})
                h = spec_hash(variant.resolved())
                for r in range(replications):
                    pid = _point_id(h, mult, r, seed, dur, warm)
                    want.append((i, pid))
                    if pid in done_rows:
                        continue
                    tasks.append(Task(variant.to_dict(), str(variant.base_dir) if variant.base_dir else None,
                                      mult, dur, warm, seed, r,
                                      {"point_id": pid, "spec_hash": h, "design_index": int(i),
                                       "design": arch.name, "simarch_version": __version__,
                                       "duration": dur, "warmup": warm, "stop_on_miss": False}))
            spent += len(tasks)

            def save(_i: int, row: dict[str, Any]) -> None:
                done_rows[row["point_id"]] = row
                if folder is not None:
                    _write_row(folder, row)

            run_tasks(tasks, executor=executor, workers=workers, progress=progress, desc="confirming",
                      on_result=save)
            for i in batch:
                g = pd.DataFrame([done_rows[pid] for j, pid in want if j == i])
                all_runs += [done_rows[pid] for j, pid in want if j == i]
                simulated[i] = _sim_verdict(g, targets, requires, confidence, table.loc[i])
            confirmed = [i for i in order if i in simulated and simulated[i]["sim_meets"]]
            if confirmed:
                chosen = confirmed[0]
                # done unless the models accept cheaper designs that are not simulated yet
                if not [i for i in order[: order.index(chosen)] if i in accepted and i not in simulated]:
                    break
    finally:
        if lock is not None:
            lock.release()

    table = _merge(table, simulated, targets)
    if not confirm and meets:
        chosen = meets[0]  # the models' choice, not confirmed
    elif chosen is not None:
        # the cheapest confirmed design, cheaper ones not simulated are model misses
        chosen = _order(table[table["verdict"] == "meets (simulation)"], objective)[0]
    warnings_ = _plan_warnings(table, chosen, meets, targets)
    for fig, f in scale.items():
        if f > 1.0 + 1e-9:
            warnings_.append(f"the simulation found the model's {fig} optimistic (by up to x{f:.2f} on "
                             "the accepted designs simulated): later rounds chose what to simulate with "
                             f"the model's {fig} scaled by that")
    settings = {"replications": replications, "confirm": confirm, "rounds": rounds, "seed": seed,
                "calibration": scale,
                "duration": dur, "warmup": warm, "confidence": confidence, "objective": objective,
                "require": [r.text for r in requires], "no_spof": no_spof,
                "vary": {k: list(v) for k, v in params.items()}, "screened": len(table),
                "screen_seconds": screen_s, "simulations": len(all_runs), "simulated_now": spent,
                "seconds": time.perf_counter() - started}
    result = Plan(arch.name, mult, targets, names, table, pd.DataFrame(all_runs), chosen, input_index,
                  arch.to_dict(), str(arch.base_dir) if arch.base_dir else None, settings, warnings_)
    if folder is not None:
        result.save(folder)
    return result


def _space(vary: Mapping[str, Sequence[Any] | str]) -> dict[str, list[Any]]:
    if not isinstance(vary, Mapping) or not vary:
        raise SpecError(f"vary maps dotted paths to values, e.g. {{'api.instances': '2..32'}}, got "
                        f"{excerpt(vary)}", ("vary",))
    out = {}
    for path, values in vary.items():
        if not isinstance(path, str) or not path:
            raise SpecError(f"a parameter is a dotted path such as 'api.instances', got {excerpt(path)}",
                            ("vary",))
        if isinstance(values, str):
            try:
                values = expand_values(values)
            except SpecError as e:
                raise SpecError(e.message, ("vary", path)) from None
        elif isinstance(values, (bytes, Mapping)) or not isinstance(values, Sequence) or not values:
            raise SpecError(f"give a non-empty list of values or a range such as '2..32', got "
                            f"{excerpt(values)}", ("vary", path))
        out[path] = list(values)
    return out


def _order(t: pd.DataFrame, objective: str) -> list[int]:
    """Design numbers best first: by cost, then by the fewest resources (the smallest values
    of the varied parameters: the frugal choice among equally priced designs), then p99; or,
    for the p99 objective, by p99 then cost."""
    p99 = t["p99_ms"] if "p99_ms" in t else t["model_p99_ms"]
    size = t["resources"] if "resources" in t else 0
    key = pd.DataFrame({"cost": t["cost_month"], "size": size, "p99": p99, "i": t.index})
    cols = ["cost", "size", "p99", "i"] if objective == "cost" else ["p99", "cost", "size", "i"]
    return [int(i) for i in key.sort_values(cols)["i"]]


def _twin_keys(t: pd.DataFrame) -> dict[int, Any]:
    """Designs the models cannot tell apart (the same cost and the same modelled figures,
    e.g. caches larger than the key space) share a key: the planner simulates one of each."""
    cols = [c for c in ("cost_month", "model_mean_ms", "model_p99_ms", "model_availability",
                        "model_stable") if c in t]
    return {int(i): tuple(round(float(r[c]), 9) if isinstance(r[c], float) else r[c] for c in cols)
            for i, r in t.iterrows()}


def _calibration(t: pd.DataFrame, simulated: dict[int, dict[str, Any]], targets) -> dict[str, float]:
    """How far the simulation has found the model optimistic: per latency figure the model
    estimates, the largest ratio of the simulation's upper bound to the model's figure over
    the stable simulated designs the models accepted (1 when the model was never under)."""
    out = {"mean": 1.0, "p99": 1.0}
    for fig, col in (("mean", "mean_ms"), ("p99", "p99_ms")):
        for i, v in simulated.items():
            model = t.loc[i, f"model_{col}"]
            hi = v.get(f"sim_{col}_ci_high")
            if t.loc[i, "model_meets"] and v.get("sim_stable") and hi is not None \
                    and math.isfinite(hi) and model > 0:
                out[fig] = max(out[fig], float(hi) / float(model))
    return out


def _accepted_scaled(r: pd.Series, targets: Mapping[str, float], scale: Mapping[str, float]) -> bool:
    """Whether the models still accept a design once its latencies are scaled by ``scale``."""
    return all(r[f"model_{MODEL_LATENCY[t]}"] * scale[t] <= v * 1e3 for t, v in targets.items()
               if t in MODEL_LATENCY)


def _resources(table: pd.DataFrame, params: dict[str, list[Any]]) -> list[float]:
    """How large each design is: the sum over the varied parameters of each value's rank
    among that parameter's values sorted (0 = smallest)."""
    out = np.zeros(len(table))
    for p, values in params.items():
        try:
            ranked = {json.dumps(v, sort_keys=True, default=str): k for k, v in enumerate(sorted(values))}
        except TypeError:  # values that do not sort: as given
            ranked = {json.dumps(v, sort_keys=True, default=str): k for k, v in enumerate(values)}
        out += [ranked.get(json.dumps(_plain(v), sort_keys=True, default=str), 0) for v in table[f"param.{p}"]]
    return list(out)


def _merge(table: pd.DataFrame, simulated: dict[int, dict[str, Any]], targets: dict[str, float]) -> pd.DataFrame:
    t = table.copy()
    sim = pd.DataFrame.from_dict(simulated, orient="index")
    for c in sim.columns:
        t[c] = sim[c]
    t["simulated"] = t.index.isin(list(simulated))
    has = t["simulated"]
    if "sim_p99_ms" not in t:
        t["sim_p99_ms"] = math.nan
        t["sim_availability"] = math.nan
        t["sim_meets"] = None
        t["sim_margin"] = math.nan
        t["sim_stable"] = None
    t["p99_ms"] = np.where(has, t["sim_p99_ms"], t.get("model_p99_ms"))
    t["p99_source"] = np.where(has, "simulation", "model")
    t["availability"] = np.where(has, t["sim_availability"], t.get("model_availability"))
    judged = t["availability_judged_by"] if "availability_judged_by" in t else pd.Series("simulation", index=t.index)
    t["availability"] = np.where(has & (judged == "model"), t.get("model_availability"), t["availability"])
    t["availability_source"] = np.where(has & (judged != "model"), "simulation", "model")
    t["stable"] = np.where(has, t["sim_stable"].fillna(False).astype(bool) if "sim_stable" in t else False,
                           t.get("model_stable", False)).astype(bool)
    t["margin"] = np.where(has, t["sim_margin"], t.get("model_margin"))
    verdict = []
    for _, r in t.iterrows():
        if isinstance(r.get("error"), str):
            verdict.append("invalid")
        elif r["simulated"]:
            verdict.append("meets (simulation)" if r["sim_meets"] else "misses (simulation)")
        else:
            verdict.append("meets (model)" if r["model_meets"] else "misses (model)")
    t["verdict"] = verdict
    t["meets"] = [v.startswith("meets") for v in verdict]
    return t


def _plan_warnings(t: pd.DataFrame, chosen: int | None, meets: list[int], targets) -> list[str]:
    out = []
    if "unpriced" in t and (unpriced := next((u for u in t["unpriced"] if isinstance(u, str) and u), "")):
        out.append(f"no price for {unpriced} (give it a 'cost' or an 'instance_type'): it counts "
                   "as free, and among designs of equal cost the smallest wins")
    if not meets:
        out.append("the models accept no design of the space" + (
            ": the closest misses were simulated" if t["simulated"].any() else "") + "; widen the ranges")
    if chosen is None and t["simulated"].any():
        out.append("no simulated design met the SLO with confidence")
    sim = t[t["simulated"]]
    if "availability_judged_by" in sim and (sim["availability_judged_by"] == "model").any():
        few = sim[sim["availability_judged_by"] == "model"]
        out.append(f"the runs of {len(few)} simulated design(s) saw fewer than {MIN_FAILURES} failures "
                   f"in all (about {few['sim_failures'].min():.2g} to {few['sim_failures'].max():.2g}): "
                   "their availability is the model's; a longer --duration measures it")
    disagree = sim[sim["sim_meets"].astype(bool) != sim["model_meets"].astype(bool)]
    if len(disagree):
        out.append(f"the models and the simulation disagree on {len(disagree)} of {len(sim)} simulated "
                   "designs (near the SLO boundary the models' approximations decide the screening; "
                   "the simulation decides the verdict)")
    if "p99" in targets and len(sim):
        err = (sim["model_p99_ms"] - sim["sim_p99_ms"]) / sim["sim_p99_ms"]
        worst = err.abs().max()
        if worst > 0.25:
            out.append(f"the model's p99 is off by up to {worst:.0%} on the simulated designs")
    return out


def _open_out(out: str | Path | None, arch: Architecture, names: list[str]):
    if out is None:
        return None, None
    d = Path(out)
    manifest = d / MANIFEST
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("type") != "plan" or old.get("design") != arch.name:
            raise SpecError(f"holds {'a plan of ' + excerpt(old.get('design')) if old.get('type') == 'plan' else 'other results'}"
                            ": resume a plan of the same design, or choose another --out", (), str(d))
    return lock_folder(d, "plan"), d


def _done_runs(d: Path) -> dict[str, dict[str, Any]]:
    good, bad = _parts(d)
    for f in bad:
        f.unlink()
    out = {}
    for part in good:
        for row in part.to_dict("records"):
            out[row["point_id"]] = row
    return out


# ---------------------------------------------------------------------------- text

_FORMATS = {"cost_month": "usd", "p99_ms": "ms", "availability": "pct", "margin": "pct",
            "p99_source": "str", "availability_source": "str", "verdict": "str"}


def _frontier_view(p: Plan) -> pd.DataFrame:
    f = p.frontier.copy()
    f.columns = [c.removeprefix("param.") for c in f.columns]
    f = f.drop(columns=["meets"])
    f.insert(0, "design", [("* " if i == p.chosen else "") + str(i) for i in f.index])
    return f


def verdict_text(p: Plan) -> str:
    """One sentence: what was screened and simulated, and the choice."""
    s = p.settings
    head = (f"screened {s['screened']} designs with the models in {s['screen_seconds']:.1f} s; "
            f"simulated {len(p.simulated())} of them x {s['replications']} replications")
    if p.chosen is None:
        return head + "; no design met the SLO with confidence"
    row = p.table.loc[p.chosen]
    inp = p.table.loc[p.input_design]
    how = "" if row["simulated"] else " by the models alone (not simulated)"
    return (head + f"; chosen{how}: design {p.chosen} at ${row['cost_month']:,.0f}/month "
            f"(input design: ${inp['cost_month']:,.0f}/month, {inp['verdict']})")


def changes_table(p: Plan) -> pd.DataFrame:
    """The chosen design against the input, as text cells (what, input, chosen, source)."""
    kinds = {"cost_month": "usd", "p99_ms": "ms", "availability": "pct"}
    labels = {"cost_month": "cost per month", "p99_ms": "p99 ms"}
    rows = []
    for what, r in p.changes().iterrows():
        k = kinds.get(str(what), "str")
        rows.append({"what": labels.get(str(what), str(what)), "input": fmt(r["input"], k),
                     "chosen": fmt(r["chosen"], k), "changed": "yes" if r["changed"] else "",
                     "from": r["source"] if isinstance(r.get("source"), str) else "spec"})
    return pd.DataFrame(rows)


def simulated_table(p: Plan) -> pd.DataFrame:
    """The simulated designs as text cells: parameters, cost, the model's and the
    simulation's p99 (with the upper bound) and availability (with the lower bound), the
    margin and the verdict."""
    sim = p.simulated()
    rows = []
    for i, r in sim.iterrows():
        tag = ("* " if i == p.chosen else "") + ("input " if i == p.input_design else "")
        row = {"design": f"{tag}{i}"}
        row.update({x: str(p.values_of(i)[x]) for x in p.params})
        row.update({
            "cost per month": fmt(r["cost_month"], "usd"),
            "model p99 ms": fmt(r["model_p99_ms"], "ms"),
            "simulated p99 ms [upper]": f"{fmt(r.get('sim_p99_ms'), 'ms')} [{fmt(r.get('sim_p99_ms_ci_high'), 'ms')}]",
            "model availability": fmt(r["model_availability"], "pct"),
            "simulated availability [lower]": f"{fmt(r.get('sim_availability'), 'pct')} "
                                              f"[{fmt(r.get('sim_availability_ci_low'), 'pct')}]",
            "margin": fmt(r["margin"], "pct"), "verdict": r["verdict"],
            "why": r.get("sim_note") or ""})
        rows.append(row)
    return pd.DataFrame(rows)


def _changes_lines(p: Plan) -> list[str]:
    ch = p.changes()
    kinds = {"cost_month": "usd", "p99_ms": "ms", "availability": "pct"}
    out = []
    for what, r in ch.iterrows():
        k = kinds.get(str(what), "str")
        a, b = fmt(r["input"], k), fmt(r["chosen"], k)
        src = f"  ({r['source']})" if isinstance(r.get("source"), str) else ""
        label = {"cost_month": "cost per month", "p99_ms": "p99 ms"}.get(str(what), str(what))
        out.append(f"  {label}: {a} -> {b}" + ("" if r["changed"] else " (unchanged)") + src)
    return out


def format_plan(p: Plan) -> str:
    """The plan as ``simarch plan`` prints it."""
    targets = ", ".join(f"{k} >= {v:.4%}" if k == "availability" else f"{k} <= {v * 1e3:g} ms"
                        for k, v in p.targets.items())
    lines = [f"Plan for {p.design!r} at {p.load:g}x load: objective {p.settings.get('objective', 'cost')}, "
             f"SLO {targets}", verdict_text(p), ""]
    lines.append("Cost-versus-p99 frontier (source: model = queueing and availability models, "
                 "simulation = mean of the replications; * = chosen)")
    fv = _frontier_view(p)
    fmts = {c: "str" for c in fv.columns} | _FORMATS
    lines.append(text_table(fv.set_index("design"), fmts, "design"))
    sim = simulated_table(p)
    if len(sim):
        lines += ["", f"Simulated designs ({p.settings['replications']} replications each on common "
                      f"random numbers; {p.settings['confidence']:.0%} confidence bounds)"]
        lines.append(sim.to_string(index=False))
    lines += ["", "Chosen against input"]
    lines += _changes_lines(p)
    for w in p.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)
