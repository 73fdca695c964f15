"""One meta-batch of a user's own inner loop, with the whole of MetaCRL's upper level."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from metacrl.learners import MetaBatch, TaskFeatures
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.upper_level import UpperLevel

__all__ = ["LoopBatch"]

FeaturesFn = Callable[[Tensor], Tensor]


class LoopBatch:
    """A meta-batch of your own loop: the tasks' gates and θ's outer loss, MetaCRL included.

    Made by :meth:`GatedModel.meta_batch <metacrl.GatedModel.meta_batch>`, which records the
    tasks as environments and, in the alternating schedule, has already run the causal steps
    over them and the replayed ones. Then, per task, :meth:`task` gives the gates to pass as
    ``task=`` to the wrapped module, and once the tasks are solved :meth:`outer_loss` turns
    their query losses into θ's meta-loss (and remembers this meta-batch for the replay).
    This is what ``reg.wrap(MAML(model, ...)).meta_step`` computes, step for step.

    Args:
        module: The MetaCRL module.
        batch: The validated meta-batch.
        environments: Its tasks' features at θ (without gradient).
        upper: The upper level, built on these and the replayed environments.
        features: The backbone (``model.features``), for each task's gates.
        remember: Called with the environments when :meth:`outer_loss` closes the batch.

    Attributes:
        metrics: The MetaCRL terms under ``crl/*`` keys, for logging.

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=8, crl_steps=1)
        >>> net = reg.wrap(model, head_lr=0.1, head_steps=1)
        >>> batch = net.meta_batch(x, y, x, y)                 # causal steps happen here
        >>> losses = [nn.functional.cross_entropy(net(x[t], task=batch.task(t)), y[t])
        ...           for t in range(batch.num_tasks)]           # (an inner loop goes here)
        >>> batch.outer_loss(losses).backward()
        >>> sorted(batch.metrics)[-1], len(net.replay)
        ('crl/task', 1)
    """

    def __init__(
        self,
        module: MetaCRLModule,
        batch: MetaBatch,
        environments: list[TaskFeatures],
        upper: UpperLevel,
        features: FeaturesFn,
        remember: Callable[[list[TaskFeatures]], None],
    ) -> None:
        self.module = module
        self.batch = batch
        self.environments = environments
        self._upper = upper
        self._features = features
        self._remember = remember
        self._backpropagated: list[int] = []
        self._closed = False

    @property
    def num_tasks(self) -> int:
        """The number of tasks ``T`` of the meta-batch."""
        return self.batch.num_tasks

    @property
    def metrics(self) -> dict[str, float]:
        """The MetaCRL terms of this meta-batch under ``crl/*`` keys."""
        return self._upper.metrics

    def task(self, t: int) -> TaskFactors:
        """Task ``t``'s gates, from its support features at θ; pass them as ``task=``.

        Compute them once per task, before its inner loop: they stay fixed while θ adapts. In
        the alternating schedule ``Xi`` and ``f_gr`` are constants here (the causal steps
        trained them); in the joint schedule θ's loss reaches them too.

        Args:
            t: The task's index in the meta-batch, ``0 <= t < num_tasks``.

        Returns:
            The task's :class:`~metacrl.regularizer.TaskFactors`.

        Raises:
            IndexError: If ``t`` is out of range.
            RuntimeError: If the batch is already closed by :meth:`outer_loss`.
        """
        self._check_open("task")
        if not isinstance(t, int) or not 0 <= t < self.num_tasks:
            raise IndexError(f"task index {t!r} out of range for {self.num_tasks} tasks")
        factors = TaskFactors(self.module, frozen=self._upper.frozen)
        factors.prepare(self._features(self.batch.x_spt[t]))
        if factors.gates.requires_grad:
            factors.gates.register_hook(  # type: ignore[no-untyped-call]
                lambda grad, t=t: self._note_backward(t, grad)
            )
        return factors

    def outer_loss(self, task_query_losses: Sequence[Tensor] | Tensor) -> Tensor:
        """θ's meta-loss from the tasks' query losses; closes the batch.

        The mean query loss, plus ``lambda_inv * L_inv + L_dis`` over the current and
        replayed environments in the joint schedule. Call ``.backward()`` on it once, then
        step the meta-optimiser (over ``net.parameters()``: θ, ``Xi`` and ``f_gr``).

        Args:
            task_query_losses: One scalar query loss per task, in task order, each with its
                graph (a list, or a 1-D tensor of ``num_tasks`` losses).

        Returns:
            The scalar meta-loss.

        Raises:
            ValueError: If the count is not ``num_tasks``, a loss is not a scalar or has no
                graph, or a loss was already backpropagated task by task.
            RuntimeError: If the batch is already closed.
            NonFiniteLossError: If the meta-loss is NaN or infinite.
        """
        self._check_open("outer_loss")
        if self._backpropagated:
            raise ValueError(
                f"the query loss of task {self._backpropagated[0]} was already backpropagated "
                "(a per-task loss.backward() in the loop?): collect the tasks' query losses "
                "in a list and call batch.outer_loss(losses).backward() once"
            )
        if isinstance(task_query_losses, Tensor) and task_query_losses.dim() != 1:
            raise ValueError(
                "batch.outer_loss takes one scalar query loss per task (a list, or a 1-D "
                f"tensor), got a tensor of shape {tuple(task_query_losses.shape)}; pass the "
                "per-task losses, not their mean"
            )
        losses = list(task_query_losses)
        if len(losses) != self.num_tasks:
            raise ValueError(
                f"batch.outer_loss got {len(losses)} query losses for a meta-batch of "
                f"{self.num_tasks} tasks; pass one per task, in task order"
            )
        for t, loss in enumerate(losses):
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"query loss {t} must be a scalar tensor, got {shape}")
            if torch.is_grad_enabled() and not loss.requires_grad:
                raise ValueError(
                    f"query loss {t} has no graph (made under torch.no_grad(), or "
                    ".detach()/.item() taken?): pass the losses themselves, as the meta-"
                    "gradient flows through them"
                )
        loss = self._upper.outer_loss(torch.stack(losses).mean())
        self._closed = True
        self._remember(self.environments)
        return loss

    # ------------------------------------------------------------------ internals
    def _note_backward(self, t: int, grad: Tensor) -> Tensor:
        if not self._closed:
            self._backpropagated.append(t)
        return grad

    def _check_open(self, name: str) -> None:
        if self._closed:
            raise RuntimeError(
                f"batch.{name}: this meta-batch is closed by outer_loss; start the next one "
                "with net.meta_batch(...)"
            )
