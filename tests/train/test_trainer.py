"""The training job from Python: a Trainer built by hand from a learner, datasets and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metacrl import MAML, MetaCRLRegularizer
from metacrl.cli.build import build_trainer
from metacrl.data import ConfoundedShapes, TaskLoader
from metacrl.models import Conv4
from metacrl.train import (
    CheckpointError,
    StopRequest,
    Trainer,
    TrainingInterrupted,
    TrainSettings,
    load_checkpoint,
)

from conftest import tiny_config


def shapes(split: str, count: int, seed: int) -> ConfoundedShapes:
    """ConfoundedShapes as tiny_config() describes it: 3-way 1-shot, 2 queries, 16x16."""
    return ConfoundedShapes(
        split, n_way=3, k_shot=1, k_query=2, image_size=16, batchsz=count, meta_batch_size=2,
        seed=seed,
    )  # fmt: skip


def maml() -> MAML:
    torch.manual_seed(0)
    return MAML(Conv4(hidden=4, n_way=3, image_size=16), inner_lr=0.05, inner_steps=3)


def hand_built(run_dir: Path, learner=None, stop=None, **changes) -> Trainer:
    settings = dict(iterations=4, meta_batch=2, val_every=2, label="MAML")
    settings.update(changes)
    tasks = settings["iterations"] * 2
    return Trainer(
        maml() if learner is None else learner,
        shapes("train", tasks, 0),
        shapes("val", 4, 10_000),
        shapes("test", 4, 20_000),
        TrainSettings(**settings),
        run_dir,
        stop=stop,
        progress=False,
    )


def records(trainer: Trainer) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in trainer.log.read()]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_hand_built_trainer_equals_the_one_the_cli_builds(tmp_path):
    by_hand = hand_built(tmp_path / "hand")
    cfg = tiny_config(iterations=4, val_every=2)
    by_cli = build_trainer(cfg, False, tmp_path / "cli", progress=False)
    by_hand.train()
    by_cli.train()
    assert same_weights(by_hand.learner, by_cli.learner)
    assert records(by_hand) == records(by_cli)
    assert by_hand.test().test == by_cli.test().test
    for name in ("checkpoint.pt", "best.pt", "metrics.jsonl", "metrics.csv", "result.json"):
        assert (tmp_path / "hand" / name).is_file(), name
    assert [r["iteration"] for r in records(by_hand) if r["kind"] == "val"] == [2, 4]
    assert json.loads((tmp_path / "hand" / "config.json").read_text()) == {}


def test_resume_continues_at_the_saved_iteration_and_ends_like_a_whole_run(tmp_path):
    stop = StopRequest()
    stop.set()  # as if Ctrl-C came during the first meta-step
    first = hand_built(tmp_path / "split", stop=stop)
    with pytest.raises(TrainingInterrupted) as info:
        first.train()
    assert info.value.iteration == 1
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["iteration"] == 1

    second = hand_built(tmp_path / "split")
    assert second.resume() and second.iteration == 1
    second.train()
    whole = hand_built(tmp_path / "whole")
    whole.train()
    assert second.iteration == whole.iteration == 4
    assert same_weights(second.learner, whole.learner)
    assert records(second) == records(whole)


def test_each_meta_iteration_is_the_step_of_learner_fit(tmp_path):
    trainer = hand_built(tmp_path, iterations=3, val_every=3)
    trainer.train()
    learner = maml()
    history = learner.fit(TaskLoader(shapes("train", 6, 0), batch_size=2), progress=False)
    assert all(
        torch.equal(p, q)
        for p, q in zip(trainer.learner.parameters(), learner.parameters(), strict=True)
    )
    logged = [r["query_loss"] for r in records(trainer) if r["kind"] == "train"]
    assert logged == [h["query_loss"] for h in history]


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    hand_built(tmp_path, config={"seed": 0, "workers": 0}).save()
    again = hand_built(tmp_path, config={"seed": 0, "workers": 2})  # workers may change
    assert again.resume()
    with pytest.raises(CheckpointError, match=r"differs in: seed"):
        hand_built(tmp_path, config={"seed": 1, "workers": 0}).resume()
    model = Conv4(hidden=4, n_way=3, image_size=16)
    regularizer = MetaCRLRegularizer(feature_dim=model.feature_dim, num_factors=4)
    wrapped = regularizer.wrap(MAML(model, inner_lr=0.05, inner_steps=3))
    with pytest.raises(CheckpointError, match=r"differs in: metacrl"):
        hand_built(tmp_path, learner=wrapped, config={"seed": 0, "workers": 0}).resume()


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"iterations": 0}, ValueError, "iterations must be an integer >= 1, got 0"),
        ({"meta_batch": 2.0}, TypeError, "meta_batch must be an integer >= 1, got 2.0"),
        ({"meta_lr": 0}, ValueError, "meta_lr must be a finite number > 0, got 0"),
        ({"workers": -1}, ValueError, "workers must be an integer >= 0, got -1"),
        ({"metric": "f1"}, ValueError, "metric must be one of 'accuracy', 'mse', got 'f1'"),
    ],
)
def test_train_settings_name_a_bad_value(changes, error, message):
    with pytest.raises(error) as info:
        TrainSettings(**{"iterations": 4, "meta_batch": 2, **changes})
    assert str(info.value) == message
