"""Meta-testing over many episodes: mean score with a 95% confidence interval."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metacrl.learners import Learner
from metacrl.learners.outputs import confidence_interval

__all__ = ["Evaluation", "evaluate_episodes"]


@dataclass(frozen=True)
class Evaluation:
    """Scores of a learner over test episodes.

    Attributes:
        scores: One score per episode: accuracy (classification) or MSE (regression).
        losses: One query loss per episode.
        metric: ``"accuracy"`` or ``"mse"``.
    """

    scores: Tensor
    losses: Tensor
    metric: str

    @property
    def mean(self) -> float:
        """The mean score."""
        return float(self.scores.mean())

    @property
    def ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean."""
        return confidence_interval(self.scores)

    @property
    def episodes(self) -> int:
        """The number of episodes."""
        return int(self.scores.numel())

    def summary(self) -> dict[str, float]:
        """Mean, CI, loss and episode count as a dictionary."""
        return {
            self.metric: self.mean,
            f"{self.metric}_ci95": self.ci95,
            "loss": float(self.losses.mean()),
            "episodes": float(self.episodes),
        }


def evaluate_episodes(
    learner: Learner,
    batches: Iterable[Sequence[Tensor]],
    inner_steps: int | None = None,
) -> Evaluation:
    """Evaluate ``learner`` on every meta-batch of ``batches`` (no meta-gradient).

    Args:
        learner: Any metacrl learner, plain or wrapped.
        batches: Meta-batches ``(x_spt, y_spt, x_qry, y_qry)``, e.g. from a ``TaskLoader``.
        inner_steps: Inner steps at test time (default: the learner's ``test_inner_steps``).

    Returns:
        The per-episode scores and losses.
    """
    scores, losses, metric = [], [], "accuracy"
    for x_spt, y_spt, x_qry, y_qry in batches:
        out = learner.evaluate(x_spt, y_spt, x_qry, y_qry, inner_steps=inner_steps)
        scores.append(out.task_scores.detach().cpu())
        losses.append(out.task_losses.detach().cpu())
        metric = "accuracy" if out.problem == "classification" else "mse"
    if not scores:
        raise ValueError("no episodes to evaluate")
    return Evaluation(torch.cat(scores), torch.cat(losses), metric)
