"""MetaCRLRegularizer: the MetaCRL plug-in, as users build and wrap it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack, cast, overload

from torch import Tensor, nn

from metacrl.learners import PluggableLearner, TaskFeatures
from metacrl.models import check_model
from metacrl.regularizer.causal import CausalTerms
from metacrl.regularizer.causal_step import causal_step
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.gated import GatedModel
from metacrl.regularizer.learner import MetaCRLLearner
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.user_loop import OpenTasks
from metacrl.typing import HeadTask, LossFn, LossName

__all__ = ["LoopSettings", "MetaCRLRegularizer"]


class LoopSettings(TypedDict, total=False):
    """How the causal step solves a user loop's tasks (:class:`~metacrl.GatedModel`)."""

    head_lr: float
    head_steps: int
    loss: LossName


class MetaCRLRegularizer(MetaCRLModule):
    r"""The MetaCRL causal representation learner, placed between ``features`` and ``head``.

    A factor matrix ``Xi`` (``feature_dim x num_factors``, columns used at unit length) maps
    features ``g(x)`` to factors ``z = Xi^T g(x)``. The gate network ``f_gr`` (Linear → ReLU →
    Linear → sigmoid) reads the mean factors of a task's support set and returns per-task gates
    ``w_t``; the head sees
    ``Xi (w_t ⊙ Xi^T g(x))`` (``head_input="features"``, the head keeps its input size) or
    ``w_t ⊙ Xi^T g(x)`` (``head_input="factors"``, the head must take ``num_factors`` inputs).

    Objective of ``Xi`` and ``f_gr`` (the causal step), over a set of environments (the tasks of
    the current meta-batch and of the last ``replay`` meta-batches)::

        mean_e L_e  +  lambda_inv * L_inv  +  lambda_orth * sum_{i!=j} |xi_i^T xi_j|
                    +  lambda_gate * mean_e [ ||w_e||_1 / M + H_b(w_e) / M ]

    where ``L_e`` is environment ``e``'s query loss after the learner solved it on its support
    set with the backbone frozen, and ``L_inv`` is the IRMv1 penalty (mean over environments of
    the squared gradient of ``L_e`` in a scale of the outputs) or V-REx (variance of ``L_e``).
    The environments' features are computed without gradient, so invariance acts through the
    factor selection (``Xi``, ``f_gr``) and never squeezes the backbone.

    Schedules (``mode``):

    * ``"alternating"``: each meta-step first runs ``crl_steps`` gradient steps on ``Xi`` (step
      ``xi_lr``) and ``f_gr`` (step ``gr_lr``) with θ frozen, then returns the meta-loss of θ
      with ``Xi`` and ``f_gr`` frozen.
    * ``"joint"``: the returned meta-loss is the mean query loss plus ``lambda_inv * L_inv +
      L_dis``; one optimiser step updates everything.

    Every default comes from :data:`~metacrl.regularizer.DEFAULTS`, which ``metacrl train``
    uses too.

    Args:
        feature_dim: Size ``d`` of the features ``g(x)``; must equal ``model.feature_dim``.
        num_factors: Number ``M`` of generating factors (columns of ``Xi``); ``None`` (the
            default) gives ``M = feature_dim``.
        hidden_dim: Hidden width of ``f_gr``.
        lambda_orth: Weight of the orthogonality term.
        lambda_gate: Weight of the gate sparsity/decisiveness term.
        lambda_inv: Weight of the invariance penalty.
        invariance: ``"vrex"`` (V-REx, default) or ``"irm"`` (IRMv1).
        mode: ``"alternating"`` (default) or ``"joint"``.
        crl_steps: Causal steps per meta-step in the alternating schedule.
        xi_lr: Step size of the causal steps for ``Xi`` (default 0.04; official script: 0.4).
        gr_lr: Step size of the causal steps for ``f_gr`` (official script: 0.01).
        replay: How many earlier meta-batches serve as extra environments (0: the current
            meta-batch only).
        head_input: ``"features"`` (map the gated factors back with ``Xi``) or ``"factors"``.
        gate_init: Initial value of the gates (the last layer's bias), in ``(0, 1)``.
        basis: How ``Xi`` becomes the factor directions ``U`` (see :meth:`factor_directions`):
            ``"normalized"`` (default; unit columns at spectral norm one, which may turn
            towards each other) or ``"orthonormal"`` (an orthonormal basis of the columns, so
            the head keeps every direction the gates keep; needs ``num_factors <=
            feature_dim``).
        use_gates: Gate the factors per task (``False``, an ablation: every gate is 1 and
            ``f_gr`` is unused).
        env_queries: At most how many query examples of each task the environments keep
            (evenly spread over the query set; a task with fewer keeps all of its own);
            ``None`` keeps them all. Fewer make the causal step, and for learners that adapt
            the backbone (MAML, Meta-SGD) the pass that computes the environments' features,
            cheaper; θ's loss always uses every query. Default: 10.
        refresh_replay: Recompute the replayed meta-batches' features with the current backbone
            at every step (exact, but a forward pass of ``replay`` extra meta-batches per
            step). By default each replayed batch keeps the features computed when it was
            current, at most ``replay`` meta-steps old.
        max_grad_norm: Clip the norm of the causal step's gradient (``Xi`` and ``f_gr``
            together) to this value; ``None`` disables clipping. Without it, a spike of the IRM
            penalty's gradient times ``xi_lr`` = 0.4 (the official script's step) can throw
            ``Xi`` far off in one step, after which the gates saturate and never recover.

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=model.feature_dim, num_factors=8, crl_steps=1)
        >>> learner = reg.wrap(MAML(model, inner_lr=0.1, inner_steps=1))
        >>> out = learner.meta_step(x, y, x, y)
        >>> out.loss.backward()
        >>> any(p is reg.xi for p in learner.parameters())
        True
    """

    @property
    def open_tasks(self) -> OpenTasks:
        """The tasks a user's loop opened with :meth:`task` since the last :meth:`penalty`."""
        tasks = self.__dict__.get("_open_tasks")
        if tasks is None:
            tasks = self.__dict__["_open_tasks"] = OpenTasks(self)
        return tasks

    def causal_step(
        self, environments: Sequence[TaskFeatures], head_task: HeadTask, loss_fn: LossFn
    ) -> CausalTerms:
        """Run ``crl_steps`` gradient steps of the causal objective on ``Xi`` and ``f_gr``.

        See :func:`~metacrl.regularizer.causal_step.causal_step`.

        Args:
            environments: The tasks, as features computed with the backbone frozen.
            head_task: How the learner solves tasks on given head inputs.
            loss_fn: The task loss.

        Returns:
            The terms of the last evaluated objective (detached).
        """
        return causal_step(self, environments, head_task, loss_fn)

    def task(self, support_features: Tensor, *, track: bool = True) -> TaskFactors:
        """Open a task for a user-written inner loop: compute its gates from support features.

        Pass the result as ``task=`` to the module returned by :meth:`wrap`. Every task opened
        with ``track=True`` since the last :meth:`penalty` call takes part in the next penalty,
        in order.

        Args:
            support_features: ``model.features(x_spt)``, ``[n_support, feature_dim]``.
            track: Keep the task for the next :meth:`penalty` (meta-training). Use ``False`` at
                meta-test, where no penalty follows.

        Returns:
            The task's :class:`TaskFactors`.
        """
        return self.open_tasks.open(support_features, track=track)

    def reset_tasks(self) -> None:
        """Forget the tasks opened since the last :meth:`penalty` (e.g. after an interruption)."""
        self.open_tasks.reset()

    def penalty(
        self,
        task_query_losses: Sequence[Tensor] | Tensor,
        task_query_outputs: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Return the MetaCRL outer-loss terms ``lambda_inv * L_inv + L_dis`` for a user loop.

        Call once per meta-batch, after the query losses of all tasks opened with :meth:`task`;
        it closes those tasks. Add the result to the mean query loss.

        Args:
            task_query_losses: One scalar query loss per opened task, in the order of the
                :meth:`task` calls.
            task_query_outputs: The query outputs each loss was computed from (needed by the
                IRM penalty). By default, each task's last forward output (recorded by the
                wrapped module) is used, which is the query output in the usual loop.

        Returns:
            The scalar penalty; gradients reach ``Xi``, ``f_gr`` and whatever the outputs
            depend on.
        """
        return self.open_tasks.penalty(task_query_losses, task_query_outputs)

    # ------------------------------------------------------------------ wrapping
    @overload
    def wrap(self, target: PluggableLearner) -> MetaCRLLearner: ...

    @overload
    def wrap(self, target: nn.Module, **loop: Unpack[LoopSettings]) -> GatedModel: ...

    def wrap(
        self, target: PluggableLearner | nn.Module, **loop: Unpack[LoopSettings]
    ) -> MetaCRLLearner | GatedModel:
        """Add MetaCRL to a learner or to a plain model.

        Args:
            target: A metacrl learner (``MAML``, ``ANIL``, ``MetaSGD``, ``ProtoNet``, or any
                :class:`~metacrl.learners.PluggableLearner`): returns a
                :class:`~metacrl.MetaCRLLearner` with the same interface whose meta-step
                includes MetaCRL.
                Or a model with ``features``/``head``/``feature_dim``: returns a
                :class:`~metacrl.GatedModel` for a user's own ``higher`` or
                ``torch.func`` loop, whose ``parameters()`` include ``Xi`` and ``f_gr``.
            **loop: For a model only: ``head_lr``, ``head_steps`` and ``loss`` of
                :class:`~metacrl.GatedModel` (how the causal step solves your loop's tasks).

        Returns:
            The wrapped learner or module.

        Raises:
            TypeError: For anything else, a learner that is already wrapped, or loop
                settings given with a learner (its own inner loop solves the causal step's
                tasks).
            ValueError: If the model's ``feature_dim`` differs from this regularizer's.
        """
        if isinstance(target, MetaCRLLearner | GatedModel):
            raise TypeError(
                f"this {type(target).__name__} is already wrapped by a MetaCRLRegularizer"
            )
        learner = target if isinstance(target, PluggableLearner) else None
        model = check_model(target if learner is None else learner.model)
        if model.feature_dim != self.feature_dim:
            raise ValueError(
                f"model.feature_dim is {model.feature_dim} but MetaCRLRegularizer was built with "
                f"feature_dim={self.feature_dim}"
            )
        if self.head_input == "factors":
            self._check_head_takes_factors(cast(nn.Module, model.head))
        self.to(next(iter(model.parameters()), self.xi))
        if learner is not None:
            if loop:
                raise TypeError(
                    f"{', '.join(sorted(loop))}: settings of a user loop's head solver; a "
                    f"{type(learner).__name__} solves the causal step's tasks with its own "
                    "inner loop"
                )
            return MetaCRLLearner(learner, self)
        return GatedModel(model, regularizer=self, **loop)

    def _check_head_takes_factors(self, head: nn.Module) -> None:
        first = next((m for m in head.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features != self.num_factors:
            raise ValueError(
                f"head_input='factors' feeds the head {self.num_factors} gated factors, but the "
                f"head's first Linear takes {first.in_features} inputs; use head_input="
                "'features' or a head with num_factors inputs"
            )
