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
        ("higher_maml.py", ["--iterations", "2", "--test-tasks", "4"], "| + MetaCRL |"),
    ],
)
def test_example_runs(script, args, expect):
    _run(script, args, expect)


def test_miniimagenet_example_runs_on_a_tiny_folder_in_the_real_format(tmp_path):
    from metacrl.data import write_fake_miniimagenet

    write_fake_miniimagenet(
        tmp_path, classes_per_split=(6, 5, 5), images_per_class=17, image_size=20
    )
    args = [
        "--data-root",
        str(tmp_path),
        "--iterations",
        "2",
        "--eval-every",
        "2",
        "--test-episodes",
        "2",
        "--image-size",
        "16",
        "--meta-batch",
        "2",
        "--workers",
        "0",
    ]
    _run("example.py", [*args, "--metacrl"], "test accuracy")


def _run(script, args, expect):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout
