"""What a run writes: logs that never mix or lose records, checkpoints that run no code, modes."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
import torch

from metacrl.cli.build import build_trainer
from metacrl.train import (
    CheckpointError,
    LogTrim,
    MetricsLog,
    StopRequest,
    TornRecordWarning,
    TrainingInterrupted,
    atomic_save,
    load_checkpoint,
)

from conftest import tiny_config


def write_lines(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def record(iteration: int, kind: str = "train") -> str:
    return json.dumps({"kind": kind, "iteration": iteration, "query_loss": 1.0}) + "\n"


# ---------------------------------------------------------------- metrics: nothing lost
def test_a_torn_last_line_is_dropped_and_reported(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    write_lines(log.path, record(1), record(2), '{"kind": "train", "itera')
    with pytest.warns(TornRecordWarning, match=r"metrics\.jsonl: skipped line\(s\) 3,"):
        assert [r["iteration"] for r in log.read()] == [1, 2]


def test_a_torn_line_never_hides_the_records_after_it(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    write_lines(log.path, record(1), '{"kind": "tr\n', record(2), record(3, "val"))
    with pytest.warns(TornRecordWarning, match=r"skipped line\(s\) 2,"):
        records = log.read()
    assert [(r["kind"], r["iteration"]) for r in records] == [
        ("train", 1),
        ("train", 2),
        ("val", 3),
    ]
    with pytest.warns(TornRecordWarning):  # the CSV holds every whole record
        log.write_csv(tmp_path / "metrics.csv")
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_an_append_after_a_torn_last_line_starts_a_new_line(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    write_lines(log.path, record(1), '{"kind": "tr')
    log.append({"kind": "train", "iteration": 2})
    with pytest.warns(TornRecordWarning, match=r"line\(s\) 2,"):
        assert [r["iteration"] for r in log.read()] == [1, 2]


def test_truncate_says_what_it_removed_and_leaves_whole_records(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    write_lines(log.path, record(1), record(2), "garbage\n", record(3))
    assert log.truncate(2) == LogTrim(records=1, torn=[3])
    assert [r["iteration"] for r in log.read()] == [1, 2]  # no warning: nothing torn is left


# ---------------------------------------------------------------- metrics: nothing mixed
def test_a_new_run_drops_the_log_of_a_run_that_died_before_its_checkpoint(tmp_path, capsys):
    cfg = tiny_config(iterations=2, val_every=2)
    # a run killed before its first checkpoint: 5 records and a torn line, no checkpoint.pt
    write_lines(tmp_path / "metrics.jsonl", *(record(i) for i in range(1, 6)), '{"kind"')
    trainer = build_trainer(cfg, False, tmp_path, progress=False)
    assert not trainer.resume()
    trainer.train()
    assert [(r["kind"], r["iteration"]) for r in trainer.log.read()] == [
        ("train", 1),
        ("train", 2),
        ("val", 2),
    ]
    err = capsys.readouterr().err
    assert "metrics.jsonl: removed 5 record(s) after iteration 0 and 1 torn line(s)" in err
    csv_rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 3


def test_a_resumed_run_drops_records_after_its_checkpoint_and_torn_lines(tmp_path):
    cfg = tiny_config(iterations=4, val_every=2)
    stop = StopRequest()
    first = build_trainer(cfg, False, tmp_path, stop=stop, progress=False)
    stop.set()  # saved after iteration 1
    with pytest.raises(TrainingInterrupted):
        first.train()
    with first.log.path.open("a") as handle:  # then it kept going and was killed mid-write
        handle.write(record(2) + record(3) + '{"kind": "train", "iter')
    again = build_trainer(cfg, False, tmp_path, progress=False)
    assert again.resume() and again.iteration == 1
    again.train()
    whole = build_trainer(cfg, False, tmp_path / "whole", progress=False)
    whole.train()
    strip = lambda t: [(r["kind"], r["iteration"]) for r in t.log.read()]  # noqa: E731
    assert strip(again) == strip(whole)


# ---------------------------------------------------------------- checkpoints
def test_run_files_honour_the_umask(tmp_path, umask):
    os.umask(0o027)
    trainer = build_trainer(tiny_config(iterations=2, val_every=2), True, tmp_path, progress=False)
    trainer.train()
    trainer.test()
    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(
        [
            "best.pt",
            "checkpoint.pt",
            "config.json",
            "metrics.csv",
            "metrics.jsonl",
            "result.json",
        ],
        0o640,
    )


def test_an_interrupted_checkpoint_save_keeps_the_previous_file(tmp_path, monkeypatch):
    atomic_save({"iteration": 1}, tmp_path / "checkpoint.pt")
    real_save = torch.save

    def killed_halfway(obj, target):
        real_save(obj, target)
        Path(target).write_bytes(Path(target).read_bytes()[:50])  # half written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"iteration": 2}, tmp_path / "checkpoint.pt")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"format": "metacrl-checkpoint-v1", "x": Exploit(marker)}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt is not a metacrl checkpoint: it asks for"):
        load_checkpoint(tmp_path / "bad.pt")
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 100, 0.5, -10])
def test_a_truncated_checkpoint_names_the_file_on_one_line(tmp_path, keep):
    atomic_save({"w": torch.ones(1000)}, tmp_path / "checkpoint.pt")
    data = (tmp_path / "checkpoint.pt").read_bytes()
    end = int(len(data) * keep) if isinstance(keep, float) else keep
    (tmp_path / "checkpoint.pt").write_bytes(data[:end])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "checkpoint.pt")
    message = str(info.value)
    expected = f"{tmp_path / 'checkpoint.pt'} is not a readable checkpoint: it is truncated"
    assert message.startswith(expected)
    assert "\n" not in message


# ---------------------------------------------------------------- SIGTERM
def test_sigterm_is_a_stop_request_and_a_second_one_aborts():
    stop = StopRequest()
    before = signal.getsignal(signal.SIGTERM)
    with stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert bool(stop) and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
