"""Trained runs as the benchmark scripts use them: rebuild a checkpoint's learner, test it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metacrl.cli.config import TrainConfig
    from metacrl.learners import Learner
    from metacrl.typing import EvalConfounding


def load_learner(
    path: Path, fill: Mapping[str, Any] | None = None
) -> tuple[Learner, TrainConfig, dict[str, Any]]:
    """Rebuild the learner of a checkpoint written by ``metacrl train`` on the CPU.

    A ConfoundedClipart run whose stored ``data_root`` is gone reads the drawings from
    ``$METACRL_CLIPART``.

    Args:
        path: The checkpoint (``best.pt`` or ``checkpoint.pt``).
        fill: Settings to use where the stored configuration has none (older checkpoints).

    Returns:
        ``(learner, config, info)``: ``info`` holds ``iteration``, ``metacrl`` and ``filled``
        (the settings taken from ``fill``).
    """
    from metacrl.cli.build import build_learner, build_model
    from metacrl.cli.config import TrainConfig
    from metacrl.train import load_checkpoint

    ckpt = load_checkpoint(path, map_location="cpu")
    saved = dict(ckpt["config"])
    filled = {k: v for k, v in (fill or {}).items() if k not in saved}
    root = saved.get("data_root")
    override = os.environ.get("METACRL_CLIPART")
    if saved.get("dataset") == "confounded-clipart" and override and not Path(root or "").is_dir():
        saved["data_root"] = override
    cfg = TrainConfig(**saved, **filled).resolved()
    metacrl = bool(ckpt["metacrl"])
    learner = build_learner(cfg, build_model(cfg), metacrl)
    learner.load_state_dict(ckpt["learner"])
    info = {"iteration": ckpt.get("iteration"), "metacrl": metacrl, "filled": filled}
    return learner, cfg, info


def score_test_tasks(
    cfg: TrainConfig, learner: Learner, kind: EvalConfounding, tasks: int | None = None
) -> dict[str, float]:
    """The learner's scores on the run's test episodes, neutral or as conflict tasks.

    Args:
        cfg: The run's resolved configuration.
        learner: The trained learner.
        kind: ``"neutral"`` or ``"conflict"`` test tasks (the same episodes otherwise).
        tasks: How many episodes (default: ``cfg.test_tasks``).

    Returns:
        :meth:`~metacrl.train.Evaluation.summary` of the evaluation.
    """
    from metacrl.cli.build import TEST_SEED, build_dataset
    from metacrl.data import TaskLoader
    from metacrl.train.evaluate import evaluate_episodes

    count = cfg.test_tasks if tasks is None else tasks
    episodes = build_dataset(
        dataclasses.replace(cfg, test_confounding=kind), "test", count, TEST_SEED
    )
    loader = TaskLoader(episodes, batch_size=cfg.meta_batch, num_workers=cfg.workers)
    summary: dict[str, float] = evaluate_episodes(learner, loader).summary()
    return summary
