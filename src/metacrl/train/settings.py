"""The plain settings of a training job, and which settings a resumed run may change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from metacrl.validation import check_choice, check_float, check_int

__all__ = ["RESUMABLE_KEYS", "Metric", "TrainSettings", "config_mismatch"]

Metric = Literal["accuracy", "mse"]
"""The validation and test score: accuracy (higher is better) or MSE (lower is better)."""

RESUMABLE_KEYS = frozenset(
    {"device", "workers", "out", "cache_dir", "iterations", "test_tasks", "test_confounding"}
)
"""Keys of :attr:`TrainSettings.config` that may differ between a checkpoint and the run
that resumes it (the machine and its folders, the length of training and the test-only
settings)."""


@dataclass(frozen=True)
class TrainSettings:
    """How a :class:`~metacrl.train.Trainer` trains: the loop's counts, rates and names.

    Attributes:
        iterations: Meta-iterations (meta-batches) to train.
        meta_batch: Tasks per meta-batch: the global meta-batch, split evenly over processes.
        meta_lr: Adam learning rate of the meta-update (default: ``1e-3``).
        val_every: Validate (keeping the best model) and checkpoint every this many
            iterations, and at the end (default: ``100``).
        workers: Data-loading worker processes (default: ``0``, load in this process).
        metric: ``"accuracy"`` (default; higher is better) or ``"mse"`` (lower is better): the
            score that picks the best model and shows in the progress bar.
        label: The run's name in the progress bar, the log lines and the results row
            (default: ``"learner"``).
        config: Anything that describes the run (default: empty). It is written to
            ``config.json`` and the checkpoints; :meth:`Trainer.resume
            <metacrl.train.Trainer.resume>` refuses a checkpoint whose ``config`` differs
            outside :data:`RESUMABLE_KEYS` (see :func:`config_mismatch`).

    Raises:
        TypeError: If a count is not an integer.
        ValueError: If a count or rate is out of range, or ``metric`` is unknown.

    Example:
        >>> settings = TrainSettings(iterations=300, meta_batch=4, label="MAML")
        >>> settings.meta_lr, settings.val_every, settings.metric
        (0.001, 100, 'accuracy')
        >>> TrainSettings(iterations=0, meta_batch=4)
        Traceback (most recent call last):
            ...
        ValueError: iterations must be an integer >= 1, got 0
    """

    iterations: int
    meta_batch: int
    meta_lr: float = 1e-3
    val_every: int = 100
    workers: int = 0
    metric: Metric = "accuracy"
    label: str = "learner"
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("iterations", self.iterations)
        check_int("meta_batch", self.meta_batch)
        check_float("meta_lr", self.meta_lr, above=0)
        check_int("val_every", self.val_every)
        check_int("workers", self.workers, minimum=0)
        check_choice("metric", self.metric, get_args(Metric))


def config_mismatch(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Return the settings that differ between a checkpoint and the current run.

    Settings in :data:`RESUMABLE_KEYS` (device, workers, out, cache_dir, iterations,
    test_tasks, test_confounding) may differ and are not reported.

    Args:
        saved: The checkpoint's ``config``.
        current: The current run's ``config`` (:attr:`TrainSettings.config`).

    Returns:
        The names of the differing settings, sorted.

    Example:
        >>> config_mismatch({"seed": 0, "iterations": 300}, {"seed": 1, "iterations": 600})
        ['seed']
    """
    keys = (set(saved) | set(current)) - RESUMABLE_KEYS
    return sorted(k for k in keys if saved.get(k) != current.get(k))
