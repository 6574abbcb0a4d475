"""The one-call entry point: ``simulate(arch, load, duration, warmup, seed) -> Result``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecError
from ..model.architecture import Architecture
from ..model.architecture import load as load_arch
from ..model.units import parse_duration, parse_multiplier
from ..results.result import Result
from .simulation import Simulation


def simulate(
    arch: Architecture | str | Path | Mapping[str, Any],
    load: float | str = 1.0,
    duration: float | str | None = None,
    warmup: float | str | None = None,
    seed: int | np.random.SeedSequence | None = None,
) -> Result:
    """Simulate a design and return its :class:`~simarch.results.result.Result`.

    ``arch`` is an :class:`Architecture`, a spec path or a spec mapping. ``load`` multiplies
    the workload (``2``, ``"10x"``). ``duration`` is the measured window after a ``warmup``
    that is simulated and discarded (both durations: ``"300s"``, ``"5m"`` or seconds); they
    default to the spec's ``simulation`` section (300 s and 30 s). The same design, load and
    ``seed`` always give identical numbers.
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
        raise SpecError(f"a seed is a whole number >= 0, got {seed!r}", ("seed",))
    if not isinstance(seed, np.random.SeedSequence):
        seed = int(seed)
    return Simulation(arch, load=mult, duration=dur, warmup=warm, seed=seed).run()
