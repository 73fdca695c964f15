"""What a plug-in such as MetaCRL needs of a learner: a small, public protocol."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from metacrl.learners.features import TaskFeatures
from metacrl.learners.losses import TaskLoss
from metacrl.learners.meta_batch import MetaBatch
from metacrl.learners.outputs import EvalOutput, MetaStepOutput
from metacrl.typing import HeadTransform, LossFn, Predictor, TransformFactory

__all__ = ["PluggableLearner"]


@runtime_checkable
class PluggableLearner(Protocol):
    """The interface between a learner and a plug-in that changes what its head sees.

    Every reference learner (:class:`~metacrl.learners.MetaLearner` and its subclasses)
    implements it; a user's own learner that implements it can be wrapped by
    :meth:`MetaCRLRegularizer.wrap <metacrl.MetaCRLRegularizer.wrap>` too. The plug-in

    * validates a meta-batch once (:meth:`as_batch`);
    * reads every task's features at θ (:meth:`task_features`, or :meth:`shared_task_features`
      when the meta-step can reuse that forward pass);
    * solves tasks on head inputs of its own making with the backbone frozen (:meth:`head_task`);
    * runs the learner's meta-step, evaluation or adaptation with a per-task transform of the
      head's input (:meth:`meta_step_on`, :meth:`evaluate_on`, :meth:`adapt`).

    Example:
        >>> isinstance(ProtoNet(model), PluggableLearner), isinstance(model, PluggableLearner)
        (True, False)
    """

    model: nn.Module
    """The model (``features``, ``head``, ``feature_dim``)."""
    task_loss: TaskLoss
    """The task loss (``task_loss.checked(num_labels)`` gives the checked loss function)."""

    def as_batch(self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor) -> MetaBatch:
        """Validate a meta-batch and move it to the learner's device and dtype."""

    def meta_step_on(
        self, batch: MetaBatch, transforms: TransformFactory | None = None
    ) -> MetaStepOutput:
        """The meta-step on a validated batch, each task's head input transformed."""

    def evaluate_on(
        self,
        batch: MetaBatch,
        transforms: TransformFactory | None = None,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test on a validated batch, each task's head input transformed."""

    def adapt(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        inner_steps: int | None = None,
        *,
        transform: HeadTransform | None = None,
    ) -> Predictor:
        """Adapt to one task, its head input transformed."""

    def task_features(self, batch: MetaBatch) -> list[TaskFeatures]:
        """Every task's features at θ, without gradient."""

    def shared_task_features(self, batch: MetaBatch) -> AbstractContextManager[list[TaskFeatures]]:
        """Every task's features at θ, reused by a meta-step on ``batch`` inside the block."""

    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Solve ``E`` tasks on given head inputs ``[E, n, k]`` with the backbone frozen."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The learner's meta-parameters."""
