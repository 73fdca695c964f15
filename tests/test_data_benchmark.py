"""benchmarks/loader_speed.py runs (quick settings); its numbers are not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "loader_speed.py"


def test_loader_speed_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| MiniImagenet, cached (uint8 memmap)" in out
    assert "cached / decode-per-access speed ratio" in out
    assert "ConfoundedShapes:" in out and "ms per task" in out
