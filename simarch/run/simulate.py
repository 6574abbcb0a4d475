"""The one-call entry point: ``simulate(arch, load, duration, warmup, seed) -> Result``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecError, excerpt
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.units import parse_duration, parse_multiplier
from ..results.result import Result
from .budget import check_budget
from .early_stop import SloWatch
from .progress import RunProgress
from .simulation import Simulation


def simulate(
    arch: Architecture | str | Path | Mapping[str, Any],
    load: float | str = 1.0,
    duration: float | str | None = None,
    warmup: float | str | None = None,
    seed: int | np.random.SeedSequence | None = None,
    max_events: float | None = None,
    *,
    progress: bool = True,
    stop_on_miss: bool = False,
    hops: bool | int | None = None,
) -> Result:
    """Simulate a design and return its :class:`~simarch.results.result.Result`.

    ``arch`` is an :class:`Architecture`, a spec path or a spec mapping. ``load`` multiplies
    the workload (``2``, ``"10x"``). ``duration`` is the measured window after a ``warmup``
    that is simulated and discarded (both durations: ``"300s"``, ``"5m"`` or seconds); they
    default to the spec's ``simulation`` section (300 s and 30 s). The same design, load and
    ``seed`` always give identical numbers.

    A run estimated to need more than ``max_events`` events (default: the spec's
    ``simulation.max_events``, 2e8, a few minutes) or more than 4 GiB is refused at once with
    a :class:`SpecError` that gives the estimate (see :mod:`simarch.run.budget`).

    ``progress`` shows a bar of the seconds simulated (``tqdm.auto``: a widget in a notebook,
    standard error in a terminal) once the run has taken two seconds; studies turn it off in
    their runs, which have a bar of their own. With ``stop_on_miss`` a run of a design with an
    SLO ends as soon as the SLO is certainly missed, whatever the rest of the window would
    do, and raises :class:`~simarch.run.early_stop.RunStopped` (a :class:`SimarchError` that
    says why) instead of returning a result: for searches that only need the verdict. A run
    that meets its SLO is never stopped (see :mod:`simarch.run.early_stop`).

    ``hops`` decides which requests are recorded hop by hop (every visit, with its network,
    wait and service time, for :meth:`Result.attribution` and trace export): by default all
    of them when the window is expected to hold 2 million requests or fewer, else one in N
    (N the smallest that keeps the records within 2 million requests); ``False`` records
    none, ``True`` all, an integer N one in N (by arrival order).
    """
    arch = load_arch(arch)
    sim_defaults = arch.spec.simulation
    try:
        mult = parse_multiplier(load)
    except ValueError as e:
        raise SpecError(str(e), ("load",)) from None
    try:
        dur = sim_defaults.duration if duration is None else parse_duration(duration, allow_zero=False)
    except ValueError as e:
        raise SpecError(str(e), ("duration",)) from None
    try:
        warm = sim_defaults.warmup if warmup is None else parse_duration(warmup)
    except ValueError as e:
        raise SpecError(str(e), ("warmup",)) from None
    if seed is None:
        seed = sim_defaults.seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer, np.random.SeedSequence)) or (
            not isinstance(seed, np.random.SeedSequence) and seed < 0):
        raise SpecError(f"a seed is a whole number >= 0, got {excerpt(seed)}", ("seed",))
    if not isinstance(seed, np.random.SeedSequence):
        seed = int(seed)
    if max_events is not None and (isinstance(max_events, bool) or not isinstance(max_events, (int, float))
                                   or not max_events > 0):
        raise SpecError(f"max_events is a number of events > 0, got {excerpt(max_events)}", ("max_events",))
    check_budget(arch, mult, dur, warm, max_events, hops=hops)
    if hops is not None and (not isinstance(hops, (bool, int, np.integer)) or (
            not isinstance(hops, bool) and hops < 1)):
        raise SpecError(f"hops is true, false or a whole number N >= 1 (one request in N), got "
                        f"{excerpt(hops)}", ("hops",))
    sim = Simulation(arch, load=mult, duration=dur, warmup=warm, seed=seed, hops=hops)
    bar = RunProgress(sim.end, desc=f"{arch.name} {mult:g}x") if progress else None
    return sim.run(progress=bar, stop=SloWatch.of(sim) if stop_on_miss else None)
