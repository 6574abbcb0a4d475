"""simarch: put numbers on system-design trade-offs.

Declare an architecture (YAML or Python), simulate it under load, and read latency
percentiles, throughput and availability::

    import simarch
    arch = simarch.load("architectures/cached_sharded.yaml")
    result = simarch.simulate(arch, load="2x", duration="120s", seed=1)
    result.summary()
"""

__version__ = "0.1.0"

from .architecture import Architecture, load
from .capacity import CapacityReport, capacity_report
from .compare import Comparison, compare
from .errors import SimarchError, SpecError
from .result import Result
from .simulate import simulate
from .spof import SpofReport, spof
from .sweep import sweep

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
    "spof",
    "SpofReport",
    "__version__",
]
