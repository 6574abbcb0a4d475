"""The ``simarch`` command line: ``run``, ``validate``, ``spof``, ``compare``, ``sweep``,
``plan``, ``stability``, ``report``, ``fit`` and ``archetypes``, the top stage (it may use every other; nothing imports it). Each command imports
the stage it needs when it runs, so that ``simarch --help`` starts fast.

Bad input (a spec error, a bad option value) prints one line naming the file, the field and
what is allowed, and exits with code 2. Programmer errors still raise with a traceback.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from ._version import __version__
from .errors import SimarchError, SpecError, excerpt

app = typer.Typer(
    name="simarch",
    help="Simulate a system architecture under load: latency percentiles, throughput, availability.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: defaults in [brackets] are text, flags show no value
)

SpecArg = Annotated[Path, typer.Argument(help="Spec file (YAML).", show_default=False, metavar="SPEC")]
LoadOpt = Annotated[str, typer.Option("--load", "-l", help="Load multiplier, e.g. 1x, 2.5x, 10x.")]


def _fail(err: SpecError | str) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


def _fail_for(e: SpecError, spec: Path | None, options: tuple[str, ...]) -> None:
    """One error line: a bad option value names the option (``--window: ...``); an error in
    the spec names the file."""
    if not e.source and e.path and str(e.path[0]) in options:
        rest = ".".join(str(p) for p in e.path[1:])
        _fail(f"--{str(e.path[0]).replace('_', '-')}: {rest + ': ' if rest else ''}{e.message}")
    if not e.source and e.path and str(e.path[0]).startswith("--"):
        _fail(e)
    _fail(e if e.source or spec is None else e.with_context(source=str(spec)))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simarch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Simulate a system architecture under load and report latency percentiles, throughput,
    availability and what saturates first."""


@app.command()
def run(
    spec: SpecArg,
    load: LoadOpt = "1x",
    duration: Annotated[str | None, typer.Option(help="Measured window after warm-up, e.g. 300s, 5m. [default: spec's simulation.duration, 300s]")] = None,
    warmup: Annotated[str | None, typer.Option(help="Warm-up simulated then discarded, e.g. 30s. [default: spec's simulation.warmup, 30s]")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; same spec + seed = same numbers. [default: spec's simulation.seed, 1]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write records and tables (Parquet), result.json and the resolved spec here.")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", metavar="FAULT", help="Add a fault for a what-if, e.g. 'crash:db,at=60s,duration=30s' or a YAML "
        "mapping '{kind: slow, target: db, factor: 3}'. Repeatable.")] = None,
    max_events: Annotated[float | None, typer.Option(
        "--max-events", help="Refuse a run estimated to need more events. [default: spec's simulation.max_events, 2e8]")] = None,
    fail_on_slo: Annotated[bool, typer.Option(
        "--fail-on-slo", help="Exit with code 3 when the design misses its SLO (for CI pipelines).")] = False,
    progress: Annotated[bool, typer.Option(help="A progress bar on standard error once the run takes more than two seconds.")] = True,
    traces: Annotated[Path | None, typer.Option(
        "--traces", metavar="FILE", help="Also write sampled requests as traces: OTLP/JSON (Jaeger, Tempo, an "
        "OpenTelemetry collector), or Chrome trace events (Perfetto) for a name ending in .chrome.json.")] = None,
    trace_format: Annotated[str | None, typer.Option(
        "--trace-format", metavar="otlp|chrome", help="The format of --traces. [default: chrome for a name ending "
        "in .chrome.json, else otlp]")] = None,
    trace_sample: Annotated[str | None, typer.Option(
        "--trace-sample", metavar="RULES", help="Which requests --traces exports, rules joined by commas: 1/N, "
        "failed, >p99, >50ms, all, limit=N. [default: all, at most 1000]")] = None,
) -> None:
    """Simulate SPEC and print end-to-end, per-class and per-component figures and the SLO verdict.

    Exit codes: 0 done; 2 bad input (one error line); 3 the SLO was missed (with
    --fail-on-slo); 130 interrupted.
    """
    from .model.architecture import load as load_arch
    from .results.io import check_output_dir
    from .run.simulate import simulate

    plan = _trace_plan(traces, trace_format, trace_sample)
    try:
        if out is not None:
            check_output_dir(out, "run")
        arch = load_arch(spec)
        if fault:
            arch = _with_faults(arch, fault)
        result = simulate(arch, load=load, duration=duration, warmup=warmup, seed=seed,
                          max_events=max_events, progress=progress)
    except SpecError as e:
        if e.path == ("simulation", "duration") and "budget" in e.message and duration is not None:
            _fail(f"--duration: {e.message}")
        _fail_for(e, spec, ("load", "duration", "warmup", "seed", "max_events"))
        return
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.report())
    if out is not None:
        _save_run(result, out, as_json)
    if plan is not None:
        _write_traces(result, plan, as_json)
    if fail_on_slo and result.slo_met is False:
        raise typer.Exit(code=3)


