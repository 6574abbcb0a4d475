"""The ``simarch`` command line: ``run`` and ``validate``.

Bad input (a spec error, a bad option value) prints one line naming the file, the field and
what is allowed, and exits with code 2. Programmer errors still raise with a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .architecture import load as load_arch
from .errors import SpecError

app = typer.Typer(
    name="simarch",
    help="Simulate a system architecture under load: latency percentiles, throughput, availability.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SpecArg = Annotated[Path, typer.Argument(help="Spec file (YAML).", show_default=False)]
LoadOpt = Annotated[str, typer.Option("--load", "-l", help="Load multiplier, e.g. 1x, 2.5x, 10x.")]


def _fail(err: SpecError | str) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


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
) -> None:
    """Simulate SPEC and print end-to-end, per-class and per-component figures and the SLO verdict."""
    from .simulate import simulate

    try:
        arch = load_arch(spec)
        result = simulate(arch, load=load, duration=duration, warmup=warmup, seed=seed)
    except SpecError as e:
        if not e.source and e.path and e.path[0] in ("load", "duration", "warmup", "seed"):
            _fail(f"--{e.path[0]}: {e.message}")
        _fail(e if e.source else e.with_context(source=str(spec)))
        return
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(result.report())
    if out is not None:
        path = result.save(out)
        typer.echo(f"wrote {path}/", err=as_json)


@app.command()
def validate(
    spec: SpecArg,
    load: LoadOpt = "1x",
) -> None:
    """Check SPEC and print a static capacity analysis: offered load against capacity per
    component, the bottleneck and the load at which it saturates."""
    from .capacity import capacity_report
    from .units import parse_multiplier

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
    typer.echo(str(capacity_report(arch, mult)))


def main() -> None:
    """Console entry point."""
    try:
        app()
    except SpecError as e:  # pragma: no cover - commands catch their own
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
