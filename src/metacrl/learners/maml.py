"""MAML: Model-Agnostic Meta-Learning (Finn et al., 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metacrl.learners.gradient_based import GradientLearner
from metacrl.learners.inner_loop import inner_loop
from metacrl.typing import Backend, HeadTransform, LossFn, LossName, Predictor

__all__ = ["MAML"]


class MAML(GradientLearner):
    """MAML: adapt all of the model's parameters by gradient descent on each task's support set.

    Second-order by default: the meta-gradient differentiates through the inner loop. With
    ``first_order=True`` the inner gradients are treated as constants (FOMAML).

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        inner_lr: Inner-loop step size (default: ``0.01``, as in the miniImageNet protocol).
        inner_steps: Inner steps during meta-training (default: ``5``, as on miniImageNet).
        first_order: Use the first-order approximation (default: ``False``).
        test_inner_steps: Inner steps at meta-test (default: ``None``, ``inner_steps``; 10 on
            miniImageNet).
        loss: ``"cross_entropy"`` (classification, the default) or ``"mse"`` (regression).
        backend: ``"func"`` (``torch.func.functional_call``, default), ``"higher"``, or
            ``"vmap"`` (all tasks in one vectorised inner loop; no BatchNorm running stats).

    Example:
        >>> maml = MAML(model, inner_lr=0.1, inner_steps=2)
        >>> opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
        >>> out = maml.meta_step(x, y, x, y)          # x_spt, y_spt, x_qry, y_qry: [T, N*K, ...]
        >>> out.loss.backward(); opt.step()
        >>> 0.0 <= out.accuracy <= 1.0
        True
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
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
        """Adapt all of θ on the support set (see :meth:`MetaLearner.solve_task`)."""
        if transform is not None:
            with torch.set_grad_enabled(training and torch.is_grad_enabled()):
                transform.prepare(self.net.features(x_spt))
        names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        return inner_loop(
            self.net,
            names,
            x_spt,
            y_spt,
            loss_fn,
            steps=steps,
            lr=self._rates(),
            first_order=self.first_order,
            training=training,
            backend=self.backend,
            kwargs={"task": transform},
        )
