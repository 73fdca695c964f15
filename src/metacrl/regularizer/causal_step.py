"""The causal step: gradient steps of MetaCRL's causal objective on ``Xi`` and ``f_gr``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from metacrl.errors import NonFiniteLossError
from metacrl.learners import TaskFeatures
from metacrl.regularizer.causal import CausalTerms
from metacrl.regularizer.module import MetaCRLModule
from metacrl.typing import HeadTask, LossFn

__all__ = ["causal_step"]


def causal_step(
    module: MetaCRLModule,
    environments: Sequence[TaskFeatures],
    head_task: HeadTask,
    loss_fn: LossFn,
) -> CausalTerms:
    """Run ``crl_steps`` gradient steps of the causal objective on ``Xi`` and ``f_gr``.

    θ is not touched. Plain gradient descent with step ``xi_lr`` for ``Xi`` and ``gr_lr``
    for ``f_gr``, the joint gradient clipped to ``max_grad_norm`` (stateless, so nothing
    needs checkpointing beyond the parameters).

    Args:
        module: The MetaCRL module whose ``Xi`` and ``f_gr`` are updated in place.
        environments: The tasks, as features computed with the backbone frozen.
        head_task: How the learner solves tasks on given head inputs.
        loss_fn: The task loss.

    Returns:
        The terms of the last evaluated objective (detached).

    Raises:
        NonFiniteLossError: If the objective is NaN or infinite.
    """
    params = [module.xi, *module.f_gr.parameters()]
    rates = [module.xi_lr] + [module.gr_lr] * (len(params) - 1)
    terms: CausalTerms | None = None
    for step in range(module.crl_steps):
        terms = module.causal_objective(environments, head_task, loss_fn)
        if not bool(torch.isfinite(terms.total)):
            parts = ", ".join(f"{k[4:]} {v}" for k, v in terms.metrics().items())
            raise NonFiniteLossError(
                f"the MetaCRL causal objective is {float(terms.total.detach())} at causal "
                f"step {step} ({parts}); lower xi_lr/gr_lr or lambda_inv"
            )
        grads = [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(
                params, torch.autograd.grad(terms.total, params, allow_unused=True), strict=True
            )
        ]
        scale = 1.0
        if module.max_grad_norm is not None:
            norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            scale = min(1.0, module.max_grad_norm / (norm + 1e-12))
        with torch.no_grad():
            for p, g, lr in zip(params, grads, rates, strict=True):
                p.sub_((lr * scale) * g)
    if terms is None:  # crl_steps == 0: report the objective, change nothing
        terms = module.causal_objective(environments, head_task, loss_fn)
    assert terms is not None
    return CausalTerms(
        terms.total.detach(),
        terms.task.detach(),
        terms.invariance.detach(),
        terms.disentanglement.detach(),
        terms.gates.detach(),
    )
