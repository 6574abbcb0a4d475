"""The network between two components, as faults see it: partitions and message loss."""

from __future__ import annotations

from collections.abc import Callable


class Link:
    """One caller/callee pair that some fault names. ``drops()`` is asked once per message."""

    __slots__ = ("cut", "loss", "hang", "_u")

    def __init__(self, u: Callable[[], float]):
        self.cut = 0  # > 0 while partitioned
        self.loss = 0.0
        self.hang = True
        self._u = u

    def drops(self) -> bool:
        return self.cut > 0 or (self.loss > 0.0 and self._u() < self.loss)
