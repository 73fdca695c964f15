"""Meta-SGD: MAML with learned per-parameter inner step sizes (Li et al., 2017)."""

from __future__ import annotations

import torch
from torch import nn

from metacrl.learners.maml import MAML
from metacrl.typing import Backend, LearningRates, LossName

__all__ = ["MetaSGD"]


def _key(name: str) -> str:
    return name.replace(".", "__")


class MetaSGD(MAML):
    """Meta-SGD: every parameter has a learned inner step size (a tensor of its shape).

    The step sizes start at ``inner_lr`` and are meta-learned with θ (they are among
    ``parameters()``, under ``lrs``). Meta-SGD takes one inner step by default.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        inner_lr: Initial value of every step size (default: ``0.01``).
        inner_steps: Inner steps during meta-training (default: ``1``).
        first_order: Treat inner gradients as constants (the step sizes still learn; default:
            ``False``).
        test_inner_steps: Inner steps at meta-test (default: ``None``, ``inner_steps``).
        loss: ``"cross_entropy"`` (default) or ``"mse"``.
        backend: ``"func"`` (default), ``"higher"`` or ``"vmap"`` (all tasks of a meta-batch in
            one vectorised inner loop; no torch BatchNorm layers).

    Example:
        >>> learner = MetaSGD(model, inner_lr=0.05)
        >>> sorted(learner.lrs.keys())
        ['features__bias', 'features__weight', 'head__bias', 'head__weight']
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        first_order: bool = False,
        test_inner_steps: int | None = None,
        *,
        loss: LossName = "cross_entropy",
        backend: Backend = "func",
    ) -> None:
        super().__init__(
            model, inner_lr, inner_steps, first_order, test_inner_steps, loss=loss, backend=backend
        )
        self.lrs = nn.ParameterDict(
            {
                _key(n): nn.Parameter(torch.full_like(p.detach(), self.inner_lr))
                for n, p in self.net.named_parameters()
                if p.requires_grad
            }
        )

    def _rates(self) -> LearningRates:
        return {n: self.lrs[_key(n)] for n, p in self.net.named_parameters() if p.requires_grad}

    def _head_rates(self) -> LearningRates:
        return {
            n: self.lrs[_key("head." + n)]
            for n, p in self.net.head.named_parameters()
            if p.requires_grad
        }
