"""A call as the request path sees it: one small named record per edge and request class."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, NamedTuple

from .links import Link


class Mode(IntEnum):
    CALL = 0  # the caller's worker waits for the answer
    FORWARD = 1  # the caller releases its worker, then the request moves on
    ASYNC = 2  # fire and forget


CALL, FORWARD, ASYNC = Mode
MODES = {m.name.lower(): m for m in Mode}


class Call(NamedTuple):
    """One outgoing call of a component, built once at wiring.

    ``serve`` is the callee's request generator (or a resilience wrapper's), ``pick``
    chooses the callee's instance, ``link`` is the network state when a fault can touch it.
    """

    probability: float
    latency: Callable[[], float] | None  # network latency sampler
    timeout: float | None
    mode: Mode
    serve: Callable[..., Any]
    pick: Callable[[], Any]
    link: Link | None
