"""What a meta-step and an evaluation return."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

from metacrl.typing import Problem

__all__ = ["EvalOutput", "MetaStepOutput", "confidence_interval"]


def confidence_interval(values: Tensor, z: float = 1.96) -> float:
    """Return the half-width of the normal ``z`` confidence interval of the mean of ``values``.

    The half-width is ``z * std(values) / sqrt(n)`` with the unbiased (``n - 1``) standard
    deviation, computed in float64.

    Args:
        values: The per-task (or per-episode) scores; any shape, all elements count.
        z: The normal quantile (default: ``1.96``, a 95% interval).

    Returns:
        The half-width as a float, or ``nan`` when ``values`` has fewer than two elements.

    Example:
        >>> round(confidence_interval(torch.tensor([0.5, 0.7, 0.6, 0.8])), 4)
        0.1265
        >>> confidence_interval(torch.tensor([0.5]))
        nan
    """
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
        metrics: Extra scalars to log (MetaCRL terms under ``crl/*``; default: empty).

    Example:
        >>> out = MetaStepOutput(loss=torch.tensor(0.7, requires_grad=True),
        ...                      task_losses=torch.tensor([0.6, 0.8]),
        ...                      task_scores=torch.tensor([0.5, 1.0]), problem="classification")
        >>> round(out.query_loss, 4), out.accuracy, out.mse
        (0.7, 0.75, None)
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
        """Return loss, accuracy or MSE, and the extra metrics as floats.

        Returns:
            ``{"loss", "query_loss", "accuracy" or "mse", **metrics}``: ``loss`` is the full
            meta-loss (MetaCRL terms included in the joint schedule), ``query_loss`` the mean
            query loss alone.

        Example:
            >>> out = MetaStepOutput(torch.tensor(0.5), torch.tensor([0.5]),
            ...                      torch.tensor([0.25]), "regression", {"crl/task": 0.4})
            >>> out.summary()
            {'loss': 0.5, 'query_loss': 0.5, 'mse': 0.25, 'crl/task': 0.4}
        """
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

    Example:
        >>> out = EvalOutput(torch.tensor([0.9, 0.5]), torch.tensor([0.6, 0.8]),
        ...                  "classification")
        >>> round(out.loss, 4), round(out.accuracy, 4), out.mse, round(out.ci95, 4)
        (0.7, 0.7, None, 0.196)
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
