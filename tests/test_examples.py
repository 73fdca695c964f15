"""The examples run end to end (on tiny settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("quickstart.py", ["--iterations", "3", "--test-tasks", "8"], "MAML + MetaCRL"),
        ("higher_loop.py", ["--iterations", "2"], "query accuracy"),
    ],
)
def test_example_runs(script, args, expect):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout
