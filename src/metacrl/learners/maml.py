"""MAML: Model-Agnostic Meta-Learning (Finn et al., 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metacrl.learners.gradient_based import GradientLearner
from metacrl.learners.inner_loop import Backend, Predictor, inner_loop
from metacrl.learners.losses import LossFn, LossName
from metacrl.regularizer.factors import TaskFactors

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
        >>> import torch
        >>> from torch import nn
        >>> from metacrl import MAML
        >>> from metacrl.models import FeatureHead
        >>> model = FeatureHead(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), nn.Linear(16, 3),
        ...                     feature_dim=16)
        >>> maml = MAML(model, inner_lr=0.1, inner_steps=2)
        >>> opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
        >>> x_spt, y_spt = torch.randn(4, 6, 4), torch.randint(0, 3, (4, 6))
        >>> x_qry, y_qry = torch.randn(4, 9, 4), torch.randint(0, 3, (4, 9))
        >>> out = maml.meta_step(x_spt, y_spt, x_qry, y_qry)
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
        if factors is not None:
            with torch.set_grad_enabled(training and torch.is_grad_enabled()):
                factors.prepare(self.net.features(x_spt))
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
            kwargs={"task": factors},
        )
