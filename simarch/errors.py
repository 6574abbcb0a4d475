"""Exception hierarchy: one base class, and a spec error that names where it happened."""

from __future__ import annotations

from collections.abc import Sequence


class SimarchError(Exception):
    """Base class of every error simarch raises on purpose."""


class SpecError(SimarchError, ValueError):
    """A spec (file, dict or builder call) is invalid.

    ``path`` is the field path inside the spec (``("components", "api", "workers")``),
    ``source`` the file it came from, if any. ``str(err)`` is one readable line:
    ``arch.yaml: components.api.workers: must be >= 1 (got 0)``.
    """

    def __init__(self, message: str, path: Sequence[str | int] = (), source: str | None = None):
        self.message = message
        self.path = tuple(path)
        self.source = source
        super().__init__(self.format())

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.path)

    def format(self) -> str:
        parts = []
        if self.source:
            parts.append(str(self.source))
        if self.path:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def with_context(self, path_prefix: Sequence[str | int] = (), source: str | None = None) -> SpecError:
        """A copy of this error placed under ``path_prefix`` and attributed to ``source``."""
        return SpecError(self.message, tuple(path_prefix) + self.path, source or self.source)

    def __str__(self) -> str:  # keep str() in sync if attributes are changed after init
        return self.format()
