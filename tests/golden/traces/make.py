"""Golden traces: the OTLP/JSON and Chrome trace files of a tiny design at a fixed seed.

``tests/test_traces.py`` exports them again and compares the text byte for byte, so a change
to the span model, the ids, the times or the file layout fails there. Regenerate (only on
purpose, in a commit of its own that says why)::

    .venv/bin/python tests/golden/traces/make.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository, when run as a script

import simarch  # noqa: E402
from simarch.results.traces import write_traces  # noqa: E402

SPEC = HERE / "tiny.yaml"
FILES = {"tiny.otlp.json": "otlp", "tiny.chrome.json": "chrome"}
SAMPLE = "all,limit=none"


def run() -> simarch.Result:
    """The tiny design, as its spec says (seed, warm-up and window)."""
    return simarch.simulate(SPEC, progress=False)


def render(name: str, result: simarch.Result | None = None) -> str:
    """The text of golden file ``name``, exported now (through a scratch folder)."""
    import tempfile

    result = result or run()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        write_traces(result, path, format=FILES[name], sample=SAMPLE)
        return path.read_text(encoding="utf-8")


def main() -> None:
    result = run()
    for name in FILES:
        text = render(name, result)
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name} ({len(text):,} characters)")


if __name__ == "__main__":
    main()
