"""The interface every learner shares, and the meta-batch loop of the reference learners."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from metacrl.errors import NonFiniteLossError
from metacrl.learners.batch import MetaBatch, as_meta_batch
from metacrl.learners.inner_loop import Backend, Predictor, check_backend
from metacrl.learners.losses import LossFn, LossName, TaskLoss
from metacrl.learners.outputs import EvalOutput, MetaStepOutput
from metacrl.models.contract import check_model
from metacrl.models.gated import GatedModel
from metacrl.regularizer.causal import Environment
from metacrl.regularizer.factors import TaskFactors

__all__ = ["FactorsFactory", "Learner", "MetaLearner"]

FactorsFactory = Callable[[], TaskFactors | None]
"""Makes the :class:`~metacrl.regularizer.TaskFactors` of the next task, or ``None`` (no
MetaCRL); the meta-batch loop calls it once per task, so that every task gets fresh gates."""
Callback = Callable[[int, MetaStepOutput], Any]
"""What :meth:`Learner.fit` calls after each meta-step: ``callback(iteration, output)``."""


def _no_factors() -> None:
    return None


class Learner(nn.Module, abc.ABC):
    """What every learner offers: ``meta_step``, ``evaluate``, ``adapt`` and ``fit``.

    An abstract ``nn.Module``: the reference learners derive from :class:`MetaLearner`, and
    :class:`~metacrl.learners.MetaCRLLearner` (what ``reg.wrap(learner)`` returns) derives from
    it directly. Code that trains or evaluates a learner (``fit``,
    :func:`~metacrl.train.evaluate_episodes`) relies on this interface only.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from metacrl import MAML
        >>> from metacrl.models import FeatureHead
        >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
        ...                inner_lr=0.1, inner_steps=1)
        >>> isinstance(learner, Learner)
        True
        >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
        >>> learner.meta_step(x, y, x, y).loss.requires_grad       # meta-training
        True
        >>> learner.evaluate(x, y, x, y).task_scores.shape         # meta-testing
        torch.Size([2])
        >>> predict = learner.adapt(x[0], y[0])                    # one task
        >>> predict(torch.randn(5, 4)).shape
        torch.Size([5, 3])
    """

    @abc.abstractmethod
    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Adapt to each task of a meta-batch and return the meta-loss on the query sets.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets ``[T, n_support]`` (labels) or ``[T, n_support, ...]``.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The differentiable meta-loss and the query scores.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> out = learner.meta_step(x, y, x, y)
            >>> out.loss.backward()
            >>> out.task_losses.shape
            torch.Size([2])
        """

    @abc.abstractmethod
    def evaluate(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        x_qry: Tensor,
        y_qry: Tensor,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test: adapt to each task and score its query set (no meta-gradient kept).

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.
            inner_steps: Inner steps at test time (default: ``None``, the learner's own
                test-time setting).

        Returns:
            Per-task query losses and scores, without any graph.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> out = learner.evaluate(x, y, x, y, inner_steps=3)
            >>> out.task_losses.requires_grad, 0.0 <= out.accuracy <= 1.0
            (False, True)
        """

    @abc.abstractmethod
    def adapt(self, x_spt: Tensor, y_spt: Tensor, inner_steps: int | None = None) -> Predictor:
        """Adapt to one task (``[n_support, ...]``) and return a function of query inputs.

        Args:
            x_spt: One task's support inputs ``[n_support, ...]`` (no task axis).
            y_spt: Its targets ``[n_support]`` or ``[n_support, ...]``.
            inner_steps: Inner steps (default: ``None``, the learner's test-time setting).

        Returns:
            The adapted model as a function of query inputs ``[n, ...]`` (run without
            gradient).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> predict = learner.adapt(x[0], y[0], inner_steps=2)
            >>> predict(torch.randn(5, 4)).shape
            torch.Size([5, 3])
        """

    def fit(
        self,
        tasks: Iterable[Sequence[Tensor]],
        iterations: int | None = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        progress: bool = True,
        callback: Callback | None = None,
    ) -> list[dict[str, float]]:
        """Meta-train on a stream of meta-batches: one optimiser step per meta-batch.

        Args:
            tasks: An iterable of ``(x_spt, y_spt, x_qry, y_qry)`` meta-batches (for example a
                :class:`~metacrl.data.TaskLoader`).
            iterations: How many meta-batches to use (default: ``None``, all of ``tasks``).
            optimizer: The meta-optimiser (default: ``None``, Adam over the parameters that
                require gradients, at ``lr``).
            lr: The learning rate of the default optimiser (default: ``1e-3``; ignored when
                ``optimizer`` is given).
            progress: Show a progress bar with the running loss and score (default: ``True``).
            callback: Called as ``callback(iteration, output)`` after each step, with the
                0-based iteration and the :class:`MetaStepOutput` (default: ``None``).

        Returns:
            One dictionary of metrics per meta-step (see :meth:`MetaStepOutput.summary`).

        Raises:
            ValueError: If ``iterations`` is negative or a meta-batch does not have four items.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> history = learner.fit([(x, y, x, y)] * 3, progress=False)
            >>> len(history), sorted(history[0])
            (3, ['accuracy', 'loss', 'query_loss'])
        """
        from tqdm.auto import tqdm

        if iterations is not None and iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        params = [p for p in self.parameters() if p.requires_grad]
        opt = optimizer if optimizer is not None else torch.optim.Adam(params, lr=lr)
        total = iterations if iterations is not None else _length(tasks)
        history: list[dict[str, float]] = []
        stream = iter(tasks)
        with tqdm(total=total, disable=not progress, desc="meta-train") as bar:
            while iterations is None or len(history) < iterations:
                try:
                    batch = next(stream)
                except StopIteration:
                    break
                if len(batch) != 4:
                    raise ValueError(
                        "each meta-batch must be (x_spt, y_spt, x_qry, y_qry), got "
                        f"{len(batch)} items"
                    )
                opt.zero_grad(set_to_none=True)
                out = self.meta_step(*batch)
                out.loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                record = out.summary()
                history.append(record)
                bar.update(1)
                key = "accuracy" if "accuracy" in record else "mse"
                bar.set_postfix(loss=f"{record['query_loss']:.3f}", **{key: f"{record[key]:.3f}"})
                if callback is not None:
                    callback(len(history) - 1, out)
        return history


def _length(tasks: Iterable[Any]) -> int | None:
    try:
        return len(tasks)  # type: ignore[arg-type]
    except TypeError:
        return None


def _tensor_key(x: Tensor) -> tuple[object, ...]:
    """Identify a view of a meta-batch (the same task's inputs, whatever the view object)."""
    return (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype, x.device)


class MetaLearner(Learner):
    """Base of the reference learners: the per-task loop shared by MAML, ANIL, Meta-SGD, ProtoNet.

    Subclasses say how one task is solved (:meth:`_adapt`) and how a task is solved on given
    head inputs with the backbone frozen (:meth:`head_task`, used by MetaCRL's causal step).

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

        >>> import torch
        >>> from torch import nn
        >>> from torch.func import functional_call
        >>> from metacrl import MetaCRLRegularizer
        >>> from metacrl.models import FeatureHead
        >>> class NoAdapt(MetaLearner):
        ...     def _adapt(self, x_spt, y_spt, loss_fn, factors, *, training, steps):
        ...         self._support_head_inputs(x_spt, factors, training)  # the task's gates
        ...         return lambda x: self.net.head(self._head_inputs(x, factors))
        ...     def head_task(self, h_spt, y_spt, h_qry, loss_fn):
        ...         frozen = {n: p.detach() for n, p in self.net.head.named_parameters()}
        ...         return functional_call(self.net.head, frozen, (h_qry,))
        >>> learner = NoAdapt(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8))
        >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
        >>> out = learner.meta_step(x, y, x, y)
        >>> out.loss.backward()
        >>> learner.feature_dim, out.task_losses.shape
        (8, torch.Size([2]))
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4, crl_steps=1)
        >>> reg.wrap(learner).meta_step(x, y, x, y).loss.requires_grad
        True
    """

    inner_steps: int = 0
    test_inner_steps: int = 0
    adapts_backbone: bool = True
    """Whether the inner loop changes ``model.features`` (MAML, Meta-SGD). Learners whose
    backbone stays at θ during adaptation (ANIL, ProtoNet) set ``False``; MetaCRL then takes
    the environments' features from the meta-step's own forward pass instead of running the
    backbone a second time."""

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
        self.__dict__["net"] = GatedModel(model)

    net: GatedModel

    @property
    def feature_dim(self) -> int:
        """The model's feature size."""
        return self.net.feature_dim

    # ------------------------------------------------------------------ public interface
    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Adapt to each task of a meta-batch and return the mean query loss.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets ``[T, n_support]`` (labels ``0..n_way-1``) or
                ``[T, n_support, ...]`` (regression).
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The meta-loss (call ``.backward()`` once per meta-batch) and the query scores.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, labels do not fit the
                model's outputs, or (ProtoNet) a support set lacks a label.
            NonFiniteLossError: If the meta-loss is NaN or infinite.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> opt = torch.optim.SGD(learner.parameters(), lr=0.01)
            >>> out = learner.meta_step(x, y, x, y)
            >>> out.loss.backward(); opt.step()
            >>> out.task_losses.shape, out.problem
            (torch.Size([2]), 'classification')
        """
        return self._meta_step(self.as_batch(x_spt, y_spt, x_qry, y_qry), _no_factors)

    def evaluate(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        x_qry: Tensor,
        y_qry: Tensor,
        inner_steps: int | None = None,
    ) -> EvalOutput:
        """Meta-test on a meta-batch: adapt to each task, score its query set.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.
            inner_steps: Inner steps at test time (default: ``None``, ``test_inner_steps``).

        Returns:
            Per-task losses and scores, without any graph.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, or ``inner_steps`` is
                not an integer ``>= 0``.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> out = learner.evaluate(x, y, x, y)
            >>> out.task_scores.shape, out.task_losses.requires_grad
            (torch.Size([2]), False)
        """
        return self._evaluate(self.as_batch(x_spt, y_spt, x_qry, y_qry), _no_factors, inner_steps)

    def adapt(self, x_spt: Tensor, y_spt: Tensor, inner_steps: int | None = None) -> Predictor:
        """Adapt to one task and return the adapted model as a function of inputs.

        Args:
            x_spt: One task's support inputs ``[n_support, ...]``.
            y_spt: Its targets ``[n_support]`` or ``[n_support, ...]``.
            inner_steps: Inner steps (default: ``None``, ``test_inner_steps``).

        Returns:
            A function mapping query inputs ``[n, ...]`` to outputs, without meta-graph. It
            moves its inputs to the learner's device and dtype and runs under
            ``torch.no_grad()``.

        Raises:
            TypeError: If ``x_spt`` or ``y_spt`` is not a tensor.
            ValueError: If they carry a task axis or are otherwise malformed.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> predict = learner.adapt(x[0], y[0])
            >>> out = predict(torch.randn(5, 4))
            >>> out.shape, out.requires_grad
            (torch.Size([5, 3]), False)
        """
        return self._adapt_one(x_spt, y_spt, None, inner_steps)

    # ------------------------------------------------------------------ shared machinery
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        for p in self.parameters():
            if p.is_floating_point():
                return p.device, p.dtype
        return torch.device("cpu"), torch.get_default_dtype()

    def as_batch(self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor) -> MetaBatch:
        """Validate a meta-batch and move it to this learner's device and dtype.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The checked :class:`~metacrl.learners.MetaBatch` (see
            :func:`~metacrl.learners.batch.as_meta_batch`), floating tensors cast to the
            learner's dtype.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, or labels are negative.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> batch = learner.as_batch(x.double(), y, x, y)
            >>> batch.x_spt.dtype, batch.num_tasks, batch.num_labels
            (torch.float32, 2, 3)
        """
        device, dtype = self._device_dtype()
        batch = as_meta_batch(
            x_spt, y_spt, x_qry, y_qry, problem=self.task_loss.problem, device=device, dtype=dtype
        )
        self._check_batch(batch)
        return batch

    def _check_batch(self, batch: MetaBatch) -> None:
        """Learner-specific checks of a validated batch (none by default)."""

    def _steps(self, inner_steps: int | None) -> int:
        steps = self.test_inner_steps if inner_steps is None else inner_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"inner_steps must be an integer >= 0, got {steps!r}")
        return steps

    def _solve_tasks(
        self, batch: MetaBatch, make_factors: FactorsFactory, *, training: bool, steps: int
    ) -> tuple[Tensor, Tensor]:
        """Adapt to every task of ``batch``; return the query losses and scores, ``[T]`` each.

        With ``training=True`` the losses keep the graph to the meta-parameters; otherwise no
        graph is kept.
        """
        loss_fn = self.task_loss.checked(batch.num_labels)
        losses, scores = [], []
        for t in range(batch.num_tasks):
            x_s, y_s, x_q, y_q = batch.task(t)
            predict = self._adapt(x_s, y_s, loss_fn, make_factors(), training=training, steps=steps)
            with torch.set_grad_enabled(training and torch.is_grad_enabled()):
                out = predict(x_q)
                losses.append(loss_fn(out, y_q))
            scores.append(self.task_loss.metric(out.detach(), y_q))
        return torch.stack(losses), torch.stack(scores)

    def _meta_step(self, batch: MetaBatch, make_factors: FactorsFactory) -> MetaStepOutput:
        task_losses, scores = self._solve_tasks(
            batch, make_factors, training=True, steps=self.inner_steps
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

    def _evaluate(
        self, batch: MetaBatch, make_factors: FactorsFactory, inner_steps: int | None
    ) -> EvalOutput:
        steps = self._steps(inner_steps)
        losses, scores = self._solve_tasks(batch, make_factors, training=False, steps=steps)
        return EvalOutput(losses.detach(), scores, self.task_loss.problem)

    def _adapt_one(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        factors: TaskFactors | None,
        inner_steps: int | None,
    ) -> Predictor:
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
        predict = self._adapt(
            x_s, y_s, self.task_loss.checked(batch.num_labels), factors, training=False, steps=steps
        )
        device, dtype = self._device_dtype()

        def adapted(x: Tensor) -> Tensor:
            with torch.no_grad():
                return predict(x.to(device=device, dtype=dtype))

        return adapted

    def _features(self, x: Tensor) -> Tensor:
        """``model.features(x)``, or the value computed for ``x`` by :meth:`_shared_features`."""
        memo: dict[tuple[object, ...], Tensor] | None = self.__dict__.get("_feature_memo")
        if memo is not None:
            hit = memo.get(_tensor_key(x))
            if hit is not None:
                return hit
        feats: Tensor = self.net.features(x)
        return feats

    def _can_share_features(self) -> bool:
        """Whether the meta-step computes every task's features at θ through :meth:`_features`."""
        return not self.adapts_backbone

    @contextmanager
    def _shared_features(self, batch: MetaBatch) -> Iterator[list[Environment]]:
        """Compute every task's features once; serve them to :meth:`_features` in the block.

        Yields the tasks as environments (the same features, detached). The features keep
        their graph when gradients are enabled, so the meta-step's loss reaches θ through them.
        """
        envs, memo = self._task_features(batch)
        self.__dict__["_feature_memo"] = memo
        try:
            yield envs
        finally:
            self.__dict__["_feature_memo"] = None

    def _task_features(
        self, batch: MetaBatch
    ) -> tuple[list[Environment], dict[tuple[object, ...], Tensor]]:
        """Every task's support and query features at θ, one backbone call per set.

        Returns them as environments (detached) and by input (see :func:`_tensor_key`), the
        latter with their graph when gradients are enabled.
        """
        memo: dict[tuple[object, ...], Tensor] = {}
        envs = []
        for t in range(batch.num_tasks):
            x_s, y_s, x_q, y_q = batch.task(t)
            f_s, f_q = self.net.features(x_s), self.net.features(x_q)
            memo[_tensor_key(x_s)], memo[_tensor_key(x_q)] = f_s, f_q
            envs.append(Environment(f_s.detach(), y_s, f_q.detach(), y_q))
        return envs, memo

    def _head_inputs(self, x: Tensor, factors: TaskFactors | None) -> Tensor:
        """What the head sees for inputs ``x``: the features, gated when ``factors`` is given."""
        feats = self._features(x)
        return feats if factors is None else factors.transform(feats)

    def _support_head_inputs(
        self, x_spt: Tensor, factors: TaskFactors | None, training: bool
    ) -> Tensor:
        """Head inputs of a support set; computes the task's gates from it first."""
        with torch.set_grad_enabled(training and torch.is_grad_enabled()):
            feats = self._features(x_spt)
            if factors is None:
                return feats
            factors.prepare(feats)
            return factors.transform(feats)

    def environments(self, batch: MetaBatch) -> list[Environment]:
        """Return the tasks of ``batch`` as environments: features at the current θ, no grad.

        Args:
            batch: A validated meta-batch (see :meth:`as_batch`).

        Returns:
            One :class:`~metacrl.regularizer.Environment` per task, in order, holding the
            support and query features (computed under ``torch.no_grad()``) and the targets.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> envs = learner.environments(learner.as_batch(x, y, x, y))
            >>> len(envs), envs[0].support_features.shape, envs[0].query_features.requires_grad
            (2, torch.Size([6, 8]), False)
        """
        with torch.no_grad():
            return self._task_features(batch)[0]

    # ------------------------------------------------------------------ per learner
    @abc.abstractmethod
    def _adapt(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        loss_fn: LossFn,
        factors: TaskFactors | None,
        *,
        training: bool,
        steps: int,
    ) -> Predictor:
        """Solve one task from its support set; return the adapted model's predictor.

        With ``training=True`` the predictor's outputs keep the graph back to the
        meta-parameters (second order unless the learner is first-order).
        """

    @abc.abstractmethod
    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Solve ``E`` tasks on given head inputs with the backbone frozen.

        Gradients must flow to ``h_spt`` and ``h_qry`` (second order through any inner loop)
        but not to the learner's parameters. MetaCRL's causal step calls it (it is a
        :data:`~metacrl.regularizer.HeadTask`).

        Args:
            h_spt: Support head inputs ``[E, n, k]``.
            y_spt: Support targets ``[E, n, ...]``.
            h_qry: Query head inputs ``[E, q, k]``.
            loss_fn: The task loss.

        Returns:
            Query outputs ``[E, q, ...]``.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from metacrl import MAML
            >>> from metacrl.models import FeatureHead
            >>> learner = MAML(FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
            ...                inner_lr=0.1, inner_steps=1)
            >>> x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
            >>> h_spt = torch.randn(2, 6, 8, requires_grad=True)
            >>> out = learner.head_task(h_spt, y, torch.randn(2, 4, 8), learner.task_loss)
            >>> out.shape, out.requires_grad
            (torch.Size([2, 4, 3]), True)
        """
