"""Exception hierarchy: one base class, and a spec error that names where it happened."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

MAX_MESSAGE = 600  # characters of one error line, at most

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_repr.maxlevel = 2


def excerpt(value: Any, limit: int = 40, quote: bool = True) -> str:
    """A short, safe rendering of a user's value for an error message: at most about
    ``limit`` characters, whatever its size or depth (never the whole of a huge value)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value) if quote else value
        head = value[:limit]
        return (repr(head)[:-1] + "...'" if quote else head + "...") + f" ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {len(str(value)) if value.bit_length() < 14000 else 'many'}-digit integer"
    try:
        text = _repr.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still reported
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 2 * limit else text[: 2 * limit] + "..."


class SimarchError(Exception):
    """Base class of every error simarch raises on purpose."""


class SpecError(SimarchError, ValueError):
    """A spec (file, dict or builder call) is invalid.

    ``path`` is the field path inside the spec (``("components", "api", "workers")``),
    ``source`` the file it came from, if any. ``str(err)`` is one readable line:
    ``arch.yaml: components.api.workers: must be >= 1 (got 0)``.
    """

    def __init__(self, message: str, path: Sequence[str | int] = (), source: str | None = None):
        if len(message) > MAX_MESSAGE:  # a last guard: one readable line, never a whole value
            message = message[: MAX_MESSAGE - 30] + f"... ({len(message):,} characters)"
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


@contextmanager
def argument(name: str) -> Iterator[None]:
    """Read the argument ``name`` of an API call: a ``ValueError`` raised inside (by a unit
    parser, say) becomes a :class:`SpecError` whose path is ``(name,)``."""
    try:
        yield
    except SpecError:
        raise
    except ValueError as e:
        raise SpecError(str(e), (name,)) from None
