"""Data files a spec names (an empirical distribution's CSV, a rate trace): regular files of
bounded size, read as UTF-8 text, with one clear message for each way that fails."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import excerpt

MAX_DATA_BYTES = 256 * 1024 * 1024


def open_text(path: Path, what: str) -> io.TextIOBase:
    """Open ``path`` for reading as UTF-8 text (a BOM is skipped); raises ``ValueError``
    saying what is wrong with it (``what`` names the file's role, e.g. "trace")."""
    if not path.exists():
        raise ValueError(f"{what} file '{excerpt(str(path), 200, quote=False)}' does not exist")
    if path.is_dir():
        raise ValueError(f"{what} file '{excerpt(str(path), 200, quote=False)}' is a directory")
    if not path.is_file():
        raise ValueError(f"{what} file '{excerpt(str(path), 200, quote=False)}' is not a regular file")
    try:
        if path.stat().st_size > MAX_DATA_BYTES:
            raise ValueError(f"{what} file '{path}' is larger than {MAX_DATA_BYTES // 2**20} MiB")
        data = path.read_bytes()
        return io.StringIO(data.decode("utf-8-sig"), newline=None)
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} file '{path}' is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"cannot read {what} file '{path}': {e.strerror}") from None
