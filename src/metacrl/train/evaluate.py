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

    Example:
        >>> ev = Evaluation(torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.5]), "accuracy")
        >>> round(ev.mean, 2), ev.episodes, sorted(ev.summary())
        (0.7, 2, ['accuracy', 'accuracy_ci95', 'episodes', 'loss'])
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
        """Mean, CI, loss and episode count as a dictionary.

        Returns:
            ``{metric: mean, f"{metric}_ci95": half-width, "loss": mean loss,
            "episodes": count}``, all floats (the ``test`` field of a results row).

        Example:
            >>> ev = Evaluation(torch.tensor([0.5, 0.7]), torch.tensor([1.0, 2.0]), "accuracy")
            >>> s = ev.summary()
            >>> round(s["accuracy"], 4), round(s["accuracy_ci95"], 4), s["loss"], s["episodes"]
            (0.6, 0.196, 1.5, 2.0)
        """
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

    Raises:
        ValueError: If ``batches`` is empty.

    Example:
        >>> from metacrl.data import Sinusoid, TaskLoader
        >>> model = FeatureHead(nn.Sequential(nn.Linear(1, 16), nn.ReLU()), nn.Linear(16, 1),
        ...                     feature_dim=16)
        >>> learner = MAML(model, inner_lr=0.01, inner_steps=1, loss="mse")
        >>> result = evaluate_episodes(learner, TaskLoader(Sinusoid(batchsz=6), batch_size=3))
        >>> result.metric, result.episodes
        ('mse', 6)
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
