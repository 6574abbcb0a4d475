"""Run the installed ``simarch`` command as a user would (shared by the CLI tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "simarch"
    if script.exists():
        return [str(script)]
    found = shutil.which("simarch")
    return [found] if found else [sys.executable, "-m", "simarch.cli"]


SIMARCH = _command()
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")


def simarch_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIMARCH, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd or ROOT, env=ENV)
