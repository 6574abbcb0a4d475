"""Component kinds: one module each (service, load_balancer, cache, datastore, queue).

A kind module defines one :class:`~simarch.kinds.base.Kind` subclass, registered with
:func:`~simarch.kinds.registry.register`; its spec model lives in
:mod:`simarch.model.components`. Every module of this package is imported here, so a new
kind is found without editing any other file. Nothing outside this package switches on a
kind: the runtime, the results and the analyses call the hooks of :class:`Kind`.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..model.components import COMPONENT_MODELS
from .base import Kind
from .registry import KINDS, kind, register

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "registry") and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

_missing = sorted(set(COMPONENT_MODELS) - set(KINDS))
if _missing:  # pragma: no cover - a new spec model without its kind module
    raise ImportError(f"component kinds without a kind module in simarch.kinds: {', '.join(_missing)}")

__all__ = ["KINDS", "Kind", "kind", "register"]
