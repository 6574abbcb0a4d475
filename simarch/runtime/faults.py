"""Fault injection: turn the spec's ``faults`` into SimPy processes that break and mend the
runtime at the given times, and log every fault window for the reports.

A fault only changes state the components already check on their request path (an
instance's ``down`` count, a link's ``cut``, a component's ``slow`` list, ``err_p``, a pool's
usable workers); the health checks, failover and resilience logic react to that state as
they would to a real failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from ..model.dists import sampler
from ..model.spec import (
    CacheFlushFault,
    CrashFault,
    ErrorFault,
    LossFault,
    PartitionFault,
    RandomFault,
    SlowFault,
    WorkerLossFault,
    fault_label,
)

if TYPE_CHECKING:
    from .component import Component
    from .pools import Pool

    Simulation = Any  # the run driver (simarch.run), which this module must not import


def _window(sim: Simulation, f: Any, on: Callable[[], None], off: Callable[[], None] | None,
            label: str, target: str) -> Generator:
    env = sim.env
    if f.at > env.now:
        yield env.timeout(f.at - env.now)
    on()
    end = f.end if off is not None else f.at  # a fault with no undo (a flush) is an instant
    sim.fault_log.append((label, f.kind, target, f.at, end))
    if off is not None and math.isfinite(end):
        yield env.timeout(end - env.now)
        off()


def _zone_pools(sim: Simulation, zone: str) -> list[tuple[Component, list[Pool]]]:
    out = []
    for comp in sim.components.values():
        pools = [p for p in comp.pools if p.zone == zone]
        if pools:
            out.append((comp, pools))
    return out


def _region_pools(sim: Simulation, region: str) -> list[tuple[Component, list[Pool]]]:
    out = []
    for comp in sim.components.values():
        pools = [p for p in comp.pools if p.region == region]
        if pools:
            out.append((comp, pools))
    return out


def _renewals(sim: Simulation, f: RandomFault, tag: str | int, targets: list[tuple[Component, list[Pool]]],
              name: str, where: str) -> Generator:
    """Up for a draw from ``mtbf``, down (every pool of ``targets``) for a draw from ``mttr``,
    repeat, from ``f.at`` to ``f.end``; each outage is logged as ``name`` at ``where``. The
    draws come from the fault's own streams, tagged ``tag``."""
    env = sim.env
    label = fault_label(f)
    ttf = sampler(f.mtbf, sim.rng("fault", label, "ttf", tag))
    ttr = sampler(f.mttr, sim.rng("fault", label, "ttr", tag))
    hang = f.behaviour == "hang"
    if f.at > env.now:
        yield env.timeout(f.at - env.now)
    end = f.end
    while True:
        up = ttf()
        if env.now + up >= end:
            return
        yield env.timeout(up)
        start = env.now
        for comp, pools in targets:
            comp.crash(pools, hang)
        stop = min(start + ttr(), end)
        sim.fault_log.append((name, "random", where, start, stop))
        if math.isfinite(stop):
            yield env.timeout(stop - env.now)
        for comp, pools in targets:
            comp.recover(pools)
        if env.now >= end:
            return


def _random_region(sim: Simulation, f: RandomFault) -> Generator:
    """A whole region: up for a draw from ``mtbf``, down (every instance in it) for a draw
    from ``mttr``, repeat."""
    return _renewals(sim, f, "region", _region_pools(sim, f.region),  # type: ignore[arg-type]
                     fault_label(f), f"region {f.region}")


def _random_failures(sim: Simulation, f: RandomFault, comp: Component, pool: Pool, idx: int) -> Generator:
    """One instance: up for a draw from ``mtbf``, down for a draw from ``mttr``, repeat."""
    return _renewals(sim, f, idx, [(comp, [pool])], f"{fault_label(f)}:{pool.name}", pool.name)


def schedule_faults(sim: Simulation) -> None:
    """Start one process per fault (and per instance for random failures)."""
    env = sim.env
    for f in sim.spec.faults:
        label = fault_label(f)
        if isinstance(f, CrashFault):
            if f.zone is not None:
                targets = _zone_pools(sim, f.zone)
            elif f.region is not None:
                targets = _region_pools(sim, f.region)
            else:
                comp = sim.components[f.target]  # type: ignore[index]
                targets = [(comp, comp.pools_for(f))]
            hang = f.behaviour == "hang"

            def on(targets=targets, hang=hang):
                for comp, pools in targets:
                    comp.crash(pools, hang)

            def off(targets=targets):
                for comp, pools in targets:
                    comp.recover(pools)
            env.process(_window(sim, f, on, off, label, f.target or (
                f"zone {f.zone}" if f.zone is not None else f"region {f.region}")))
        elif isinstance(f, RandomFault) and f.region is not None:
            env.process(_random_region(sim, f))
        elif isinstance(f, RandomFault):
            comp = sim.components[f.target]
            for i, pool in enumerate(comp.pools):
                env.process(_random_failures(sim, f, comp, pool, i))
        elif isinstance(f, SlowFault):
            comp = sim.components[f.target]
            add = sampler(f.add, sim.rng("fault", label, "add")) if f.add is not None else None
            entry = (f.factor, add)
            env.process(_window(sim, f, lambda c=comp, e=entry: c.slow.append(e),
                                lambda c=comp, e=entry: c.slow.remove(e), label, f.target))
        elif isinstance(f, WorkerLossFault):
            comp = sim.components[f.target]

            def lose(comp=comp, frac=f.fraction):
                for p in comp.pools:
                    if math.isfinite(p.workers):
                        p.set_workers(p.workers - math.ceil(p.workers * frac - 1e-9), env.now)

            def restore(comp=comp):
                for p in comp.pools:
                    p.set_workers(p.workers, env.now)
            env.process(_window(sim, f, lose, restore, label, f.target))
        elif isinstance(f, ErrorFault):
            comp = sim.components[f.target]

            def err_on(comp=comp, p=f.probability):
                comp.set_errors(p)

            def err_off(comp=comp):
                comp.set_errors(0.0)
            env.process(_window(sim, f, err_on, err_off, label, f.target))
        elif isinstance(f, (PartitionFault, LossFault)):
            link = sim.links[frozenset(f.between)]
            if isinstance(f, PartitionFault):
                def cut_on(link=link, hang=f.behaviour == "hang"):
                    link.cut += 1
                    link.hang = hang

                def cut_off(link=link):
                    link.cut -= 1
            else:
                def cut_on(link=link, p=f.probability, hang=f.behaviour == "hang"):
                    link.loss = p
                    link.hang = hang

                def cut_off(link=link):
                    link.loss = 0.0
            env.process(_window(sim, f, cut_on, cut_off, label, "|".join(f.between)))
        elif isinstance(f, CacheFlushFault):
            comp = sim.components[f.target]
            env.process(_window(sim, f, comp.flush, None, label, f.target))  # type: ignore[attr-defined]
