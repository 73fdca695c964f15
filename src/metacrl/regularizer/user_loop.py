"""The state of a user-written loop: the tasks opened since the last penalty."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.module import MetaCRLModule

__all__ = ["OpenTasks"]


class OpenTasks:
    """The tasks a user's loop opened with ``reg.task`` and the penalty that closes them.

    :class:`~metacrl.MetaCRLRegularizer` keeps one; its ``task``, ``penalty`` and
    ``reset_tasks`` call :meth:`open`, :meth:`penalty` and :meth:`reset`.

    Args:
        module: The MetaCRL module whose gates and penalties are used.

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4, invariance="vrex")
        >>> tasks = OpenTasks(reg)
        >>> _ = [tasks.open(torch.randn(5, 8)) for _ in range(2)]
        >>> losses = [torch.tensor(v, requires_grad=True) for v in (1.0, 2.0)]
        >>> tasks.penalty(losses).dim(), len(tasks)
        (0, 0)
    """

    def __init__(self, module: MetaCRLModule) -> None:
        self.module = module
        self._tasks: list[TaskFactors] = []

    def __len__(self) -> int:
        return len(self._tasks)

    def open(self, support_features: Tensor, *, track: bool = True) -> TaskFactors:
        """Compute a task's gates from its support features; keep it for :meth:`penalty`.

        Args:
            support_features: ``model.features(x_spt)``, ``[n_support, feature_dim]``.
            track: Keep the task for the next :meth:`penalty` (default: ``True``).

        Returns:
            The task's :class:`~metacrl.regularizer.TaskFactors`.

        Raises:
            TypeError: If ``support_features`` is not a tensor.
            ValueError: If it is not ``[n_support, feature_dim]``.
        """
        if not isinstance(support_features, Tensor):
            raise TypeError(
                "reg.task takes support_features as a torch.Tensor [n_support, feature_dim], "
                f"got {type(support_features).__name__}"
            )
        if support_features.dim() != 2:
            raise ValueError(
                "reg.task takes one task's support features [n_support, feature_dim], got "
                f"shape {tuple(support_features.shape)}"
            )
        factors = TaskFactors(self.module, self.module.gates(support_features))
        if track:
            self._tasks.append(factors)
        return factors

    def reset(self) -> None:
        """Forget the open tasks."""
        self._tasks.clear()

    def penalty(
        self,
        task_query_losses: Sequence[Tensor] | Tensor,
        task_query_outputs: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Return ``lambda_inv * L_inv + L_dis`` over the open tasks, and close them.

        Args:
            task_query_losses: One scalar query loss per open task, in the order they were
                opened.
            task_query_outputs: The query outputs each loss was computed from (needed by the
                IRM penalty; default: each task's last output recorded by
                :class:`~metacrl.GatedModel`).

        Returns:
            The scalar penalty.

        Raises:
            ValueError: If no task is open, the counts differ, the losses are not per task or
                have no graph, or the IRM penalty lacks a task's outputs.
        """
        if isinstance(task_query_losses, Tensor) and task_query_losses.dim() != 1:
            raise ValueError(
                "reg.penalty takes one scalar query loss per task (a list, or a 1-D tensor), got "
                f"a tensor of shape {tuple(task_query_losses.shape)}; pass the per-task losses, "
                "not their mean"
            )
        tasks = self._tasks
        losses = list(task_query_losses)
        if not tasks:
            raise ValueError("reg.penalty: no task is open; call reg.task(support_features) first")
        if len(losses) != len(tasks):
            raise ValueError(
                f"reg.penalty got {len(losses)} query losses but {len(tasks)} tasks were opened "
                "with reg.task since the last penalty: open one task per support set "
                "([n_support, feature_dim], not a whole meta-batch's features), open tasks "
                "outside training with track=False (meta-test), and call reg.reset_tasks() "
                "after an abandoned meta-batch"
            )
        if torch.is_grad_enabled() and not all(
            isinstance(loss, Tensor) and loss.requires_grad for loss in losses
        ):
            raise ValueError(
                "reg.penalty needs the query losses with their graph (made under "
                "torch.no_grad(), or .detach()/.item() taken?): pass the losses themselves"
            )
        gates = torch.stack([t.gates for t in tasks])
        outputs: list[Tensor] = []
        if self.module.invariance == "irm":
            if task_query_outputs is None:
                missing = [i for i, t in enumerate(tasks) if t.last_output is None]
                if missing:
                    raise ValueError(
                        f"the IRM penalty needs each task's query outputs: tasks {missing} made "
                        "no forward with task=...; pass task_query_outputs"
                    )
                outputs = [t.last_output for t in tasks if t.last_output is not None]
            else:
                outputs = list(task_query_outputs)
        inv = self.module.invariance_penalty(losses, outputs)
        self._tasks = []
        return self.module.lambda_inv * inv + self.module.disentanglement_loss(gates)
