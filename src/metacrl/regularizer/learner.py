"""A learner with MetaCRL added by ``reg.wrap(learner)``: the same interface, MetaCRL inside."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metacrl.learners import (
    EvalOutput,
    Learner,
    MetaBatch,
    MetaStepOutput,
    PluggableLearner,
    TaskFeatures,
)
from metacrl.learners.losses import TaskLoss
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.replay import Replay
from metacrl.regularizer.upper_level import UpperLevel
from metacrl.typing import Predictor, TaskGather

__all__ = ["MetaCRLLearner"]


class MetaCRLLearner(Learner):
    """A learner whose meta-step carries MetaCRL's bi-level update (build with ``reg.wrap``).

    Lower level: the base learner adapts on each support set with ``Xi`` and ``f_gr`` fixed;
    its head sees the task's gated factors. Upper level, per meta-batch:

    * ``mode="alternating"``: ``crl_steps`` causal steps update ``Xi`` and ``f_gr`` (θ
      frozen) on the environments (this meta-batch's tasks plus those of the last ``replay``
      meta-batches); then the returned loss is θ's mean query loss through the (frozen) gates.
    * ``mode="joint"``: the returned loss is the mean query loss plus ``lambda_inv * L_inv +
      L_dis``; one optimiser step updates θ, ``Xi`` and ``f_gr``.

    Meta-testing (:meth:`evaluate`, :meth:`adapt`) uses the gates too. ``parameters()``
    includes θ, ``Xi`` and ``f_gr``; the replay of earlier meta-batches is part of
    ``state_dict()``, so a resumed run continues exactly.

    The base learner stays reachable as :attr:`learner` (``wrapped.learner.inner_steps``);
    the wrapper talks to it only through :class:`~metacrl.learners.PluggableLearner`.

    Data-parallel training (:mod:`metacrl.distributed`) sets :attr:`task_gather`: each process
    then adapts to its share of the meta-batch, but the causal step and the MetaCRL terms use
    the environments of the whole meta-batch, gathered from all processes, and the replay keeps
    them all; so ``Xi``, ``f_gr`` and the replay are the same on every process and equal those
    of one process given the whole meta-batch.

    Attributes:
        replay: The earlier meta-batches used as extra environments
            (:class:`~metacrl.regularizer.Replay`).
        task_gather: ``None`` (one process, the default), or a :data:`TaskGather` that
            concatenates per-task tensors of all processes.

    Args:
        learner: The base learner.
        regularizer: The MetaCRL regularizer (its ``replay`` sets how many earlier meta-batches
            are kept).

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=8, crl_steps=2)
        >>> learner = reg.wrap(ANIL(model, inner_lr=0.1, inner_steps=2))
        >>> out = learner.meta_step(x, y, x, y)       # causal steps on Xi, f_gr; then θ's loss
        >>> out.loss.backward()
        >>> sorted(out.metrics)
        ['crl/disentanglement', 'crl/gate_mean', 'crl/gates_open', 'crl/invariance', 'crl/task']
        >>> learner.evaluate(x, y, x, y).task_scores.shape      # gates used at test too
        torch.Size([2])
        >>> [kind for kind, _ in learner.get_extra_state()["replay"]]   # saved with state_dict
        ['environments']
    """

    def __init__(self, learner: PluggableLearner, regularizer: MetaCRLModule) -> None:
        super().__init__()
        self.learner = learner
        self.regularizer = regularizer
        # earlier meta-batches: their environments (features as computed then), or the batches
        # themselves when the regularizer refreshes their features every step
        self.replay = Replay(regularizer.replay)
        self.task_gather: TaskGather | None = None

    @property
    def task_loss(self) -> TaskLoss:
        """The base learner's task loss."""
        return self.learner.task_loss

    # ------------------------------------------------------------------ interface
    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Run MetaCRL's upper level on a meta-batch and return the meta-loss.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The meta-loss (see the class docstring for what it contains in each mode), the
            query scores, and the MetaCRL terms under ``metrics["crl/*"]``.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the meta-batch is malformed (see :meth:`MetaLearner.meta_step`).
            NonFiniteLossError: If the mean query loss, the causal objective (alternating
                mode) or the joint loss (joint mode) is NaN or infinite.
        """
        base = self.learner
        batch = base.as_batch(x_spt, y_spt, x_qry, y_qry)
        environments = self.regularizer.environment_batch(batch)
        fewer = environments is not batch  # env_queries keeps fewer queries than the batch has
        # A learner whose inner loop adapts the backbone (MAML, Meta-SGD; any learner that does
        # not say) computes the environments in a pass of their own: a smaller one, then.
        if fewer and getattr(base, "adapts_backbone", True):
            return self._upper_level(batch, base.task_features(environments))
        with base.shared_task_features(batch) as current:  # one backbone pass serves both
            if fewer:
                queries = int(environments.x_qry.shape[1])
                current = [env.with_queries(queries) for env in current]
            return self._upper_level(batch, current)

    def _upper_level(self, batch: MetaBatch, current: list[TaskFeatures]) -> MetaStepOutput:
        reg, base = self.regularizer, self.learner
        # replayed batches were checked when they were current
        loss_fn = base.task_loss.checked(batch.num_labels)
        if self.task_gather is not None:  # data-parallel: the whole meta-batch's environments
            current, num_labels = self._gather_environments(current, batch.num_labels)
            loss_fn = base.task_loss.checked(num_labels)
        upper = UpperLevel(reg, current + self.replayed_environments(), base.head_task, loss_fn)
        out = base.meta_step_on(batch, lambda: TaskFactors(reg, frozen=upper.frozen))
        out.loss = upper.outer_loss(out.loss)
        if reg.replay > 0:
            self.replay.remember(self._gather_batch(batch) if reg.refresh_replay else current)
        out.metrics.update(upper.metrics)
        return out

    def evaluate(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        x_qry: Tensor,
        y_qry: Tensor,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test with the task gates (see :meth:`~metacrl.learners.Learner.evaluate`).

        ``Xi`` and ``f_gr`` are used as they are (no causal step) and nothing is added to the
        replay.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.
            inner_steps: Inner steps at test time (default: ``None``, the base learner's
                ``test_inner_steps``).

        Returns:
            Per-task query losses and scores, without any graph.
        """
        batch = self.learner.as_batch(x_spt, y_spt, x_qry, y_qry)
        return self.learner.evaluate_on(batch, self._frozen_factors, inner_steps)

    def adapt(self, x_spt: Tensor, y_spt: Tensor, inner_steps: int | None = None) -> Predictor:
        """Adapt to one task with its gates (see :meth:`~metacrl.learners.Learner.adapt`).

        Args:
            x_spt: One task's support inputs ``[n_support, ...]`` (no task axis); its gates
                are computed from their features.
            y_spt: Its targets ``[n_support]`` or ``[n_support, ...]``.
            inner_steps: Inner steps (default: ``None``, the base learner's
                ``test_inner_steps``).

        Returns:
            The adapted, gated model as a function of query inputs ``[n, ...]``.
        """
        return self.learner.adapt(x_spt, y_spt, inner_steps, transform=self._frozen_factors())

    # ------------------------------------------------------------------ internals
    def _frozen_factors(self) -> TaskFactors:
        return TaskFactors(self.regularizer, frozen=True)

    def _gather_environments(
        self, envs: list[TaskFeatures], num_labels: int
    ) -> tuple[list[TaskFeatures], int]:
        """All processes' environments of the current meta-batch, and their label count."""
        assert self.task_gather is not None
        s_feat, y_spt, q_feat, y_qry = self.task_gather(
            [
                torch.stack([getattr(e, name) for e in envs])
                for name in ("support_features", "y_spt", "query_features", "y_qry")
            ]
        )
        if num_labels:  # classification: the largest label of the whole meta-batch
            num_labels = 1 + int(torch.maximum(y_spt.max(), y_qry.max()))
        gathered = [
            TaskFeatures(*parts) for parts in zip(s_feat, y_spt, q_feat, y_qry, strict=True)
        ]
        return gathered, num_labels

    def _gather_batch(self, batch: MetaBatch) -> MetaBatch:
        """The (detached) meta-batch of all processes, for ``refresh_replay``."""
        batch = self.regularizer.environment_batch(batch)
        if self.task_gather is None:
            return batch.detach()
        x_spt, y_spt, x_qry, y_qry = self.task_gather(
            [batch.x_spt, batch.y_spt, batch.x_qry, batch.y_qry]
        )
        num_labels = batch.num_labels and 1 + int(torch.maximum(y_spt.max(), y_qry.max()))
        return MetaBatch(x_spt, y_spt, x_qry, y_qry, num_labels).detach()

    def replayed_environments(self) -> list[TaskFeatures]:
        """The replayed meta-batches' tasks, oldest first, as the next causal step sees them.

        Returns:
            The tasks' features: as computed when their batch was current, or recomputed now
            with the current backbone (``refresh_replay=True``).
        """
        return self.replay.environments(self.learner.task_features)

    def get_extra_state(self) -> dict[str, Any]:
        """Save the replayed meta-batches (or their environments) with the parameters.

        ``state_dict()`` stores the result under ``_extra_state``.

        Returns:
            ``{"replay": [(kind, value), ...]}``, oldest first: ``("environments", [(support
            features, y_spt, query features, y_qry), ...])`` per replayed meta-batch, or
            ``("batch", (x_spt, y_spt, x_qry, y_qry, num_labels))`` with
            ``refresh_replay=True``.
        """
        return {"replay": self.replay.state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the replayed meta-batches.

        ``load_state_dict()`` calls it. The replay is cleared first; entries beyond the
        regularizer's ``replay`` length drop the oldest ones.

        Args:
            state: What :meth:`get_extra_state` returned (a missing ``"replay"`` key restores
                an empty replay).
        """
        self.replay.load(state.get("replay", []))
