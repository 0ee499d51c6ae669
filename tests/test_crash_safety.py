"""A run killed hard at a few moments never leaves a half-written state (fault injection)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fault_injection.py"


def test_kill_points_leave_before_or_after_values_and_the_next_run_converges() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--customers", "800", "--chunk-size",
                           "3", "--fractions", "0.55,0.75,0.9"],
                          check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 0 failed" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().endswith(" ok")]
    assert len(rows) == 3
