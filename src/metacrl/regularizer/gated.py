"""The module ``reg.wrap(model)`` returns: a model whose head sees a task's gated factors."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from metacrl.learners import ANIL
from metacrl.models import TaskModel
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.loop_batch import LoopBatch
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.replay import Replay
from metacrl.regularizer.upper_level import UpperLevel
from metacrl.typing import HeadTransform, LossName

__all__ = ["GatedModel"]


class GatedModel(TaskModel):
    """``head(T(features(x)))`` with ``T`` a task's gated factors, for a user's own inner loop.

    Build it with ``reg.wrap(model)``. It shares ``features`` and ``head`` with ``model`` (so
    parameter names stay ``features.*`` and ``head.*``), can be patched by
    ``higher.innerloop_ctx`` or called through ``torch.func.functional_call``, and registers the
    regularizer, so that ``parameters()`` include ``Xi`` and ``f_gr`` for the meta-optimiser.

    For the whole method in your loop (the schedule, the causal steps, the replay), begin
    each meta-batch with :meth:`meta_batch`; its :class:`~metacrl.regularizer.LoopBatch` gives
    each task's gates and θ's outer loss. The causal objective solves each environment by
    adapting the head alone, ``head_steps`` gradient steps of size ``head_lr`` from its
    current weights (what ``MAML(model, inner_lr=head_lr, inner_steps=head_steps)`` does in
    its causal step): set them to your inner loop's step size and number of steps.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        regularizer: The MetaCRL regularizer whose gates the head sees.
        head_lr: Step size of the causal objective's head solver (default: ``0.01``, MAML's).
        head_steps: Its number of steps (default: ``5``, MAML's).
        loss: The task loss of your loop: ``"cross_entropy"`` (default) or ``"mse"``.

    Attributes:
        replay: The earlier meta-batches that :meth:`meta_batch` adds as environments (saved
            with ``state_dict()``).

    Example:
        >>> import higher
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=8)
        >>> net = reg.wrap(model)
        >>> task = reg.task(model.features(x[0]))
        >>> inner_opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, opt):
        ...     _ = opt.step(fnet(x[0], task=task).logsumexp(-1).mean())
        ...     out = fnet(x[0], task=task)
        >>> out.shape, any(p is reg.xi for p in net.parameters())
        (torch.Size([6, 3]), True)
    """

    def __init__(
        self,
        model: nn.Module,
        regularizer: MetaCRLModule,
        *,
        head_lr: float = 0.01,
        head_steps: int = 5,
        loss: LossName = "cross_entropy",
    ) -> None:
        super().__init__(model)
        self.regularizer = regularizer
        self.head_lr = head_lr
        self.head_steps = head_steps
        self.loss = loss
        self.replay = Replay(regularizer.replay)

    def solver(self) -> ANIL:
        """The causal objective's head solver: ANIL on this module's features and head.

        Built when asked for, so that no learner sits in the module tree (``higher`` patches
        every module it finds there).

        Returns:
            ``ANIL(features, head, inner_lr=head_lr, inner_steps=head_steps, loss=loss)``.
        """
        return ANIL(
            TaskModel(self), inner_lr=self.head_lr, inner_steps=self.head_steps, loss=self.loss
        )

    def meta_batch(self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor) -> LoopBatch:
        """Begin a meta-batch of your loop: MetaCRL's upper level, as the reference learners run it.

        Records the tasks as environments (features at θ, without gradient). In the
        alternating schedule, runs the ``crl_steps`` causal steps on ``Xi`` and ``f_gr`` over
        them and the last ``replay`` meta-batches now, before θ's tasks are solved.

        Args:
            x_spt: Support inputs ``[T, n_support, ...]``.
            y_spt: Support targets ``[T, n_support]`` (labels) or ``[T, n_support, ...]``.
            x_qry: Query inputs ``[T, n_query, ...]``.
            y_qry: Query targets.

        Returns:
            The :class:`~metacrl.regularizer.LoopBatch`: ``task(t)`` per task, then
            ``outer_loss(query_losses)``.

        Raises:
            TypeError: If an input is not a tensor or has the wrong dtype.
            ValueError: If the meta-batch is malformed.
            NonFiniteLossError: If the causal objective is NaN or infinite.
        """
        reg, solver = self.regularizer, self.solver()
        batch = solver.as_batch(x_spt, y_spt, x_qry, y_qry)
        current = solver.task_features(reg.environment_batch(batch))
        replayed = self.replay.environments(solver.task_features)
        loss_fn = solver.task_loss.checked(batch.num_labels)
        upper = UpperLevel(reg, current + replayed, solver.head_task, loss_fn)

        def remember(environments: list[Any]) -> None:
            if reg.replay > 0:
                kept = reg.environment_batch(batch).detach() if reg.refresh_replay else environments
                self.replay.remember(kept)

        return LoopBatch(reg, batch, current, upper, solver.features, remember)

    def test_task(self, x_spt: Tensor) -> TaskFactors:
        """A task's gates at meta-test, from its support inputs; pass them as ``task=``.

        ``Xi`` and ``f_gr`` are used as they are, nothing is kept for a penalty and no graph
        is made (as :meth:`MetaCRLLearner.evaluate <metacrl.MetaCRLLearner.evaluate>`).

        Args:
            x_spt: One task's support inputs ``[n_support, ...]``.

        Returns:
            The task's :class:`~metacrl.regularizer.TaskFactors`.
        """
        factors = TaskFactors(self.regularizer, frozen=True)
        with torch.no_grad():
            factors.prepare(self.features(x_spt))
        return factors

    def get_extra_state(self) -> dict[str, Any]:
        """Save the replay with the parameters (``state_dict()`` stores it as ``_extra_state``).

        Returns:
            ``{"replay": ...}`` (see :meth:`metacrl.regularizer.Replay.state`).
        """
        return {"replay": self.replay.state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the replay (``load_state_dict()`` calls it).

        Args:
            state: What :meth:`get_extra_state` returned.
        """
        self.replay.load(state.get("replay", []))

    def forward(self, x: Tensor, task: HeadTransform | None = None) -> Tensor:
        """Return the head's output on the gated factors of ``x``.

        Args:
            x: A batch of inputs.
            task: The task's factors from ``reg.task(support_features)`` (required).

        Returns:
            The head's outputs, also recorded as ``task.last_output`` (``reg.penalty`` takes
            the IRM penalty from it).

        Raises:
            ValueError: If ``task`` is ``None``.
        """
        if task is None:
            raise ValueError(
                "this model is wrapped by MetaCRLRegularizer: call it as "
                "net(x, task=reg.task(support_features)) so the head sees the task's gated "
                "factors (use the unwrapped model for a plain forward)"
            )
        out = super().forward(x, task)
        if isinstance(task, TaskFactors):
            task.last_output = out
        return out
