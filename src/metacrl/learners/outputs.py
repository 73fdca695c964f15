"""What a meta-step and an evaluation return."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

from metacrl.learners.batch import Problem

__all__ = ["EvalOutput", "MetaStepOutput", "confidence_interval"]


def confidence_interval(values: Tensor, z: float = 1.96) -> float:
    """Return the half-width of the normal ``z`` confidence interval of the mean of ``values``."""
    n = values.numel()
    if n < 2:
        return float("nan")
    return z * float(values.double().std(unbiased=True)) / math.sqrt(n)


@dataclass
class MetaStepOutput:
    """The result of one meta-step over a meta-batch.

    Attributes:
        loss: The differentiable meta-loss: call ``loss.backward()`` then step the
            meta-optimiser (once per meta-batch).
        task_losses: Each task's query loss, detached, ``[T]``.
        task_scores: Each task's query accuracy (classification) or MSE (regression), ``[T]``.
        problem: ``"classification"`` or ``"regression"``.
        metrics: Extra scalars to log (MetaCRL terms under ``crl/*``).
    """

    loss: Tensor
    task_losses: Tensor
    task_scores: Tensor
    problem: Problem
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def query_loss(self) -> float:
        """The mean query loss (without MetaCRL terms)."""
        return float(self.task_losses.mean())

    @property
    def accuracy(self) -> float | None:
        """The mean query accuracy, or ``None`` for regression."""
        return float(self.task_scores.mean()) if self.problem == "classification" else None

    @property
    def mse(self) -> float | None:
        """The mean query MSE, or ``None`` for classification."""
        return float(self.task_scores.mean()) if self.problem == "regression" else None

    def summary(self) -> dict[str, float]:
        """Return loss, accuracy or MSE, and the extra metrics as floats."""
        out = {"loss": float(self.loss.detach()), "query_loss": self.query_loss}
        out["accuracy" if self.problem == "classification" else "mse"] = float(
            self.task_scores.mean()
        )
        out.update(self.metrics)
        return out


@dataclass
class EvalOutput:
    """The result of meta-testing on a meta-batch of tasks.

    Attributes:
        task_losses: Each task's query loss after adaptation, ``[T]``.
        task_scores: Each task's query accuracy (classification) or MSE (regression), ``[T]``.
        problem: ``"classification"`` or ``"regression"``.
    """

    task_losses: Tensor
    task_scores: Tensor
    problem: Problem

    @property
    def loss(self) -> float:
        """The mean query loss."""
        return float(self.task_losses.mean())

    @property
    def accuracy(self) -> float | None:
        """The mean query accuracy, or ``None`` for regression."""
        return float(self.task_scores.mean()) if self.problem == "classification" else None

    @property
    def mse(self) -> float | None:
        """The mean query MSE, or ``None`` for classification."""
        return float(self.task_scores.mean()) if self.problem == "regression" else None

    @property
    def ci95(self) -> float:
        """The 95% confidence half-width of the mean score over tasks."""
        return confidence_interval(self.task_scores)
