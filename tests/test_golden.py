"""Regression guard: every example design gives exactly the numbers in its golden snapshot.

The snapshots (``tests/golden/*.json``) hold every figure of a short run at a fixed seed and
a hash of the raw request records. A change that moves any number fails here. When a bug fix
changes numbers on purpose, regenerate with ``python tests/golden/snapshot.py`` and commit the
new snapshots on their own, saying why.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import snapshot as golden  # noqa: E402


@pytest.mark.parametrize("spec", golden.SPECS, ids=lambda p: p.stem)
def test_result_matches_golden_snapshot(spec: Path):
    path = golden.path_for(spec)
    assert path.exists(), f"no snapshot for {spec.name}: run python tests/golden/snapshot.py {spec.stem}"
    expected = path.read_text()
    actual = golden.render(spec)
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "golden", "now", n=2))
        pytest.fail(f"{spec.name}: result differs from its golden snapshot\n{diff[:4000]}")


def test_snapshots_have_designs():
    stems = {p.stem for p in golden.SPECS}
    orphans = [p.name for p in golden.GOLDEN.glob("*.json") if p.stem not in stems]
    assert not orphans, f"snapshots without a design: {orphans}"
    assert json.loads(golden.path_for(golden.SPECS[0]).read_text())["records"]["n"] > 0
