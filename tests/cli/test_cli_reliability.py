"""`metacrl train` and `eval`: nothing lost, nothing mixed, no code run from data files."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from metacrl.cli import main
from metacrl.data import write_fake_miniimagenet
from metacrl.train import atomic_save, load_checkpoint

TINY = [
    *("--iterations", "2", "--val-every", "2", "--val-tasks", "2", "--test-tasks", "2"),
    *("--hidden", "4", "--image-size", "16", "--ways", "2", "--queries", "1"),
    *("--meta-batch", "2", "--crl-steps", "1", "--no-progress"),
]


def run(*args: str) -> int:
    return main(list(args))


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("metacrl: error: ") and len(err.splitlines()) == 1, err
    return err


def records(path: Path) -> list[tuple[str, int]]:
    return [(r["kind"], r["iteration"]) for r in map(json.loads, path.read_text().splitlines())]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "metacrl", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_for_records(proc: subprocess.Popen[str], log: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while (not log.exists() or len(log.read_text().splitlines()) < count) and proc.poll() is None:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()


# ---------------------------------------------------------------- 1. nothing mixed, nothing lost
def test_a_run_killed_before_its_checkpoint_does_not_mix_into_the_next(tmp_path, capsys):
    out = tmp_path / "run"
    long = [*TINY, "--iterations", "400", "--val-every", "400", "--no-metacrl", "--out", str(out)]
    proc = start(long)
    log = out / "base" / "metrics.jsonl"
    wait_for_records(proc, log, 3)
    proc.send_signal(signal.SIGKILL)  # no checkpoint, no clean-up
    proc.communicate(timeout=60)
    assert not (out / "base" / "checkpoint.pt").exists() and log.exists()
    with log.open("a") as handle:  # as if killed in the middle of a write
        handle.write('{"kind": "train", "iteration": 99, "query_lo')

    assert run("train", *TINY, "--no-metacrl", "--resume", "--out", str(out)) == 2
    assert "nothing to resume in" in one_line_error(capsys)
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 0
    assert records(log) == [("train", 1), ("train", 2), ("val", 2)]
    assert "removed" in capsys.readouterr().err
    assert len((out / "base" / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_sigterm_saves_exits_143_and_resume_finishes(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*TINY, "--iterations", "400", "--val-every", "400", "--no-metacrl", "--out", str(out)]
    proc = start(args)
    log = out / "base" / "metrics.jsonl"
    wait_for_records(proc, log, 2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    saved = load_checkpoint(out / "base" / "checkpoint.pt")
    assert 2 <= saved["iteration"] < 400 and not saved["done"]
    assert [k for k, _ in records(log)].count("train") == saved["iteration"]  # none lost
    shorter = [*args, "--iterations", str(saved["iteration"] + 1), "--resume"]
    assert run("train", *shorter) == 0  # resume: one more iteration, then the test
    assert records(log)[-2:] == [("train", saved["iteration"] + 1), ("val", saved["iteration"] + 1)]


# ---------------------------------------------------------------- 2. nothing replaced
def test_a_run_never_replaces_the_results_of_another_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 0
    before = snapshot(out)
    capsys.readouterr()
    other = ["--metacrl", "--seed", "7", "--out", str(out)]
    assert run("train", *TINY, *other) == 2
    err = one_line_error(capsys)
    assert "already holds results (results.md" in err and "--overwrite" in err
    assert snapshot(out) == before
    assert run("train", *TINY, *other, "--resume") == 2  # base/ would vanish from the results
    assert "also holds the run base/" in one_line_error(capsys)
    assert snapshot(out) == before

    assert run("train", *TINY, *other, "--overwrite") == 0
    assert "--overwrite: removed" in capsys.readouterr().err
    assert not (out / "base").exists()  # the seed-0 run is gone with its row
    results = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in results["runs"]] == ["MAML + MetaCRL"]
    assert results["config"]["seed"] == 7


def test_a_users_own_results_file_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.md").write_text("my notes\n")
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 2
    assert "already holds results (results.md)" in one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["results.md"]
    assert (out / "results.md").read_text() == "my notes\n"


# ---------------------------------------------------------------- 3. data files run no code
class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def write_pickles(root: Path, payload: object = None) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        images = rng.integers(0, 256, size=(3 * 3, 16, 16, 3), dtype=np.uint8)
        classes = {f"n{c}": [3 * c, 3 * c + 1, 3 * c + 2] for c in range(3)}
        data = {"image_data": images, "class_dict": classes}
        if payload is not None:
            data["extra"] = payload
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as f:
            pickle.dump(data, f)
    return root


MINI = ["--dataset", "miniimagenet", "--metacrl"]


def test_a_pickle_that_would_run_code_exits_2_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    root = write_pickles(tmp_path / "mini", Exploit(marker))
    out = tmp_path / "run"
    assert run("train", *TINY, *MINI, "--data-root", str(root), "--out", str(out)) == 2
    err = one_line_error(capsys)
    assert "mini-imagenet-cache-train.pkl" in err and "refused to load" in err
    assert not marker.exists() and not out.exists()
    good = write_pickles(tmp_path / "good")  # the same format without the payload trains
    assert run("train", *TINY, *MINI, "--data-root", str(good), "--out", str(out)) == 0


# ---------------------------------------------------------------- 4. modes and --cache-dir
def test_cache_dir_and_file_modes_follow_the_umask(tmp_path, capsys, umask):
    os.umask(0o022)
    root = write_fake_miniimagenet(tmp_path / "mini", (3, 2, 2), images_per_class=3, image_size=8)
    cache = tmp_path / "shared-cache"
    out = tmp_path / "run"
    args = [*TINY, *MINI, "--data-root", str(root), "--cache-dir", str(cache), "--out", str(out)]
    assert run("train", *args) == 0
    assert "caching" not in capsys.readouterr().err  # --no-progress hides the cache bars too
    assert not (root / "cache").exists()
    caches = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in cache.iterdir()}
    names = [f"{split}-16px.{ext}" for split in ("train", "val", "test") for ext in ("npy", "json")]
    assert caches == dict.fromkeys(names, 0o644)
    for path in (out / "metacrl").iterdir():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
    for name in ("results.md", "results.json", "curves.png"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o644, name
    # the cache folder is a setting of the machine: a resume may change it
    moved = [*args[:-4], "--cache-dir", str(tmp_path / "c2"), "--resume", "--out", str(out)]
    assert run("train", *moved) == 0


def test_progress_bars_of_the_cache_show_without_no_progress(tmp_path, capsys):
    root = write_fake_miniimagenet(tmp_path / "mini", (3, 2, 2), images_per_class=3, image_size=8)
    shown = [a for a in TINY if a != "--no-progress"]
    out = tmp_path / "run"
    assert run("train", *shown, *MINI, "--data-root", str(root), "--out", str(out)) == 0
    assert "caching miniImageNet train at 16px" in capsys.readouterr().err


# ---------------------------------------------------------------- 5. no training on test classes
def test_one_pickle_file_as_data_root_exits_2(tmp_path, capsys):
    root = write_pickles(tmp_path / "mini")
    out = tmp_path / "run"
    one = root / "mini-imagenet-cache-test.pkl"
    assert run("train", *TINY, *MINI, "--data-root", str(one), "--out", str(out)) == 2
    err = one_line_error(capsys)
    assert f"--data-root {one} is one file" in err and "training on test classes" in err
    assert not out.exists()


# ---------------------------------------------------------------- 6. one line, exit 2, no files
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--meta-lr", "inf"], "--meta-lr must be a finite number > 0, got inf"),
        (["--meta-lr", "nan"], "--meta-lr must be a finite number > 0, got nan"),
        (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (["--resume"], "nothing to resume in"),
    ],
)
def test_bad_train_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert run("train", *TINY, *args, "--out", str(out)) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_an_out_that_is_a_file_exits_2(tmp_path, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    assert run("train", *TINY, "--out", str(taken)) == 2
    assert f"--out {taken}: {taken} is a file, not a folder" in one_line_error(capsys)
    assert run("train", *TINY, "--out", str(taken / "sub")) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert taken.read_text() == "mine\n" and sorted(tmp_path.iterdir()) == [taken]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert run("train", *TINY, "--metacrl", "--out", str(out)) == 0
    return out / "metacrl" / "best.pt"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inner-steps", "-1"], "--test-inner-steps must be an integer >= 0, got -1"),
        (["--test-tasks", "0"], "--test-tasks must be an integer >= 1, got 0"),
    ],
)
def test_bad_eval_options_exit_2_with_one_line(trained, capsys, args, message):
    assert run("eval", str(trained), *args) == 2
    assert message in one_line_error(capsys)


def test_eval_of_a_checkpoint_with_an_unknown_setting_exits_2(trained, tmp_path, capsys):
    ckpt = load_checkpoint(trained)
    ckpt["config"]["learning_rate"] = 0.1  # written by another version, say
    atomic_save(ckpt, tmp_path / "other.pt")
    assert run("eval", str(tmp_path / "other.pt")) == 2
    err = one_line_error(capsys)
    assert "other.pt has settings metacrl train does not know: ['learning_rate']" in err
    ckpt = load_checkpoint(trained)
    ckpt["config"]["ways"] = "five"
    atomic_save(ckpt, tmp_path / "bad-value.pt")
    assert run("eval", str(tmp_path / "bad-value.pt")) == 2
    assert "--ways must be an integer >= 1, got 'five'" in one_line_error(capsys)


def test_eval_of_a_truncated_or_malicious_checkpoint_exits_2(trained, tmp_path, capsys):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    assert run("eval", str(cut)) == 2
    assert f"{cut} is not a readable checkpoint: it is truncated or corrupt" in one_line_error(
        capsys
    )
    marker = tmp_path / "ran"
    torch.save({"format": "metacrl-checkpoint-v1", "x": Exploit(marker)}, tmp_path / "evil.pt")
    assert run("eval", str(tmp_path / "evil.pt")) == 2
    assert "evil.pt is not a metacrl checkpoint" in one_line_error(capsys)
    assert not marker.exists()


def test_eval_takes_its_test_time_options(trained, capsys):
    for flag in ("--inner-steps", "--test-inner-steps"):  # one option, two names
        assert run("eval", str(trained), flag, "0", "--test-tasks", "2") == 0
        assert "over 2 episodes" in capsys.readouterr().out


# ---------------------------------------------------------------- the Guarantees page
def test_every_test_the_guarantees_page_cites_exists():
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "guarantees.md").read_text()
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(cited) > 30
    for file, name in sorted(cited):
        source = (root / file).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{file}::{name}"
