"""The interface every learner offers: ``meta_step``, ``evaluate``, ``adapt`` and ``fit``."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from metacrl.learners.fit import Callback, fit
from metacrl.learners.outputs import EvalOutput, MetaStepOutput
from metacrl.typing import Predictor

__all__ = ["Learner"]


class Learner(nn.Module, abc.ABC):
    """What every learner offers: ``meta_step``, ``evaluate``, ``adapt`` and ``fit``.

    An abstract ``nn.Module``: the reference learners derive from
    :class:`~metacrl.learners.MetaLearner`, and :class:`~metacrl.MetaCRLLearner` (what
    ``reg.wrap(learner)`` returns) derives from it directly. Code that trains or evaluates a
    learner (:func:`~metacrl.learners.fit.train_step`, :class:`~metacrl.train.Trainer`,
    :func:`~metacrl.train.evaluate_episodes`) relies on this interface only.

    Example:
        >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
        >>> isinstance(learner, Learner)
        True
        >>> learner.meta_step(x, y, x, y).loss.requires_grad       # meta-training
        True
        >>> learner.evaluate(x, y, x, y).task_scores.shape         # meta-testing
        torch.Size([2])
        >>> learner.adapt(x[0], y[0])(torch.randn(5, 4)).shape     # one task
        torch.Size([5, 3])
    """

    @abc.abstractmethod
    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Adapt to each task of a meta-batch and return the meta-loss on the query sets.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets ``[T, n_support]`` (labels ``0..n_way-1``) or
                ``[T, n_support, ...]`` (regression).
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The differentiable meta-loss (call ``.backward()`` once per meta-batch) and the
            query scores.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, or labels do not fit
                the model's outputs.
            NonFiniteLossError: If the meta-loss is NaN or infinite.
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

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the shapes disagree, inputs are not finite, or ``inner_steps`` is
                not an integer ``>= 0``.
        """

    @abc.abstractmethod
    def adapt(self, x_spt: Tensor, y_spt: Tensor, inner_steps: int | None = None) -> Predictor:
        """Adapt to one task (``[n_support, ...]``) and return a function of query inputs.

        Args:
            x_spt: One task's support inputs ``[n_support, ...]`` (no task axis).
            y_spt: Its targets ``[n_support]`` or ``[n_support, ...]``.
            inner_steps: Inner steps (default: ``None``, the learner's test-time setting).

        Returns:
            The adapted model as a function of query inputs ``[n, ...]``: it moves them to the
            learner's device and dtype and runs under ``torch.no_grad()``.

        Raises:
            TypeError: If ``x_spt`` or ``y_spt`` is not a tensor.
            ValueError: If they carry a task axis or are otherwise malformed.
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

        Each step is :func:`~metacrl.learners.fit.train_step`, the step the command line's
        trainer takes too.

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
            >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
            >>> history = learner.fit([(x, y, x, y)] * 3, progress=False)
            >>> len(history), sorted(history[0])
            (3, ['accuracy', 'loss', 'query_loss'])
        """
        return fit(
            self,
            tasks,
            iterations,
            optimizer=optimizer,
            lr=lr,
            progress=progress,
            callback=callback,
        )