def _trace_plan(path: Path | None, fmt: str | None, sample: str | None):
    """``(path, format, TraceSample)`` for ``run --traces``, checked before the run (a bad
    rule, a bad format, a path that cannot be written: one error line); ``None`` without
    ``--traces``."""
    import os
    import tempfile

    from .results.traces import TraceSample, trace_format

    if path is None:
        for name, value in (("--trace-sample", sample), ("--trace-format", fmt)):
            if value is not None:
                _fail(f"{name} needs --traces FILE (the file to write the traces to)")
        return None
    try:
        rules = TraceSample.parse(sample) if sample is not None else TraceSample()
    except SpecError as e:
        _fail(f"--trace-sample: {e.message}")
    try:
        kind = trace_format(path, fmt)
    except SpecError as e:
        _fail(f"--trace-format: {e.message}")
    if path.is_dir():
        _fail(f"--traces: '{path}' is a folder; give the name of a file, e.g. '{path / 'traces.json'}'")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        _fail(f"--traces: cannot write to '{path}': {e.strerror or e}")
    return path, kind, rules


def _write_traces(result, plan, as_json: bool) -> None:
    """Write the traces of a finished run, and say how many and where (one line)."""
    from .results.traces import write_traces

    path, kind, rules = plan
    try:
        done = write_traces(result, path, format=kind, sample=rules)
    except SimarchError as e:
        _fail(f"--traces: {e}")
    except OSError as e:
        _fail(f"--traces: cannot write to '{path}': {e.strerror or e}")
    typer.echo(str(done), err=as_json)


def _save_run(result, out: Path, as_json: bool) -> None:
    """Save a finished run; if that fails, save it elsewhere and say where (never lose it)."""
    import tempfile

    try:
        path = result.save(out)
    except OSError as e:
        fallback = Path(tempfile.mkdtemp(prefix="simarch-run-"))
        path = result.save(fallback)
        typer.echo(f"error: --out: cannot write to '{out}' ({e.strerror or e}); the results are "
                   f"saved in {path}/ instead", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"wrote {path}/", err=as_json)


def parse_fault(text: str) -> dict:
    """A fault from the command line: ``KIND[:TARGET][,key=value]...`` or a YAML mapping.

    ``TARGET`` is a component, ``zone=NAME`` a zone, ``a|b`` the two ends of a network fault.
    """
    from .model.spec import yaml_load

    text = text.strip()
    if text.startswith("{"):
        try:
            data = yaml_load(text)
        except SpecError as e:
            raise SpecError(f"not a YAML mapping: {e.message}", ("--fault",)) from None
        if not isinstance(data, dict):
            raise SpecError("expected a mapping like '{kind: crash, target: db}'", ("--fault",))
        return data
    head, _, rest = text.partition(",")
    kind, _, target = head.partition(":")
    out: dict = {"kind": kind.strip()}
    if target:
        if "|" in target:
            out["between"] = [t.strip() for t in target.split("|")]
        elif target.startswith("zone="):
            out["zone"] = target[5:].strip()
        else:
            out["target"] = target.strip()
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise SpecError(f"expected key=value, got {excerpt(part)} (e.g. 'crash:db,at=60s,duration=30s')",
                            ("--fault",))
        try:
            out[key.strip()] = yaml_load(value.strip())
        except SpecError as e:
            raise SpecError(f"{key.strip()}: {e.message}", (f"--fault {excerpt(text)}",)) from None
    return out


