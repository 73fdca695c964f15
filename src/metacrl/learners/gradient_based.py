"""Shared pieces of the gradient-based learners (MAML, ANIL, Meta-SGD)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from metacrl.learners.base import MetaLearner
from metacrl.learners.batch import MetaBatch
from metacrl.learners.inner_loop import Backend, LearningRates, inner_loop
from metacrl.learners.linear_head import adapt_linear_heads
from metacrl.learners.losses import LossFn, LossName

__all__ = ["GradientLearner"]


def _check_steps(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class GradientLearner(MetaLearner):
    """A learner whose inner loop is gradient descent on some of the model's parameters.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        inner_lr: Inner-loop step size.
        inner_steps: Inner-loop steps during meta-training.
        first_order: Drop second-order terms of the meta-gradient.
        test_inner_steps: Inner steps at meta-test (default: ``inner_steps``).
        loss: ``"cross_entropy"`` or ``"mse"``.
        backend: ``"func"`` or ``"higher"``.
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float,
        inner_steps: int,
        first_order: bool = False,
        test_inner_steps: int | None = None,
        *,
        loss: LossName = "cross_entropy",
        backend: Backend = "func",
    ) -> None:
        super().__init__(model, loss=loss, backend=backend)
        if (
            isinstance(inner_lr, bool)
            or not isinstance(inner_lr, int | float)
            or not math.isfinite(inner_lr)
            or inner_lr <= 0
        ):
            raise ValueError(f"inner_lr must be a finite number > 0, got {inner_lr!r}")
        self.inner_lr = float(inner_lr)
        self.inner_steps = _check_steps("inner_steps", inner_steps)
        self.test_inner_steps = _check_steps(
            "test_inner_steps", inner_steps if test_inner_steps is None else test_inner_steps
        )
        self.first_order = bool(first_order)

    def _check_batch(self, batch: MetaBatch) -> None:
        """Refuse float16 autocast in second-order mode (its double backward overflows)."""
        device_type = batch.x_spt.device.type
        if (
            not self.first_order
            and torch.is_autocast_enabled(device_type)
            and torch.get_autocast_dtype(device_type) == torch.float16
        ):
            raise ValueError(
                "float16 autocast gives NaN in second-order inner loops (the double backward "
                "overflows); use torch.autocast(..., dtype=torch.bfloat16), float32, or "
                "first_order=True"
            )

    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``."""
        return (
            f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}, "
            f"test_inner_steps={self.test_inner_steps}, first_order={self.first_order}, "
            f"backend={self.backend!r}"
        )

    def _head_rates(self) -> LearningRates:
        """Step sizes of the head's parameters (names relative to the head)."""
        return self.inner_lr

    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Adapt the head (from its current weights, held constant) on each of ``E`` tasks.

        The head takes ``inner_steps`` steps per task; the graph is kept with respect to the
        inputs, so the result is differentiable in ``h_spt`` and ``h_qry`` to second order. A
        plain ``nn.Linear`` head takes a batched closed-form path; any other head runs the
        generic inner loop task by task.

        Args:
            h_spt: Support head inputs ``[E, n, k]``.
            y_spt: Support targets ``[E, n, ...]``.
            h_qry: Query head inputs ``[E, q, k]``.
            loss_fn: The task loss.

        Returns:
            Query outputs ``[E, q, ...]``.
        """
        head = self.net.head
        rates = self._head_rates()
        if type(head) is nn.Linear and head.weight.requires_grad:
            return adapt_linear_heads(
                head,
                h_spt,
                y_spt,
                h_qry,
                loss=self.task_loss.name,
                steps=self.inner_steps,
                lr=rates,
            )
        if isinstance(rates, Mapping):
            rates = {n: r.detach() for n, r in rates.items()}
        names = [n for n, p in head.named_parameters() if p.requires_grad]
        outputs = []
        with torch.enable_grad():
            for h_s, y_s, h_q in zip(h_spt, y_spt, h_qry, strict=True):
                predict = inner_loop(
                    head,
                    names,
                    h_s,
                    y_s,
                    loss_fn,
                    steps=self.inner_steps,
                    lr=rates,
                    training=True,
                    detach_init=True,
                    backend="func",
                )
                outputs.append(predict(h_q))
        return torch.stack(outputs)
