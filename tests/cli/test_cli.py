"""`metacrl train` / `metacrl eval` end to end on tiny settings; resume; error paths."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metacrl.cli import TrainConfig, build_parser, main, options_markdown
from metacrl.cli.build import build_dataset, build_learner, build_model, build_trainer
from metacrl.cli.config import option_help, option_type
from metacrl.cli.sources import load_config
from metacrl.learners import CapacityControl
from metacrl.regularizer import DEFAULTS
from metacrl.train import StopRequest, TrainingInterrupted, load_checkpoint

from conftest import tiny_config
from helpers import write_clipart

TINY = [
    "--iterations",
    "6",
    "--val-every",
    "3",
    "--val-tasks",
    "4",
    "--test-tasks",
    "4",
    "--hidden",
    "4",
    "--image-size",
    "16",
    "--ways",
    "3",
    "--queries",
    "2",
    "--meta-batch",
    "2",
    "--no-progress",
]


def run(*args: str) -> int:
    return main(list(args))


def test_train_runs_both_arms_and_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "| MAML | " in printed and "| MAML + MetaCRL | " in printed
    for arm in ("base", "metacrl"):
        for name in ("checkpoint.pt", "best.pt", "metrics.jsonl", "metrics.csv", "result.json"):
            assert (out / arm / name).is_file(), (arm, name)
        records = [
            json.loads(line) for line in (out / arm / "metrics.jsonl").read_text().splitlines()
        ]
        assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
        assert [r["iteration"] for r in records if r["kind"] == "val"] == [3, 6]
        assert load_checkpoint(out / arm / "checkpoint.pt")["done"] is True
    results = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in results["runs"]] == ["MAML", "MAML + MetaCRL"]
    assert all(r["test"]["episodes"] == 4 for r in results["runs"])
    assert (out / "results.md").read_text().startswith("ConfoundedShapes")
    assert (out / "curves.png").stat().st_size > 1000
    assert not list(out.rglob("*.tmp"))  # no half-written files


def test_train_on_confounded_clipart_reads_the_drawings_of_data_root(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default cache folder
    art = write_clipart(tmp_path / "png", classes=15, per_class=20, size=10)
    out = tmp_path / "run"
    args = ["--dataset", "confounded-clipart", "--data-root", str(art), "--metacrl"]
    assert run("train", *TINY, *args, "--iterations", "2", "--out", str(out)) == 0
    assert capsys.readouterr().out.count("| MAML + MetaCRL | ") == 1
    assert (out / "results.md").read_text().startswith("ConfoundedClipart (switch, rho=0.9)")
    assert sorted(p.name for p in (tmp_path / "xdg" / "metacrl").iterdir()) == [
        "clipart-16.json",
        "clipart-16.npy",
    ]
    missing = ["--dataset", "confounded-clipart", "--data-root", str(tmp_path / "none")]
    assert run("train", *TINY, *missing, "--out", str(tmp_path / "x")) == 2
    assert "apt-get install openclipart-png" in capsys.readouterr().err


def test_both_arms_share_the_initialisation_and_the_task_stream(tmp_path):
    out = tmp_path / "run"
    assert run("train", *TINY, "--out", str(out), "--iterations", "1") == 0
    base = load_checkpoint(out / "base" / "checkpoint.pt")["config"]
    crl = load_checkpoint(out / "metacrl" / "checkpoint.pt")["config"]
    assert base == crl
    cfg = TrainConfig(**base).resolved()
    torch.manual_seed(123)  # build_trainer seeds torch itself
    a = build_trainer(cfg, False, tmp_path / "a", progress=False)
    b = build_trainer(cfg, True, tmp_path / "b", progress=False)
    wrapped = b.learner.state_dict()
    for name, value in a.learner.state_dict().items():  # the wrapped learner's keys end alike
        (match,) = [k for k in wrapped if k.endswith("." + name)]
        assert torch.equal(value, wrapped[match]), name
    assert all(torch.equal(x, y) for x, y in zip(a.train_set[1], b.train_set[1], strict=True))


def test_train_with_the_vmap_backend_matches_func(tmp_path):
    """--backend vmap trains (TaskBatchNorm backbone) and gives func's meta-step, batched."""
    out = tmp_path / "run"
    assert run("train", *TINY, "--backend", "vmap", "--iterations", "2", "--out", str(out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["label"] for r in results["runs"]] == ["MAML", "MAML + MetaCRL"]
    cfg_vmap = tiny_config(backend="vmap")
    cfg_func = tiny_config(backend="func")
    torch.manual_seed(0)
    model_a = build_model(cfg_vmap)
    a = build_learner(cfg_vmap, model_a, metacrl=True)
    torch.manual_seed(0)
    model_b = build_model(cfg_func)
    b = build_learner(cfg_func, model_b, metacrl=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model_a.modules())
    model_b.load_state_dict(model_a.state_dict(), strict=False)
    task = build_dataset(cfg_vmap, "train", 1, seed=0)[0]
    batch = [t[None].repeat(2, *[1] * t.dim()) for t in task]
    out_a, out_b = a.meta_step(*batch), b.meta_step(*batch)
    torch.testing.assert_close(out_a.loss, out_b.loss, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metacrl", [False, True])
def test_resume_after_an_interruption_matches_an_uninterrupted_run(tmp_path, metacrl):
    cfg = tiny_config()
    whole = build_trainer(cfg, metacrl, tmp_path / "whole", progress=False)
    whole.train()

    stop = StopRequest()
    first = build_trainer(cfg, metacrl, tmp_path / "split", stop=stop, progress=False)
    meta_step = first.learner.meta_step
    calls = []

    def step_then_stop(*batch):
        calls.append(1)
        if len(calls) == 3:  # as if Ctrl-C arrived during the third meta-step
            stop.set()
        return meta_step(*batch)

    first.learner.meta_step = step_then_stop
    with pytest.raises(TrainingInterrupted) as info:
        first.train()
    assert info.value.iteration == 3

    second = build_trainer(cfg, metacrl, tmp_path / "split", progress=False)
    assert second.resume() and second.iteration == 3
    second.train()
    for (name, p), q in zip(
        whole.learner.state_dict().items(), second.learner.state_dict().values(), strict=True
    ):
        if torch.is_tensor(p):
            assert torch.equal(p, q), name
    log = lambda t: [  # noqa: E731
        {k: v for k, v in r.items() if k != "seconds"} for r in t.log.read()
    ]
    assert log(whole) == log(second)
    assert whole.test().test == second.test().test


def test_resume_drops_log_records_after_the_checkpoint(tmp_path):
    cfg = tiny_config(iterations=4, val_every=2)
    trainer = build_trainer(cfg, False, tmp_path, progress=False)
    trainer.train()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["iteration"], state["done"] = 2, False
    torch.save(state, tmp_path / "checkpoint.pt")  # as if killed after iteration 2's checkpoint
    again = build_trainer(cfg, False, tmp_path, progress=False)
    again.resume()
    assert max(r["iteration"] for r in again.log.read()) == 2


def test_ctrl_c_saves_and_resume_finishes_the_run(tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--iterations", "150", "--val-every", "150", "--no-metacrl", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "metacrl", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "base" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 2) and proc.poll() is None:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr
    saved = load_checkpoint(out / "base" / "checkpoint.pt")
    assert 2 <= saved["iteration"] < 150 and saved["done"] is False
    assert (
        len([r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "train"])
        == saved["iteration"]
    )

    done = subprocess.run(
        [sys.executable, "-m", "metacrl", "train", *args, "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out / "base" / "checkpoint.pt")["iteration"] == 150
    assert "| MAML | " in done.stdout


def test_eval_prints_the_test_accuracy_of_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--metacrl", "--out", str(out)) == 0
    capsys.readouterr()
    assert run("eval", str(out / "metacrl" / "best.pt"), "--test-tasks", "6") == 0
    printed = capsys.readouterr().out
    assert "MAML + MetaCRL" in printed and "over 6 episodes" in printed


def test_conflict_test_tasks_from_train_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 0
    assert (out / "results.md").read_text().startswith("ConfoundedShapes (switch, rho=0.9) ")
    # a test-only setting: the finished run resumes with it and is scored again, not retrained
    conflict = ["--test-confounding", "conflict"]
    assert run("train", *TINY, "--no-metacrl", *conflict, "--resume", "--out", str(out)) == 0
    table = (out / "results.md").read_text()
    assert table.startswith("ConfoundedShapes (switch, rho=0.9; conflict test tasks) ")
    assert load_checkpoint(out / "base" / "checkpoint.pt")["iteration"] == 6
    capsys.readouterr()
    best = str(out / "base" / "best.pt")
    assert run("eval", best, *conflict, "--test-tasks", "6") == 0
    assert "MAML (iteration " in (printed := capsys.readouterr().out)
    assert "over 6 conflict episodes" in printed
    assert run("eval", best, "--test-tasks", "6") == 0  # the run's own: neutral
    assert capsys.readouterr().out.rstrip().endswith("over 6 episodes")


def test_eval_refuses_conflict_tasks_of_a_dataset_without_nuisances(tmp_path, capsys):
    from metacrl.train import atomic_save

    config = TrainConfig(dataset="sinusoid").as_dict()
    atomic_save({"learner": {}, "config": config, "metacrl": False}, tmp_path / "sin.pt")
    assert run("eval", str(tmp_path / "sin.pt"), "--test-confounding", "conflict") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "metacrl: error: --test-confounding conflict is for confounded-shapes and "
        "confounded-clipart, not sinusoid"
    )


def test_test_confounding_reaches_the_test_split_only(tmp_path, monkeypatch):
    cfg = tiny_config(test_confounding="conflict")
    kinds = {s: build_dataset(cfg, s, 4, seed=0).eval_confounding for s in ("val", "test")}
    assert kinds == {"val": "neutral", "test": "conflict"}
    assert build_dataset(cfg, "train", 4, seed=0).eval_confounding == "neutral"
    episode = build_dataset(cfg, "test", 4, seed=0).episode(0)
    assert episode.query_confounder is not None
    assert build_dataset(tiny_config(), "test", 4, seed=0).eval_confounding == "neutral"
    art = write_clipart(tmp_path / "png", classes=15, per_class=20, size=10)
    clip = tiny_config(
        dataset="confounded-clipart", data_root=str(art), test_confounding="conflict"
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default cache folder
    test_set, val_set = (build_dataset(clip, s, 4, seed=0) for s in ("test", "val"))
    assert (test_set.eval_confounding, val_set.eval_confounding) == ("conflict", "neutral")
    assert test_set.episode(0).query_confounder is not None


def test_test_confounding_is_a_test_only_setting_for_resume():
    from metacrl.train import config_mismatch

    base = tiny_config().as_dict()
    other = tiny_config(test_confounding="conflict").as_dict()
    assert config_mismatch(base, other) == []
    older = {k: v for k, v in base.items() if k != "test_confounding"}  # before the option
    assert config_mismatch(older, other) == []


def test_config_file_sets_options_and_the_command_line_overrides_it(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'learner = "anil"\niterations = 2\ninner-steps = 1\nval_every = 1\nseed = 3\n'
    )
    out = tmp_path / "run"
    assert (
        run(
            "train",
            *TINY,
            "--config",
            str(config),
            "--iterations",
            "3",
            "--no-metacrl",
            "--out",
            str(out),
        )
        == 0
    )
    saved = load_checkpoint(out / "base" / "checkpoint.pt")
    assert saved["config"]["learner"] == "anil"
    assert saved["config"]["inner_steps"] == 1 and saved["config"]["seed"] == 3
    assert saved["iteration"] == 3  # the command line wins


def test_sinusoid_regression_end_to_end(tmp_path, capsys):
    out = tmp_path / "sin"
    assert (
        run(
            "train",
            "--dataset",
            "sinusoid",
            "--shots",
            "5",
            "--queries",
            "5",
            "--iterations",
            "4",
            "--val-every",
            "2",
            "--val-tasks",
            "4",
            "--test-tasks",
            "4",
            "--no-progress",
            "--out",
            str(out),
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Sinusoid 5-shot" in printed and "test MSE" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "imagenet"], "--dataset must be one of 'confounded-shapes', "),
        (["--learner", "reptile"], "--learner must be one of 'maml', "),
        (["--backbone", "vgg"], "--backbone must be one of"),
        (["--dataset", "miniimagenet"], "needs --data-root"),
        (["--dataset", "miniimagenet", "--data-root", "/nonexistent/mini"], "/nonexistent/mini"),
        (["--dataset", "sinusoid", "--learner", "protonet"], "protonet is a classifier"),
        (["--learner", "protonet", "--backend", "vmap"], "not protonet"),
        (["--ways", "0"], "--ways must be an integer >= 1, got 0"),
        (["--inner-steps", "-1"], "--inner-steps must be an integer >= 0, got -1"),
        (["--meta-lr", "0"], "--meta-lr must be a finite number > 0, got 0.0"),
        (["--lambda-inv", "-1"], "--lambda-inv must be a finite number >= 0"),
        (["--rho", "1.5"], "--rho must be a number in [0, 1], got 1.5"),
        (["--basis", "orthonormal", "--num-factors", "999"], "num_factors <= feature_dim"),
        (["--xi-lr", "0"], "--xi-lr must be a finite number > 0, got 0.0"),
        (
            ["--dataset", "sinusoid", "--test-confounding", "conflict"],
            "--test-confounding conflict is for confounded-shapes and confounded-clipart, not "
            "sinusoid",
        ),
        (
            ["--dataset", "miniimagenet", "--data-root", "/data", "--test-confounding", "conflict"],
            "not miniimagenet",
        ),
        (["--test-confounding", "opposite"], "--test-confounding must be one of 'neutral', "),
        (["--ways", "1", "--test-confounding", "conflict"], "conflict tasks need n_way >= 2"),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"],
            "device",
        ),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert run("train", *TINY, *args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("metacrl: error:") and message in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_config_key_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("iterations = 2\nlearning_rate = 0.1\n")
    assert run("train", "--config", str(config), "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "unknown key 'learning_rate'" in err and not (tmp_path / "run").exists()
    config.write_text('iterations = "many"\n')
    assert run("train", "--config", str(config), "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert f"config file {config}: --iterations must be an integer >= 1, got 'many'" in err
    config.write_text('backend = "jax"\n')
    assert run("train", "--config", str(config), "--out", str(tmp_path / "run")) == 2
    assert "--backend must be one of 'func', 'higher', 'vmap', got 'jax'" in capsys.readouterr().err


def test_resume_with_other_settings_exits_2_and_keeps_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 0
    before = (out / "base" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert (
        run("train", *TINY, "--no-metacrl", "--inner-lr", "0.3", "--resume", "--out", str(out)) == 2
    )
    err = capsys.readouterr().err
    assert "from another configuration" in err and "inner_lr" in err
    assert (out / "base" / "checkpoint.pt").read_bytes() == before
    # without --resume an existing run is not overwritten either
    assert run("train", *TINY, "--no-metacrl", "--out", str(out)) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_eval_of_a_file_that_is_not_a_checkpoint_exits_2(tmp_path, capsys):
    bogus = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, bogus)
    assert run("eval", str(bogus)) == 2
    assert "not a metacrl checkpoint" in capsys.readouterr().err
    assert run("eval", str(tmp_path / "missing.pt")) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    from metacrl.train import atomic_save

    atomic_save({"learner": {}, "config": {}, "metacrl": False}, tmp_path / "by_hand.pt")
    assert run("eval", str(tmp_path / "by_hand.pt")) == 2  # a Trainer built by hand, say
    assert "holds no learner trained by metacrl train" in capsys.readouterr().err


def test_help_explains_every_option():
    done = subprocess.run(
        [sys.executable, "-m", "metacrl", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    for flag in (
        "--dataset",
        "--data-root",
        "--learner",
        "--backbone",
        "--metacrl",
        "--no-metacrl",
        "--ways",
        "--shots",
        "--queries",
        "--inner-lr",
        "--inner-steps",
        "--meta-batch",
        "--iterations",
        "--first-order",
        "--backend",
        "--device",
        "--seed",
        "--out",
        "--config",
        "--resume",
    ):
        assert flag in done.stdout, flag
    assert Path(sys.executable).exists()


# ---------------------------------------------------------------- one home per rule
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
BEGIN, END = "<!-- options: begin -->", "<!-- options: end -->"
SETTINGS = [f.name for f in dataclasses.fields(TrainConfig)]


def test_the_options_table_of_the_docs_is_the_generated_one():
    text = DOCS.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    table = text.split(BEGIN)[1].split(END)[0].strip("\n") + "\n"
    assert table == options_markdown(), (
        "docs/cli.md's options table is stale; replace it with the output of: python -c "
        '"from metacrl.cli import options_markdown; print(options_markdown())"'
    )


def test_each_setting_has_one_help_text_shown_by_help_the_docs_and_the_class(capsys):
    squash = lambda text: re.sub(r"\s+", "", text)  # noqa: E731  (argparse re-wraps lines)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    helps = squash(capsys.readouterr().out)
    table = options_markdown()
    for name in SETTINGS:
        text = TrainConfig.__dataclass_fields__[name].metadata["help"]
        assert squash(option_help(name)) in helps, name
        assert text[1:] in table, name
        assert f"{name}: {text[0].upper()}{text[1:]}" in TrainConfig.__doc__, name


def test_option_types_come_from_the_field_types():
    parser = build_parser()
    for name in SETTINGS:
        flag = "--" + name.replace("_", "-")
        kind, choices, _ = option_type(name)
        if kind is bool:
            on = vars(parser.parse_args(["train", flag]))[name]
            off = vars(parser.parse_args(["train", "--no-" + flag[2:]]))[name]
            assert (on, off) == (True, False), name
        elif kind in (int, float):
            value = vars(parser.parse_args(["train", flag, "7"]))[name]
            assert value == 7 and type(value) is kind, name
        else:
            value = choices[-1] if choices else "some/where"
            assert vars(parser.parse_args(["train", flag, value]))[name] == value, name
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--ways", "2.5"])


@pytest.mark.parametrize(
    ("dataset", "learner", "inner_lr", "image_size", "backbone"),
    [
        ("confounded-shapes", "maml", 0.05, 32, "conv4"),
        ("confounded-shapes", "anil", 0.1, 32, "conv4"),
        ("miniimagenet", "metasgd", 0.01, 84, "conv4"),
        ("miniimagenet", "anil", 0.1, 84, "conv4"),
        ("sinusoid", "maml", 0.01, 32, "mlp"),
    ],
)
def test_dataset_dependent_defaults(dataset, learner, inner_lr, image_size, backbone):
    cfg = TrainConfig(dataset=dataset, learner=learner, data_root="/data").resolved()
    assert (cfg.inner_lr, cfg.image_size, cfg.backbone) == (inner_lr, image_size, backbone)
    given = TrainConfig(dataset=dataset, learner=learner, data_root="/data", inner_lr=0.3)
    assert given.resolved().inner_lr == 0.3


def test_the_causal_step_options_reach_the_regularizer():
    cfg = TrainConfig(basis="orthonormal", xi_lr=0.05, gr_lr=0.3, num_factors=16).resolved()
    learner = build_learner(cfg, build_model(cfg), metacrl=True)
    reg = learner.regularizer
    assert (reg.basis, reg.xi_lr, reg.gr_lr, reg.num_factors) == ("orthonormal", 0.05, 0.3, 16)
    default = build_learner(TrainConfig().resolved(), build_model(cfg), metacrl=True).regularizer
    assert (default.basis, default.xi_lr, default.gr_lr) == (
        DEFAULTS.basis,
        DEFAULTS.xi_lr,
        DEFAULTS.gr_lr,
    )


def test_linear_map_makes_the_base_arm_the_capacity_control(tmp_path, capsys):
    cfg = TrainConfig(linear_map=True, hidden=16).resolved()
    model = build_model(cfg)
    control = build_learner(cfg, model, metacrl=False)
    assert isinstance(control, CapacityControl) and control.weight.shape == (64, 64)
    assert type(build_learner(cfg, model, metacrl=True)).__name__ == "MetaCRLLearner"
    assert run("train", *TINY, "--no-metacrl", "--linear-map", "--out", str(tmp_path)) == 0
    assert "MAML + linear map" in capsys.readouterr().out


def test_numbers_of_a_config_file_become_the_field_type(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("inner_lr = 1\nrho = 0\nways = 3\n")
    values = load_config(config)
    assert values == {"inner_lr": 1.0, "rho": 0.0, "ways": 3}
    assert [type(values[k]) for k in ("inner_lr", "rho", "ways")] == [float, float, int]
    config.write_text("ways = 3.0\n")
    with pytest.raises(ValueError, match="--ways must be an integer >= 1, got 3.0"):
        load_config(config)


def test_a_bad_value_from_python_is_a_one_line_config_error():
    from metacrl.cli import ConfigError

    for bad, message in [
        ({"first_order": "yes"}, "--first-order must be true or false, got 'yes'"),
        ({"out": 3}, "--out must be a string, got 3"),
        ({"seed": None}, "--seed must be an integer >= 0, got None"),
    ]:
        with pytest.raises(ConfigError) as info:
            TrainConfig(**bad).resolved()
        assert str(info.value) == message


def test_the_builders_want_a_resolved_config():
    from metacrl.cli import ConfigError

    with pytest.raises(ConfigError, match="backbone is not set"):
        build_model(TrainConfig())
    cfg = TrainConfig().resolved()
    with pytest.raises(ConfigError, match="inner_lr is not set"):
        build_learner(dataclasses.replace(cfg, inner_lr=None), build_model(cfg), metacrl=False)