def _with_faults(arch, faults: list[str]):
    from .model.architecture import Architecture

    data = arch.to_dict()
    base = list(data.get("faults") or [])
    extra = [parse_fault(f) for f in faults]
    try:
        return Architecture.from_dict({**data, "faults": base + extra}, source=arch.source,
                                      base_dir=arch.base_dir)
    except SpecError as e:
        if e.path and e.path[0] == "faults" and len(e.path) > 1 and isinstance(e.path[1], int) \
                and e.path[1] >= len(base):
            i = e.path[1] - len(base)
            where = ".".join(str(p) for p in e.path[2:])
            raise SpecError(f"{where}: {e.message}" if where else e.message,
                            (f"--fault {faults[i]!r}",)) from None
        raise


@app.command("spof")
def spof_cmd(
    spec: SpecArg,
    load: LoadOpt = "1x",
    window: Annotated[str, typer.Option(help="How long each component (or zone, or region) is down.")] = "30s",
    warmup: Annotated[str, typer.Option(help="Warm-up before the clean and the fault windows.")] = "20s",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    static: Annotated[bool, typer.Option("--static", help="Static analysis only (no simulation).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON records.")] = False,
    deployments: Annotated[bool, typer.Option(
        "--deployments", help="Also one simulation per service with a rolling deployment of it.")] = False,
) -> None:
    """Find the single points of failure of SPEC: cut vertices with no redundancy, then one
    simulation per component, per zone and per region with it down for a window, sorted by impact (with
    --deployments, and per service a rolling deployment of it)."""
    from .analysis.spof import spof
    from .model.architecture import load as load_arch

    try:
        arch = load_arch(spec)
        rep = spof(arch, dynamic=not static, window=window, warmup=warmup, load=load, seed=seed,
                   deployments=deployments)
    except SpecError as e:
        _fail_for(e, spec, ("window", "warmup", "load", "seed"))
        return
    except SimarchError as e:
        _fail(str(e))
        return
    if as_json:
        typer.echo(rep.to_frame().reset_index().to_json(orient="records", indent=2))
    else:
        typer.echo(str(rep))


def _executor(scheduler: str | None, serial: bool) -> str:
    if serial:
        return "serial"
    return scheduler or "processes"


