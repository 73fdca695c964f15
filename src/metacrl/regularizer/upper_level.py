"""MetaCRL's upper level for one meta-batch: one home for the reference learners and user loops."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.profiler import record_function

from metacrl.errors import NonFiniteLossError
from metacrl.learners import TaskFeatures
from metacrl.profiling import CAUSAL_OBJECTIVE_RANGE, CAUSAL_STEP_RANGE
from metacrl.regularizer.causal_step import causal_step
from metacrl.regularizer.module import MetaCRLModule
from metacrl.typing import HeadTask, LossFn

__all__ = ["UpperLevel"]


class UpperLevel:
    """What MetaCRL adds to θ's meta-update of one meta-batch, in either schedule.

    Built at the start of a meta-batch, before any task is solved for θ's loss:

    * ``mode="alternating"``: runs the ``crl_steps`` causal steps on ``Xi`` and ``f_gr`` over
      the environments now; θ's loss then sees them frozen (:attr:`frozen`), and
      :meth:`outer_loss` returns that loss unchanged.
    * ``mode="joint"``: nothing happens now; :meth:`outer_loss` adds ``lambda_inv * L_inv +
      L_dis`` over the environments to θ's loss, for one optimiser step on everything.

    :class:`~metacrl.MetaCRLLearner` and a user's loop (:meth:`GatedModel.meta_batch
    <metacrl.GatedModel.meta_batch>`) both go through it, so they compute the same update.

    Args:
        module: The MetaCRL module (``Xi``, ``f_gr``, the schedule and the weights).
        environments: The current meta-batch's tasks followed by the replayed ones, as
            features computed with the backbone frozen.
        head_task: How a task is solved on given head inputs (the causal objective's inner
            problem).
        loss_fn: The task loss.

    Attributes:
        metrics: The MetaCRL terms of the meta-batch under ``crl/*`` keys (filled by the causal
            steps, or by :meth:`outer_loss` in the joint schedule).

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=8, crl_steps=2)
        >>> maml = MAML(model, inner_lr=0.1, inner_steps=1)
        >>> envs = maml.task_features(maml.as_batch(x, y, x, y))
        >>> upper = UpperLevel(reg, envs, maml.head_task, maml.task_loss)  # causal steps now
        >>> upper.frozen, sorted(upper.metrics)[0]
        (True, 'crl/disentanglement')
    """

    def __init__(
        self,
        module: MetaCRLModule,
        environments: Sequence[TaskFeatures],
        head_task: HeadTask,
        loss_fn: LossFn,
    ) -> None:
        self.module = module
        self.environments = list(environments)
        self.head_task = head_task
        self.loss_fn = loss_fn
        self.metrics: dict[str, float] = {}
        if not self.joint:
            with record_function(CAUSAL_STEP_RANGE):
                terms = causal_step(module, self.environments, head_task, loss_fn)
            self.metrics.update(terms.metrics())

    @property
    def joint(self) -> bool:
        """Whether the schedule is joint (one loss, one step) rather than alternating."""
        return self.module.mode == "joint"

    @property
    def frozen(self) -> bool:
        """Whether θ's loss must see ``Xi`` and ``f_gr`` as constants (alternating)."""
        return not self.joint

    def outer_loss(self, query_loss: Tensor) -> Tensor:
        """θ's meta-loss for this meta-batch, given the mean query loss.

        Args:
            query_loss: The mean query loss over the meta-batch's tasks (with its graph).

        Returns:
            ``query_loss`` (alternating), or ``query_loss + lambda_inv * L_inv + L_dis`` over
            the environments (joint).

        Raises:
            NonFiniteLossError: If the joint loss is NaN or infinite.
        """
        if not self.joint:
            return query_loss
        reg = self.module
        with record_function(CAUSAL_OBJECTIVE_RANGE):
            terms = reg.causal_objective(self.environments, self.head_task, self.loss_fn)
        loss = query_loss + reg.lambda_inv * terms.invariance + terms.disentanglement
        self.metrics.update(terms.metrics())
        if not bool(torch.isfinite(loss)):
            parts = ", ".join(f"{k[4:]} {v}" for k, v in terms.metrics().items())
            raise NonFiniteLossError(
                f"the joint MetaCRL loss is {float(loss.detach())} ({parts}); lower "
                "lambda_inv or the meta learning rate"
            )
        return loss
