"""The registry of component kinds: kind name -> kind class (see :mod:`simarch.kinds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SimarchError

if TYPE_CHECKING:
    from .base import Kind

KINDS: dict[str, type[Kind]] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: make ``cls`` the kind module of ``cls.kind``."""
    if cls.kind in KINDS:
        raise SimarchError(f"component kind '{cls.kind}' is registered twice")
    KINDS[cls.kind] = cls
    return cls


def kind(name: str) -> type[Kind]:
    """The kind class of ``name`` (``"service"``, ``"cache"``, ...)."""
    try:
        return KINDS[name]
    except KeyError:
        raise SimarchError(f"no kind module for component kind '{name}' "
                           f"(registered: {', '.join(KINDS)})") from None