def _loads(text: str) -> list[float]:
    from .model.units import parse_multiplier

    try:
        return [parse_multiplier(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise SpecError(str(e), ("--loads",)) from None


@app.command("compare")
def compare_cmd(
    specs: Annotated[list[Path], typer.Argument(help="One or more spec files (one alone: its intervals and knee).", show_default=False)],
    loads: Annotated[str, typer.Option(help="Load multipliers, comma-separated.")] = "1x,2x,5x,10x",
    replications: Annotated[int, typer.Option(min=1, help="Independent runs per design and load.")] = 5,
    duration: Annotated[str | None, typer.Option(help="Measured window of each run. [default: each spec's]")] = None,
    warmup: Annotated[str | None, typer.Option(help="Warm-up of each run. [default: each spec's]")] = None,
    seed: Annotated[int, typer.Option(help="Seed; replication r uses the same stream for every design.")] = 1,
    knee: Annotated[bool, typer.Option(help="Search the highest load that meets each SLO.")] = True,
    attribution: Annotated[bool, typer.Option("--attribution", help="Also show where the p99 goes in each design (hop records on in every run).")] = False,
    scheduler: Annotated[str | None, typer.Option(help="Dask: 'local' or 'tcp://host:port'. [default: local processes]")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, one run at a time.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write tables (Parquet) and plots here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tables as JSON.")] = False,
) -> None:
    """Compare designs as load grows: mean and 95% interval of p50/p99/p99.9, throughput and
    availability per design and load, paired differences, SLO verdicts and the knee; with
    --attribution, the share of each design's p99 band spent per component and phase."""
    from .model.architecture import load as load_arch
    from .results.io import check_output_dir
    from .study.compare import compare

    _on_interrupt[0] = "nothing was saved (a comparison is saved when it completes)"
    try:
        if out is not None:
            check_output_dir(out, "comparison")
        archs = [load_arch(p) for p in specs]
        cmp = compare(archs, loads=_loads(loads), replications=replications, seed=seed,
                      duration=duration, warmup=warmup, knee=knee, attribution=attribution,
                      executor=_executor(scheduler, serial))
    except SpecError as e:
        if not e.source and e.path and e.path[0] == "executor":
            _fail(f"--scheduler: {e.message}")
        _fail_for(e, None, ("loads", "replications", "duration", "warmup", "seed"))
        return
    except SimarchError as e:
        _fail(str(e))
        return
    if as_json:
        doc = {**cmp.to_dict(), **{n: json.loads(getattr(cmp, n).to_json(orient="records"))
                                   for n in ("table", "diff", "slo", "knee", "attribution")}}
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(str(cmp))
    if out is not None:
        _save_comparison(cmp, out)
        typer.echo(f"wrote {out}/", err=as_json)


def _save_comparison(cmp, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmp.save(out)
    for name, draw in (("latency_vs_load.png", cmp.plot_latency), ("availability_vs_load.png",
                                                                     cmp.plot_availability)):
        fig, ax = plt.subplots(figsize=(7, 4))
        draw(ax=ax)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)


@app.command("sweep")
def sweep_cmd(
    spec: SpecArg,
    set_: Annotated[list[str], typer.Option("--set", metavar="PATH=V1,V2", help="PATH=V1,V2,... e.g. api.instances=2,4,8 (repeat for a factorial).")],
    out: Annotated[Path, typer.Option(help="Parquet dataset folder; an interrupted sweep resumes from it.")],
    loads: Annotated[str, typer.Option(help="Load multipliers, comma-separated.")] = "1x",
    replications: Annotated[int, typer.Option(min=1, help="Runs per point.")] = 1,
    duration: Annotated[str | None, typer.Option(help="Measured window of each run. [default: the spec's]")] = None,
    warmup: Annotated[str | None, typer.Option(help="Warm-up of each run. [default: the spec's]")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Dask: 'local' or 'tcp://host:port'. [default: local processes]")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, one run at a time.")] = False,
) -> None:
    """Run a factorial sweep of SPEC's parameters and append every point to a Parquet dataset."""
    from .model.architecture import load as load_arch
    from .study.sweep import parse_set, sweep

    _on_interrupt[0] = (f"the points finished so far are saved in {out}/; run the same command "
                        "again to resume")
    try:
        arch = load_arch(spec)
        params = dict(parse_set(s) for s in set_)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = sweep(arch, params, out, loads=_loads(loads), replications=replications, seed=seed,
                       duration=duration, warmup=warmup, executor=_executor(scheduler, serial))
    except SpecError as e:
        if not e.source and e.path and e.path[0] == "executor":
            _fail(f"--scheduler: {e.message}")
        _fail_for(e, spec, ("loads", "replications", "duration", "warmup", "seed", "params"))
        return
    except SimarchError as e:
        _fail(str(e))
        return
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    cols = [c for c in df.columns if c.startswith("param.")] + ["load", "replication"]
    show = [c for c in ("p50_ms", "p99_ms", "throughput_rps", "availability", "error") if c in df.columns]
    typer.echo(df.sort_values(cols)[cols + show].to_string(index=False))
    errors = int(df["error"].notna().sum()) if "error" in df else 0
    typer.echo(f"\n{len(df)} points in {out}/" + (f" ({errors} with errors)" if errors else ""))


@app.command("plan")
def plan_cmd(
    spec: SpecArg,
    vary: Annotated[list[str], typer.Option("--vary", metavar="PATH=VALUES", help="A parameter and its values: a list (db.shards=1,2,4,8) or a range (api.instances=2..32, cache.capacity=10k..1M, 1..64:x2). Repeat for each parameter.")],
    load: LoadOpt = "1x",
    objective: Annotated[str, typer.Option(help="'cost': the cheapest design that meets the SLO; 'p99': the fastest.")] = "cost",
    slo: Annotated[list[str] | None, typer.Option("--slo", metavar="TARGET=VALUE", help="Override an SLO target, e.g. p99=50ms, availability=99.9%. Repeatable. [default: the spec's slo]")] = None,
    require: Annotated[list[str] | None, typer.Option("--require", metavar="COMP.METRIC<=V", help="A bound on one component: utilization, mean_wait or wait_probability, e.g. api.wait_probability<=0.2. Repeatable.")] = None,
    no_spof: Annotated[bool, typer.Option("--no-spof", help="Reject designs with a single point of failure.")] = False,
    replications: Annotated[int, typer.Option(min=2, help="Simulated runs per confirmed design (common random numbers).")] = 5,
    confirm: Annotated[int, typer.Option(min=1, help="Designs to simulate per round: the cheapest the models accept, and as many of the closest cheaper misses.")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of confirmation at most, while none meets.")] = 3,
    duration: Annotated[str | None, typer.Option(help="Measured window of each run. [default: the spec's]")] = None,
    warmup: Annotated[str | None, typer.Option(help="Warm-up of each run. [default: the spec's]")] = None,
    seed: Annotated[int, typer.Option(help="Seed; replication r uses the same stream for every design.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Dask: 'local' or 'tcp://host:port'. [default: local processes]")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, one run at a time.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the runs (an interrupted plan resumes from it), the tables, the frontier plot and chosen.yaml.")] = None,
    write_spec: Annotated[Path | None, typer.Option("--write-spec", help="Write the chosen design as a spec file here.")] = None,
) -> None:
    """Find the cheapest design that meets SPEC's SLO at a load: the queueing and availability
    models screen every combination of the --vary values, the simulation confirms the best."""
    from .model.architecture import load as load_arch
    from .model.spec import yaml_load
    from .study.plan import plan

    _on_interrupt[0] = (f"the runs finished so far are saved in {out}/; run the same command "
                        "again to resume" if out is not None else "nothing was saved (give --out to resume)")
    try:
        arch = load_arch(spec)
        params = dict(_vary(v) for v in vary)
        targets = {}
        for item in slo or []:
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise SpecError(f"expected TARGET=VALUE, e.g. p99=50ms, got {excerpt(item)}", ("--slo",))
            targets[key.strip()] = yaml_load(value.strip())
        p = plan(arch, params, load=load, slo=targets or None, require=require or (), no_spof=no_spof,
                 objective=objective, replications=replications, confirm=confirm, rounds=rounds,
                 seed=seed, duration=duration, warmup=warmup, out=out,
                 executor=_executor(scheduler, serial))
    except SpecError as e:
        if not e.source and e.path and e.path[0] == "executor":
            _fail(f"--scheduler: {e.message}")
        _fail_for(e, spec, ("load", "objective", "slo", "require", "replications", "confirm", "rounds",
                            "duration", "warmup", "seed", "vary"))
        return
    except SimarchError as e:
        _fail(str(e))
        return
    typer.echo(str(p))
    if out is not None:
        _plot_plan(p, out)
        typer.echo(f"wrote {out}/ (designs.parquet, runs, frontier.png"
                   + (", chosen.yaml" if p.chosen is not None else "") + ")")
    if write_spec is not None:
        if p.chosen is None:
            _fail("--write-spec: no design met the SLO, so there is no chosen design to write")
        p.write_spec(write_spec)
        typer.echo(f"wrote {write_spec}")


def _vary(text: str) -> tuple[str, list]:
    from .study.plan import parse_vary

    return parse_vary(text)


def _plot_plan(p, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    p.plot_frontier(ax=ax)
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=110)
    plt.close(fig)


@app.command("stability")
def stability_cmd(
    specs: Annotated[list[Path], typer.Argument(help="One or more spec files (several: their boundaries side by side).", show_default=False, metavar="SPEC...")],
    trigger: Annotated[str, typer.Option(help="What upsets the design: 'slow:TARGET,factor=F', 'spike:factor=F' (the arrival rate x F), 'crash:TARGET[,instances=N]' or 'flush:TARGET[,every=1s]' (a cache flush repeated for the duration), or a YAML mapping.")],
    durations: Annotated[str | None, typer.Option(help="How long the trigger lasts, comma-separated; with --factors, one duration. [default: 1s,2s,5s,10s,20s; with --factors, 5s]")] = None,
    factors: Annotated[str | None, typer.Option(help="Vary the trigger's factor instead (slow and spike triggers), e.g. 1.5,2,3,5. [default: the factor in --trigger]")] = None,
    replications: Annotated[int, typer.Option(min=1, help="Independent runs per design and trigger.")] = 5,
    within: Annotated[str, typer.Option(help="How long after the trigger's end the design may take to recover.")] = "60s",
    tolerance: Annotated[float, typer.Option(help="Recovered: goodput at least this share of its level before the trigger.")] = 0.95,
    latency_tolerance: Annotated[float, typer.Option("--latency-tolerance", help="... and p99 at most this many times its level before the trigger (0: goodput only).")] = 2.0,
    window: Annotated[str, typer.Option(help="The window goodput and p99 are measured over.")] = "5s",
    baseline: Annotated[str, typer.Option(help="The steady state measured before the trigger (after the warm-up).")] = "30s",
    warmup: Annotated[str | None, typer.Option(help="Warm-up before the baseline. [default: the spec's simulation.warmup]")] = None,
    load: LoadOpt = "1x",
    bisect: Annotated[bool, typer.Option(help="Bisect between the largest trigger that recovers and the smallest that does not.")] = True,
    resolution: Annotated[str | None, typer.Option(help="Bisect until the boundary is this narrow (seconds, or a factor with --factors). [default: a tenth of the smallest trigger that tips]")] = None,
    seed: Annotated[int, typer.Option(help="Seed; replication r uses the same stream for every design and trigger.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Dask: 'local' or 'tcp://host:port'. [default: local processes]")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, one run at a time.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write stability.csv, boundary.csv, runs and timelines (Parquet) and timeline.png here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tables as JSON.")] = False,
) -> None:
    """Does SPEC recover after a trigger? Apply it after a baseline in the steady state, for
    each duration (or factor), in independent replications; report the share that recovers
    (goodput and p99 back near their levels before the trigger within --within), the recovery
    time, and the boundary: the smallest trigger that leaves the design in a lasting bad
    state, bisected. The spec's own faults are left out. Exit codes: 0 done; 2 bad input."""
    from .model.architecture import load as load_arch
    from .results.io import check_output_dir
    from .study.metastability import stability

    _on_interrupt[0] = "nothing was saved (a stability study is saved when it completes)"
    try:
        if out is not None:
            check_output_dir(out, "stability")
        archs = [load_arch(p) for p in specs]
        st = stability(archs, trigger, durations=durations, factors=factors, replications=replications,
                       within=within, tolerance=tolerance,
                       latency_tolerance=latency_tolerance if latency_tolerance > 0 else None,
                       window=window, baseline=baseline, warmup=warmup, load=load, bisect=bisect,
                       resolution=resolution, seed=seed, executor=_executor(scheduler, serial))
    except SpecError as e:
        if not e.source and e.path and e.path[0] == "executor":
            _fail(f"--scheduler: {e.message}")
        _fail_for(e, None, ("trigger", "durations", "factors", "replications", "within", "tolerance",
                            "latency_tolerance", "window", "baseline", "warmup", "load", "resolution", "seed"))
        return
    except SimarchError as e:
        _fail(str(e))
        return
    if as_json:
        typer.echo(json.dumps(st.to_dict(), indent=2))
    else:
        typer.echo(str(st))
    if out is not None:
        try:
            st.save(out)
        except OSError as e:
            _fail(f"--out: cannot write to '{out}' ({e.strerror or e})")
        typer.echo(f"wrote {out}/ (stability.csv, boundary.csv, runs.parquet, timelines.parquet, "
                   "timeline.png)", err=as_json)


@app.command("report")
def report_cmd(
    results: Annotated[Path, typer.Argument(help="A folder written by run --out, compare --out, sweep --out or plan --out.", show_default=False)],
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
) -> None:
    """Write one self-contained HTML page (tables and embedded plots) of a run, a comparison,
    a sweep or a plan, ready to share."""
    from .present.html import write_report

    try:
        write_report(results, html)
    except SpecError as e:
        _fail(e)
        return
    typer.echo(f"wrote {html}")


@app.command()
def validate(
    spec: SpecArg,
    load: LoadOpt = "1x",
) -> None:
    """Check SPEC and print a static capacity analysis (offered load against capacity per
    component, the bottleneck and the load at which it saturates), then the approximate
    queueing model (waits, response times, p99 and the saturation load with queueing)."""
    from .model.architecture import hints
    from .model.architecture import load as load_arch
    from .model.units import parse_multiplier

    try:
        mult = parse_multiplier(load)
    except ValueError as e:
        _fail(f"--load: {e}")
        return
    try:
        arch = load_arch(spec)
    except SpecError as e:
        _fail(e)
        return
    from .analysis.capacity import capacity_report  # (after the spec: a bad one fails fast)
    from .run.budget import estimate

    summary = arch.workload_summary(mult)  # the rate derived from users, the storage
    if not summary.empty:
        typer.echo(f"{summary}\n")
    rep = capacity_report(arch, mult)
    typer.echo(str(rep))
    from .analysis.queueing import analyze

    typer.echo("\n" + str(analyze(arch, mult)))
    sim = arch.spec.simulation
    work = estimate(arch, mult, sim.duration, sim.warmup)
    typer.echo(f"\nOne run ({sim.warmup:g} s warm-up + {sim.duration:g} s at {mult:g}x): {work.describe()}"
               + ("" if work.events <= sim.max_events else
                  f" - over the budget of {sim.max_events:.3g} events: 'simarch run' will refuse it"))
    for h in hints(arch):
        typer.echo(f"note: {h}")
    if rep.warnings:
        typer.echo(f"warning: at {mult:g}x this design cannot keep up: see the saturated "
                   "component(s) above", err=True)


@app.command("archetypes")
def archetypes_cmd(
    name: Annotated[str | None, typer.Argument(
        help="An archetype to show with each field it sets, its value and its source.",
        show_default=False, metavar="NAME")] = None,
) -> None:
    """List the datastore archetypes that a datastore's 'model:' names (what each models and
    the fields it presets), or show one with the source of every default. The presets are
    typical starting points, not benchmarks: every field a spec gives wins over them."""
    import difflib

    from .model.archetypes import DATASTORE_MODELS

    if name is None:
        typer.echo(str(DATASTORE_MODELS))
        return
    if name not in DATASTORE_MODELS:
        close = difflib.get_close_matches(name, list(DATASTORE_MODELS), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        _fail(f"unknown datastore model {excerpt(name)} ({hint}allowed: {', '.join(DATASTORE_MODELS)})")
        return
    typer.echo(DATASTORE_MODELS[name].describe())


@app.command("fit")
def fit_cmd(
    data: Annotated[Path, typer.Argument(help="OTLP/JSON spans (a TracesData object, or one a line) or a CSV of durations.", show_default=False, metavar="DATA")],
    format_: Annotated[str, typer.Option("--format", help="otlp, csv, or auto: from the file's extension, else its first character.")] = "auto",
    service: Annotated[str | None, typer.Option(help="Fit this service only (for a CSV without a service column: its name).")] = None,
    operations: Annotated[str, typer.Option(help="'span': an operation is a span's name; 'entry': the name of the trace's first visit, the request's class.")] = "span",
    min_samples: Annotated[int, typer.Option("--min-samples", min=2, help="Groups with fewer samples are reported, not fitted.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Write fit.csv (every candidate), fragment.yaml and, for spans, call_graph.png here.")] = None,
) -> None:
    """Propose service-time distributions per service and operation from real latency data
    (OTLP/JSON spans or a CSV of durations), infer the call graph from the spans, and print
    a spec fragment to paste into a design. Fit traces taken at low load: a visit's
    exclusive time includes its wait for a worker."""
    from .analysis.fit import fit
    from .results.io import check_output_dir

    try:
        if out is not None:
            check_output_dir(out, "fit")
        result = fit(data, format=format_, service=service, operations=operations,
                     min_samples=min_samples)
    except SpecError as e:
        _fail_for(e, None, ("format", "service", "operations", "min_samples"))
        return
    except SimarchError as e:
        _fail(f"{data}: {e}")
        return
    typer.echo(result.report())
    typer.echo("\nSpec fragment:\n")
    typer.echo(result.fragment(), nl=False)
    if out is not None:
        written = _save_fit(result, out)
        typer.echo(f"\nwrote {out}/ ({', '.join(written)})")


def _save_fit(result, out: Path) -> list[str]:
    """fit.csv (every candidate, parameters as JSON), fragment.yaml and, for spans,
    call_graph.png, each written atomically; returns the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plots
    from .results.io import atomic_write

    table = result.table.copy()
    for col in ("params", "se"):
        table[col] = table[col].map(lambda d: json.dumps(d, sort_keys=True))
    try:
        atomic_write(out / "fit.csv", lambda p: table.to_csv(p, index=False))
        atomic_write(out / "fragment.yaml", lambda p: Path(p).write_text(result.fragment(), encoding="utf-8"))
        if result.format != "otlp" or not result.graph.number_of_nodes():
            return ["fit.csv", "fragment.yaml"]
        ax = plots.call_graph(result)
        atomic_write(out / "call_graph.png", lambda p: ax.figure.savefig(p, format="png", dpi=110))
        plt.close(ax.figure)
    except OSError as e:
        _fail(f"--out: cannot write to '{out}' ({e.strerror or e})")
    return ["fit.csv", "fragment.yaml", "call_graph.png"]


#: what to tell the user when Ctrl-C stops the running command (set by the command)
_on_interrupt = ["nothing was saved"]


def main() -> None:
    """Console entry point. Exit codes: 0 done, 2 bad input or usage (one ``error:`` line),
    3 an SLO missed with ``--fail-on-slo``, 130 interrupted (with what was saved)."""
    no_args, usage, click_error = _click_errors()
    try:
        code = app(standalone_mode=False)  # an Exit raised by a command comes back as its code
        if code == 130:  # the command-line library turns Ctrl-C into exit code 130
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as e:
        if e.exit_code == 130:
            typer.echo(f"interrupted: {_on_interrupt[0]}", err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo(f"interrupted: {_on_interrupt[0]}", err=True)
        sys.exit(130)
    except SpecError as e:  # pragma: no cover - commands catch their own
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except no_args as e:
        typer.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
        sys.exit(0)
    except usage as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        typer.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(2)
    except click_error as e:
        typer.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """The command-line library's error classes: click's, and those of the click copy that
    newer typer releases carry inside them (``typer._click``), whichever are present."""
    import importlib

    mods = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    pick = lambda attr: tuple(getattr(m, attr) for m in mods if hasattr(m, attr))  # noqa: E731
    return pick("NoArgsIsHelpError"), pick("UsageError"), pick("ClickException")


if __name__ == "__main__":
    main()
