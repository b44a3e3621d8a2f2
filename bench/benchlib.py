"""What the benchmark scripts share: percentiles and finding the load tools."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv" / "bin"
TOOLS = BENCH / ".tools" / "bin"


def pct(vals: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``vals`` (None when empty)."""
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def tool(name: str) -> str:
    """A load tool: bench/.tools (bench/setup.sh), the venv, then PATH."""
    for cand in (TOOLS / name, VENV / name):
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: run bench/setup.sh first")
    return found
