"""A capacity control for MetaCRL: the base learner with one more meta-learned linear map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metacrl.learners.learner import Learner
from metacrl.learners.losses import TaskLoss
from metacrl.learners.outputs import EvalOutput, MetaStepOutput
from metacrl.learners.protocol import PluggableLearner
from metacrl.typing import Predictor
from metacrl.validation import check_int

__all__ = ["CapacityControl", "LinearMap"]


class LinearMap:
    """The head transform ``g -> g W`` of :class:`CapacityControl` (a ``HeadTransform``).

    It has no per-task state: ``state`` is an empty tensor per task, so that the ``vmap``
    backend can split it over tasks like any other transform's.

    Args:
        weight: The map ``W``, ``[feature_dim, feature_dim]``.

    Example:
        >>> t = LinearMap(torch.eye(3))
        >>> t.prepare(torch.randn(5, 3))
        >>> t.state.shape, t.transform(torch.ones(2, 3)).tolist()
        (torch.Size([0]), [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    """

    def __init__(self, weight: Tensor, state: Tensor | None = None) -> None:
        self.weight = weight
        self._state = state

    def prepare(self, support_features: Tensor) -> None:
        """Record the task axes of the support features (nothing else depends on the task)."""
        self._state = support_features.new_zeros(*support_features.shape[:-2], 0)

    def transform(self, features: Tensor) -> Tensor:
        """Return ``features @ W``, ``[..., n, feature_dim]``."""
        return features @ self.weight

    @property
    def state(self) -> Tensor:
        """An empty tensor with the task axes of the prepared support features."""
        if self._state is None:
            raise RuntimeError("the map is not prepared yet: call prepare() first")
        return self._state

    def with_state(self, state: Tensor) -> LinearMap:
        """The same map (its state is empty: only the task axes change)."""
        return LinearMap(self.weight, state)


class CapacityControl(Learner):
    """The base learner with a meta-learned ``d x d`` linear map between features and head.

    The control arm for MetaCRL's extra parameters: the head sees ``g(x) W`` (``W`` starts as
    the identity), ``W`` is held fixed in the inner loop like MetaCRL's ``Xi`` and trained by
    the ordinary meta-loss only (no causal step, no gates, no penalties). If MetaCRL's gain
    were only the capacity of its ``feature_dim x num_factors`` matrix, this arm would match it.

    Args:
        learner: The base learner (any :class:`~metacrl.learners.PluggableLearner`).
        feature_dim: The size ``d`` of the base model's features.

    Example:
        >>> control = CapacityControl(MAML(model, inner_lr=0.1, inner_steps=1), 8)
        >>> out = control.meta_step(x, y, x, y)
        >>> out.loss.backward()
        >>> control.weight.grad.shape
        torch.Size([8, 8])
        >>> control.evaluate(x, y, x, y).task_scores.shape
        torch.Size([2])
    """

    def __init__(self, learner: PluggableLearner, feature_dim: int) -> None:
        super().__init__()
        self.learner = learner
        self.feature_dim = check_int("feature_dim", feature_dim)
        self.weight = nn.Parameter(torch.eye(feature_dim))

    @property
    def task_loss(self) -> TaskLoss:
        """The base learner's task loss."""
        return self.learner.task_loss

    def _map(self) -> LinearMap:
        return LinearMap(self.weight)

    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """The base learner's meta-step with the head seeing ``g(x) W``.

        See :meth:`Learner.meta_step <metacrl.learners.Learner.meta_step>`.
        """
        batch = self.learner.as_batch(x_spt, y_spt, x_qry, y_qry)
        return self.learner.meta_step_on(batch, self._map)

    def evaluate(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        x_qry: Tensor,
        y_qry: Tensor,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test with the map (see :meth:`Learner.evaluate`)."""
        batch = self.learner.as_batch(x_spt, y_spt, x_qry, y_qry)
        return self.learner.evaluate_on(batch, self._map, inner_steps)

    def adapt(self, x_spt: Tensor, y_spt: Tensor, inner_steps: int | None = None) -> Predictor:
        """Adapt to one task with the map (see :meth:`Learner.adapt`)."""
        return self.learner.adapt(x_spt, y_spt, inner_steps, transform=self._map())
