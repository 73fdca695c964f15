"""ANIL: Almost No Inner Loop (Raghu et al., 2020): adapt only the head."""

from __future__ import annotations

from torch import Tensor, nn

from metacrl.learners.gradient_based import GradientLearner
from metacrl.learners.inner_loop import Backend, Predictor, inner_loop
from metacrl.learners.losses import LossFn, LossName
from metacrl.regularizer.factors import TaskFactors

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
        >>> import torch
        >>> from torch import nn
        >>> from metacrl import ANIL
        >>> from metacrl.models import FeatureHead
        >>> model = FeatureHead(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), nn.Linear(16, 3),
        ...                     feature_dim=16)
        >>> anil = ANIL(model, inner_lr=0.1, inner_steps=5)
        >>> x, y = torch.randn(2, 6, 4), torch.randint(0, 3, (2, 6))
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
        head = self.net.head
        h_spt = self._support_head_inputs(x_spt, factors, training)
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
        return lambda x: predict_head(self._head_inputs(x, factors))
