"""simarch: put numbers on system-design trade-offs.

Declare an architecture (YAML or Python), simulate it under load, and read latency
percentiles, throughput and availability::

    import simarch
    arch = simarch.load("architectures/cached_sharded.yaml")
    result = simarch.simulate(arch, load="2x", duration="120s", seed=1)
    result.summary()
"""

from . import plots
from ._version import __version__
from .analysis.capacity import CapacityReport, capacity_report
from .analysis.spof import SpofReport, spof
from .errors import SimarchError, SpecError
from .model.architecture import Architecture, load
from .results.result import Result
from .run.simulate import simulate
from .study.compare import Comparison, compare
from .study.sweep import read_dataset, sweep

__all__ = [
    "Architecture",
    "CapacityReport",
    "capacity_report",
    "Result",
    "SimarchError",
    "SpecError",
    "load",
    "simulate",
    "compare",
    "Comparison",
    "sweep",
    "read_dataset",
    "spof",
    "SpofReport",
    "plots",
    "__version__",
]
