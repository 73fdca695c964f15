"""The per-task loop of the reference learners, and the public interface plug-ins build on."""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from metacrl.errors import NonFiniteLossError
from metacrl.learners.feature_memo import FeatureMemo
from metacrl.learners.features import TaskFeatures
from metacrl.learners.inner_loop import check_backend
from metacrl.learners.learner import Learner
from metacrl.learners.losses import TaskLoss
from metacrl.learners.meta_batch import MetaBatch, as_meta_batch
from metacrl.learners.outputs import EvalOutput, MetaStepOutput
from metacrl.models.contract import check_model
from metacrl.models.task_model import TaskModel
from metacrl.profiling import TASK_FEATURES_RANGE
from metacrl.typing import Backend, HeadTransform, LossFn, LossName, Predictor, TransformFactory
from metacrl.validation import check_int

__all__ = ["MetaLearner"]


class MetaLearner(Learner):
    """Base of the reference learners: the per-task loop shared by MAML, ANIL, Meta-SGD, ProtoNet.

    A subclass says how one task is solved (:meth:`solve_task`) and how ``E`` tasks are solved on
    given head inputs with the backbone frozen (:meth:`head_task`). Every public method here is
    part of the interface that plug-ins such as MetaCRL use (see
    :class:`~metacrl.learners.PluggableLearner`): the ``*_on`` methods take a validated
    :class:`~metacrl.learners.MetaBatch` and an optional per-task
    :class:`~metacrl.typing.HeadTransform` of the head's input.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        loss: ``"cross_entropy"`` (classification, the default) or ``"mse"`` (regression).
        backend: Inner-loop backend, ``"func"`` (default), ``"higher"``, or ``"vmap"`` where
            the learner supports it.
        batched: Whether the subclass implements ``backend="vmap"`` (default: ``False``).

    Raises:
        TypeError: If ``model`` does not follow the ``features``/``head``/``feature_dim``
            contract.
        ValueError: If ``loss`` or ``backend`` is unknown, or ``backend="vmap"`` is asked of a
            learner without ``batched``.

    Example:
        A learner that does not adapt at all (the meta-learned model is used on every task):

        >>> from torch.func import functional_call
        >>> class NoAdapt(MetaLearner):
        ...     def solve_task(self, x_spt, y_spt, loss_fn, transform, *, training, steps):
        ...         self.support_head_inputs(x_spt, transform, training)  # the task's gates
        ...         return lambda x: self.net.head(self.head_inputs(x, transform))
        ...     def head_task(self, h_spt, y_spt, h_qry, loss_fn):
        ...         frozen = {n: p.detach() for n, p in self.net.head.named_parameters()}
        ...         return functional_call(self.net.head, frozen, (h_qry,))
        >>> learner = NoAdapt(model)
        >>> learner.meta_step(x, y, x, y).task_losses.shape
        torch.Size([2])
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4, crl_steps=1)
        >>> reg.wrap(learner).meta_step(x, y, x, y).loss.requires_grad
        True
    """

    inner_steps: int = 0
    test_inner_steps: int = 0
    adapts_backbone: bool = True
    """Whether the inner loop changes ``model.features`` (MAML, Meta-SGD). Learners whose
    backbone stays at θ during adaptation (ANIL, ProtoNet) set ``False``; their meta-step then
    reuses the features of :meth:`shared_task_features` instead of running the backbone again."""

    def __init__(
        self,
        model: nn.Module,
        *,
        loss: LossName = "cross_entropy",
        backend: Backend = "func",
        batched: bool = False,
    ) -> None:
        super().__init__()
        self.model = check_model(model)
        self.task_loss = TaskLoss(loss)
        self.backend: Backend = check_backend(backend)
        if self.backend == "vmap" and not batched:
            raise ValueError(f"backend='vmap' is not available for {type(self).__name__}")
        # Shares model.features/model.head; kept out of the module tree so that parameters and
        # state_dict keys are not listed twice.
        self.__dict__["net"] = TaskModel(model)
        self.memo = FeatureMemo(self.net.features)

    net: TaskModel

    @property
    def feature_dim(self) -> int:
        """The model's feature size."""
        return self.net.feature_dim

    # ------------------------------------------------------------------ Learner
    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Adapt to each task of a meta-batch and return the mean query loss.

        See :meth:`Learner.meta_step <metacrl.learners.Learner.meta_step>`; equals
        ``meta_step_on(as_batch(x_spt, y_spt, x_qry, y_qry))``.

        Example:
            >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
            >>> out = learner.meta_step(x, y, x, y)
            >>> out.loss.backward()
            >>> out.task_losses.shape, out.problem
            (torch.Size([2]), 'classification')
        """
        return self.meta_step_on(self.as_batch(x_spt, y_spt, x_qry, y_qry))

    def evaluate(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        x_qry: Tensor,
        y_qry: Tensor,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test on a meta-batch: adapt to each task, score its query set.

        See :meth:`Learner.evaluate <metacrl.learners.Learner.evaluate>`; ``inner_steps``
        defaults to ``test_inner_steps``.

        Example:
            >>> out = MAML(model, inner_lr=0.1, inner_steps=1).evaluate(x, y, x, y, inner_steps=3)
            >>> out.task_scores.shape, out.task_losses.requires_grad
            (torch.Size([2]), False)
        """
        return self.evaluate_on(self.as_batch(x_spt, y_spt, x_qry, y_qry), inner_steps=inner_steps)

    def adapt(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        inner_steps: int | None = None,
        *,
        transform: HeadTransform | None = None,
    ) -> Predictor:
        """Adapt to one task and return the adapted model as a function of inputs.

        See :meth:`Learner.adapt <metacrl.learners.Learner.adapt>`.

        Args:
            x_spt: One task's support inputs ``[n_support, ...]``.
            y_spt: Its targets ``[n_support]`` or ``[n_support, ...]``.
            inner_steps: Inner steps (default: ``None``, ``test_inner_steps``).
            transform: The task's transform of the head's input (default: ``None``).

        Returns:
            A function mapping query inputs ``[n, ...]`` to outputs, without meta-graph.

        Example:
            >>> predict = MAML(model, inner_lr=0.1, inner_steps=1).adapt(x[0], y[0])
            >>> out = predict(torch.randn(5, 4))
            >>> out.shape, out.requires_grad
            (torch.Size([5, 3]), False)
        """
        for name, t in (("x_spt", x_spt), ("y_spt", y_spt)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if x_spt.dim() < 2 or y_spt.dim() < 1:
            raise ValueError(
                "adapt takes one task without a task axis: x_spt [n_support, ...] and y_spt "
                f"[n_support, ...], got {tuple(x_spt.shape)} and {tuple(y_spt.shape)}"
            )
        batch = self.as_batch(x_spt[None], y_spt[None], x_spt[None], y_spt[None])
        steps = self._steps(inner_steps)
        x_s, y_s, _, _ = batch.task(0)
        loss_fn = self.task_loss.checked(batch.num_labels)
        predict = self.solve_task(x_s, y_s, loss_fn, transform, training=False, steps=steps)
        device, dtype = self._device_dtype()

        def adapted(x: Tensor) -> Tensor:
            with torch.no_grad():
                return predict(x.to(device=device, dtype=dtype))

        return adapted

    # ------------------------------------------------------------------ plug-in interface
    def as_batch(self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor) -> MetaBatch:
        """Validate a meta-batch and move it to this learner's device and dtype.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The checked :class:`~metacrl.learners.MetaBatch`, floating tensors cast to the
            learner's dtype.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, or labels are negative.

        Example:
            >>> batch = MAML(model).as_batch(x.double(), y, x, y)
            >>> batch.x_spt.dtype, batch.num_tasks, batch.num_labels
            (torch.float32, 2, 3)
        """
        device, dtype = self._device_dtype()
        batch = as_meta_batch(
            x_spt, y_spt, x_qry, y_qry, problem=self.task_loss.problem, device=device, dtype=dtype
        )
        self._check_batch(batch)
        return batch

    def meta_step_on(
        self, batch: MetaBatch, transforms: TransformFactory | None = None
    ) -> MetaStepOutput:
        """The meta-step on a validated batch, each task's head input transformed.

        Args:
            batch: From :meth:`as_batch`.
            transforms: Makes each task's :class:`~metacrl.typing.HeadTransform`, called once
                per task (default: ``None``, the features as they are).

        Returns:
            The mean query loss (with its graph) and the query scores.

        Raises:
            NonFiniteLossError: If the meta-loss is NaN or infinite.

        Example:
            >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
            >>> learner.meta_step_on(learner.as_batch(x, y, x, y)).loss.requires_grad
            True
        """
        task_losses, scores = self._solve_tasks(
            batch, transforms, training=True, steps=self.inner_steps
        )
        loss = task_losses.mean()
        if not bool(torch.isfinite(loss)):
            bad = [i for i, v in enumerate(task_losses.tolist()) if not math.isfinite(v)]
            raise NonFiniteLossError(
                f"the meta-loss is {float(loss.detach())}: non-finite query loss in task(s) "
                f"{bad}; lower inner_lr or the meta learning rate, or check the inputs' scale"
            )
        return MetaStepOutput(
            loss=loss,
            task_losses=task_losses.detach(),
            task_scores=scores,
            problem=self.task_loss.problem,
        )

    def evaluate_on(
        self,
        batch: MetaBatch,
        transforms: TransformFactory | None = None,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test on a validated batch, each task's head input transformed.

        Args:
            batch: From :meth:`as_batch`.
            transforms: Makes each task's head transform (default: ``None``).
            inner_steps: Inner steps (default: ``None``, ``test_inner_steps``).

        Returns:
            Per-task losses and scores, without any graph.

        Raises:
            ValueError: If ``inner_steps`` is not an integer ``>= 0``.

        Example:
            >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
            >>> learner.evaluate_on(learner.as_batch(x, y, x, y)).task_scores.shape
            torch.Size([2])
        """
        steps = self._steps(inner_steps)
        losses, scores = self._solve_tasks(batch, transforms, training=False, steps=steps)
        return EvalOutput(losses.detach(), scores, self.task_loss.problem)

    def task_features(self, batch: MetaBatch) -> list[TaskFeatures]:
        """Every task's support and query features at the current θ, without gradient.

        Args:
            batch: From :meth:`as_batch`.

        Returns:
            One :class:`~metacrl.learners.TaskFeatures` per task, in order.

        Example:
            >>> learner = MAML(model)
            >>> tasks = learner.task_features(learner.as_batch(x, y, x, y))
            >>> len(tasks), tasks[0].support_features.shape, tasks[0].query_features.requires_grad
            (2, torch.Size([6, 8]), False)
        """
        with torch.no_grad(), record_function(TASK_FEATURES_RANGE):
            return self._features_of(batch)[0]

    @contextmanager
    def shared_task_features(self, batch: MetaBatch) -> Iterator[list[TaskFeatures]]:
        """Every task's features at θ, computed once for a plug-in and the meta-step alike.

        Yields the tasks' features (detached, as :meth:`task_features`). Where the inner loop
        leaves the backbone at θ (``adapts_backbone=False``), a :meth:`meta_step_on` of
        ``batch`` inside the block reuses the same forward pass, with its graph; otherwise the
        features are computed under ``torch.no_grad()`` and the meta-step runs its own.

        Args:
            batch: From :meth:`as_batch`.

        Yields:
            One :class:`~metacrl.learners.TaskFeatures` per task.

        Example:
            >>> anil = ANIL(model, inner_lr=0.1, inner_steps=1)
            >>> batch = anil.as_batch(x, y, x, y)
            >>> with anil.shared_task_features(batch) as tasks:   # one backbone pass serves both
            ...     out = anil.meta_step_on(batch)
            >>> len(tasks), out.loss.requires_grad
            (2, True)
        """
        if not self._reuses_features():
            yield self.task_features(batch)
            return
        tasks, computed = self._features_of(batch)
        with self.memo.serving(computed):
            yield tasks

    def features(self, x: Tensor) -> Tensor:
        """The backbone's features of ``x`` (those of :meth:`shared_task_features` if served).

        Args:
            x: Inputs ``[n, ...]``.

        Returns:
            ``[n, feature_dim]``.
        """
        return self.memo.features(x)

    def head_inputs(self, x: Tensor, transform: HeadTransform | None) -> Tensor:
        """What the head sees for inputs ``x``: the features, transformed when given.

        Args:
            x: Inputs ``[n, ...]``.
            transform: The task's head transform, already prepared, or ``None``.

        Returns:
            The head's inputs.
        """
        feats = self.features(x)
        return feats if transform is None else transform.transform(feats)

    def support_head_inputs(
        self, x_spt: Tensor, transform: HeadTransform | None, training: bool
    ) -> Tensor:
        """Head inputs of a support set; prepares the task's transform from it first.

        Args:
            x_spt: Support inputs ``[n_support, ...]``.
            transform: The task's head transform (prepared here), or ``None``.
            training: Keep the graph (meta-training).

        Returns:
            The head's inputs of the support set.
        """
        with torch.set_grad_enabled(training and torch.is_grad_enabled()):
            feats = self.features(x_spt)
            if transform is None:
                return feats
            transform.prepare(feats)
            return transform.transform(feats)

    # ------------------------------------------------------------------ per learner
    @abc.abstractmethod
    def solve_task(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        loss_fn: LossFn,
        transform: HeadTransform | None,
        *,
        training: bool,
        steps: int,
    ) -> Predictor:
        """Solve one task from its support set; return the adapted model's predictor.

        Implementations prepare ``transform`` (if any) from the support features at θ before
        adapting, and feed the head ``transform.transform(features)``. With ``training=True``
        the predictor's outputs keep the graph back to the meta-parameters (second order
        unless the learner is first-order).

        Args:
            x_spt: Support inputs ``[n_support, ...]``.
            y_spt: Support targets.
            loss_fn: The task loss.
            transform: The task's head transform, or ``None``.
            training: Meta-training (keep the graph) or meta-testing.
            steps: Inner steps.

        Returns:
            The adapted model as a function of query inputs.
        """

    @abc.abstractmethod
    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Solve ``E`` tasks on given head inputs with the backbone frozen.

        Gradients must flow to ``h_spt`` and ``h_qry`` (second order through any inner loop)
        but not to the learner's parameters. MetaCRL's causal step calls it (it is a
        :data:`~metacrl.typing.HeadTask`).

        Args:
            h_spt: Support head inputs ``[E, n, k]``.
            y_spt: Support targets ``[E, n, ...]``.
            h_qry: Query head inputs ``[E, q, k]``.
            loss_fn: The task loss.

        Returns:
            Query outputs ``[E, q, ...]``.

        Example:
            >>> h_spt = torch.randn(2, 6, 8, requires_grad=True)
            >>> maml = MAML(model, inner_lr=0.1, inner_steps=1)
            >>> out = maml.head_task(h_spt, y, torch.randn(2, 4, 8), maml.task_loss)
            >>> out.shape, out.requires_grad
            (torch.Size([2, 4, 3]), True)
        """

    # ------------------------------------------------------------------ internals
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            if p.is_floating_point():
                return p.device, p.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def _check_batch(self, batch: MetaBatch) -> None:
        """Learner-specific checks of a validated batch (none by default)."""

    def _steps(self, inner_steps: int | None) -> int:
        steps = self.test_inner_steps if inner_steps is None else inner_steps
        return check_int("inner_steps", steps, minimum=0)

    def _reuses_features(self) -> bool:
        """Whether the meta-step takes every task's features at θ through :meth:`features`."""
        return not self.adapts_backbone

    def _features_of(
        self, batch: MetaBatch
    ) -> tuple[list[TaskFeatures], list[tuple[Tensor, Tensor]]]:
        """Every task's features at θ, one backbone call per set: detached, and by input."""
        tasks, computed = [], []
        for t in range(batch.num_tasks):
            x_s, y_s, x_q, y_q = batch.task(t)
            f_s, f_q = self.net.features(x_s), self.net.features(x_q)
            computed += [(x_s, f_s), (x_q, f_q)]
            tasks.append(TaskFeatures(f_s.detach(), y_s, f_q.detach(), y_q))
        return tasks, computed

    def _solve_tasks(
        self,
        batch: MetaBatch,
        transforms: TransformFactory | None,
        *,
        training: bool,
        steps: int,
    ) -> tuple[Tensor, Tensor]:
        """Adapt to every task of ``batch``; return the query losses and scores, ``[T]`` each."""
        loss_fn = self.task_loss.checked(batch.num_labels)
        losses, scores = [], []
        for t in range(batch.num_tasks):
            x_s, y_s, x_q, y_q = batch.task(t)
            transform = None if transforms is None else transforms()
            predict = self.solve_task(x_s, y_s, loss_fn, transform, training=training, steps=steps)
            with torch.set_grad_enabled(training and torch.is_grad_enabled()):
                out = predict(x_q)
                losses.append(loss_fn(out, y_q))
            scores.append(self.task_loss.metric(out.detach(), y_q))
        return torch.stack(losses), torch.stack(scores)
