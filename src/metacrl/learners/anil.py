"""ANIL: Almost No Inner Loop (Raghu et al., 2020): adapt only the head."""

from __future__ import annotations

from torch import Tensor, nn

from metacrl.learners.gradient_based import GradientLearner
from metacrl.learners.inner_loop import inner_loop
from metacrl.typing import Backend, HeadTransform, LossFn, LossName, Predictor

__all__ = ["ANIL"]


class ANIL(GradientLearner):
    """ANIL: the inner loop adapts the head only; the features are computed once per set.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        inner_lr: Inner-loop step size of the head (default: ``0.1``).
        inner_steps: Inner steps during meta-training (default: ``5``).
        first_order: Drop second-order terms of the meta-gradient (default: ``False``).
        test_inner_steps: Inner steps at meta-test (default: ``None``, ``inner_steps``).
        loss: ``"cross_entropy"`` (default) or ``"mse"``.
        backend: ``"func"`` (default), ``"higher"`` or ``"vmap"`` (the heads of all tasks of a
            meta-batch in one vectorised inner loop; no torch BatchNorm layers).

    Example:
        >>> anil = ANIL(model, inner_lr=0.1, inner_steps=5)
        >>> anil.meta_step(x, y, x, y).loss.requires_grad
        True
    """

    adapts_backbone = False

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        first_order: bool = False,
        test_inner_steps: int | None = None,
        *,
        loss: LossName = "cross_entropy",
        backend: Backend = "func",
    ) -> None:
        super().__init__(
            model, inner_lr, inner_steps, first_order, test_inner_steps, loss=loss, backend=backend
        )

    def _vmap_head_only(self) -> bool:
        return True

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
        """Adapt the head on the support features (see :meth:`MetaLearner.solve_task`)."""
        head = self.net.head
        h_spt = self.support_head_inputs(x_spt, transform, training)
        names = [n for n, p in head.named_parameters() if p.requires_grad]
        predict_head = inner_loop(
            head,
            names,
            h_spt,
            y_spt,
            loss_fn,
            steps=steps,
            lr=self.inner_lr,
            first_order=self.first_order,
            training=training,
            backend=self.backend,
        )
        return lambda x: predict_head(self.head_inputs(x, transform))
