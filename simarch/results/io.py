"""Atomic file writes: a reader never sees half a file, and an interrupted write leaves the
old file (or none) in place."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import SpecError


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's private 0600
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


MANIFEST = "simarch.json"  # what a results folder holds: {"type": "run" | "comparison" | "sweep", ...}


def check_output_dir(path: Path, kind: str) -> None:
    """Refuse an output folder before any work is done: a path that is a file, a folder that
    holds another kind of results (its manifest would be replaced), or one that cannot be
    written. Raises :class:`~simarch.errors.SpecError` naming the path."""
    p = Path(path)
    where = ("--out",)
    if p.exists() and not p.is_dir():
        raise SpecError(f"'{p}' is a file, not a folder for the results", where)
    manifest = next((m for m in (p / MANIFEST, p / f"_{MANIFEST}") if m.is_file()), None)
    if manifest is not None:
        try:
            other = json.loads(manifest.read_text()).get("type")
        except (OSError, ValueError, AttributeError):
            other = "unreadable"
        if other != kind:
            raise SpecError(f"'{p}' holds the results of a {other}; write this {kind} to another folder",
                            where)
    elif p.is_dir() and kind == "run" and any(p.glob("part-*.parquet")):
        raise SpecError(f"'{p}' holds an unfinished sweep; write this run to another folder", where)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p, prefix=".write-test.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise SpecError(f"cannot write to '{p}': {e.strerror or e}", where) from None
