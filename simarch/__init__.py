"""simarch: put numbers on system-design trade-offs.

Declare an architecture (YAML or Python), simulate it under load, and read latency
percentiles, throughput and availability::

    import simarch
    arch = simarch.load("architectures/cached_sharded.yaml")
    result = simarch.simulate(arch, load="2x", duration="120s", seed=1)
    result.summary()

The public names are loaded on first use (PEP 562): ``import simarch`` itself imports only
the version and the errors, so that it and ``simarch --help`` start fast; ``simarch.load``
imports the model, ``simarch.simulate`` the engine, ``simarch.plots`` matplotlib's callers,
and so on. ``from simarch import X``, ``dir(simarch)`` and type checkers see every name.
"""

import importlib as _importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import SimarchError, SpecError

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from . import plots
    from .analysis.availability import AvailabilityReport, availability_model
    from .analysis.capacity import CapacityReport, capacity_report
    from .analysis.cost import CostReport, cost
    from .analysis.fit import Fit, fit
    from .analysis.pbs import stale_probability
    from .analysis.queueing import ModelReport, analyze
    from .analysis.spof import SpofReport, spof
    from .model.archetypes import DATASTORE_MODELS, archetypes
    from .model.architecture import Architecture, load
    from .results.result import Result
    from .run.simulate import simulate
    from .study.compare import Comparison, compare
    from .study.metastability import Stability, stability
    from .study.plan import Plan, plan
    from .study.sweep import read_dataset, sweep

__all__ = [
    "Architecture",
    "CapacityReport",
    "capacity_report",
    "cost",
    "CostReport",
    "analyze",
    "ModelReport",
    "Result",
    "SimarchError",
    "SpecError",
    "load",
    "simulate",
    "compare",
    "Comparison",
    "sweep",
    "read_dataset",
    "plan",
    "Plan",
    "availability_model",
    "AvailabilityReport",
    "spof",
    "SpofReport",
    "stale_probability",
    "fit",
    "Fit",
    "stability",
    "Stability",
    "plots",
    "archetypes",
    "DATASTORE_MODELS",
    "__version__",
]

#: each public name loaded on first use -> the module that defines it (a module's own name:
#: the module itself); keep in step with the TYPE_CHECKING block above
_LAZY = {
    "Architecture": "simarch.model.architecture",
    "load": "simarch.model.architecture",
    "Result": "simarch.results.result",
    "simulate": "simarch.run.simulate",
    "CapacityReport": "simarch.analysis.capacity",
    "capacity_report": "simarch.analysis.capacity",
    "CostReport": "simarch.analysis.cost",
    "cost": "simarch.analysis.cost",
    "ModelReport": "simarch.analysis.queueing",
    "analyze": "simarch.analysis.queueing",
    "SpofReport": "simarch.analysis.spof",
    "spof": "simarch.analysis.spof",
    "stale_probability": "simarch.analysis.pbs",
    "Comparison": "simarch.study.compare",
    "compare": "simarch.study.compare",
    "sweep": "simarch.study.sweep",
    "plan": "simarch.study.plan",
    "Plan": "simarch.study.plan",
    "availability_model": "simarch.analysis.availability",
    "AvailabilityReport": "simarch.analysis.availability",
    "read_dataset": "simarch.study.sweep",
    "fit": "simarch.analysis.fit",
    "Fit": "simarch.analysis.fit",
    "stability": "simarch.study.metastability",
    "Stability": "simarch.study.metastability",
    "plots": "simarch.plots",
    "archetypes": "simarch.model.archetypes",
    "DATASTORE_MODELS": "simarch.model.archetypes",
}

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name stays an error

    def __getattr__(name: str) -> object:
        """Import the module of a public name the first time it is asked for, and keep it."""
        try:
            where = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        module = _importlib.import_module(where)
        value = module if where == f"{__name__}.{name}" else getattr(module, name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
