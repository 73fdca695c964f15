"""The MetaCRL loss terms: orthogonality of the factor matrix, gate sparsity, invariance.

These are plain functions of tensors so that they can be tested on hand-computed cases and used
in any training loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from metacrl.regularizer.power_iteration import power_iteration_norm

__all__ = [
    "gate_loss",
    "irm_penalty",
    "orthogonality_loss",
    "spectral_norm_estimate",
    "vrex_penalty",
]

_EPS = 1e-6


def orthogonality_loss(xi: Tensor) -> Tensor:
    r"""Return :math:`\sum_{i \ne j} |\hat\xi_i^\top \hat\xi_j|` for the columns of ``xi``.

    Args:
        xi: The factor matrix ``[feature_dim, num_factors]``; its columns are normalised to unit
            length first, so only their directions count.

    Returns:
        A scalar, zero exactly when the columns are mutually orthogonal. Each unordered pair is
        counted twice (``i, j`` and ``j, i``), as in the sum over ``i != j``.

    Example:
        >>> float(orthogonality_loss(torch.eye(3)))
        0.0
        >>> float(orthogonality_loss(torch.tensor([[1.0, 1.0], [0.0, 1.0]])))  # 2 * cos(45°)
        1.4142135381698608
    """
    if xi.dim() != 2:
        raise ValueError(f"xi must be a [feature_dim, num_factors] matrix, got {tuple(xi.shape)}")
    unit = xi / xi.norm(dim=0, keepdim=True).clamp_min(_EPS)
    gram = unit.T @ unit
    off_diagonal = gram - torch.diag_embed(torch.diagonal(gram))
    total: Tensor = off_diagonal.abs().sum()
    return total


def spectral_norm_estimate(matrix: Tensor, iterations: int = 10) -> Tensor:
    r"""Estimate the largest singular value of a matrix with unit-length columns, smoothly.

    ``iterations`` power-iteration steps on ``matrix^T matrix`` from a fixed start, then the
    Rayleigh quotient: a smooth function of ``matrix`` with exact first and second derivatives
    (the first by one thin matrix product, see :mod:`metacrl.regularizer.power_iteration`; no
    SVD, so nothing breaks where singular values coincide, as they do for an orthogonal
    matrix). It approaches the true value from below: within a few per cent for
    random matrices, exact for orthonormal columns, fast where one direction dominates (the
    case it guards against: factor columns turned towards each other).

    An estimate below half of :math:`\sqrt{M / \min(d, M)}` (a lower bound of the true value
    for unit columns: the mean eigenvalue of the Gram matrix) is replaced by that bound, so the
    estimate never comes near zero.

    Args:
        matrix: ``[d, M]``, columns of unit length.
        iterations: Power-iteration steps (default 10).

    Returns:
        A positive scalar.

    Example:
        >>> round(float(spectral_norm_estimate(torch.eye(3))), 4)
        1.0
        >>> two_equal = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # both columns along e1
        >>> round(float(spectral_norm_estimate(two_equal)), 4)
        1.4142
    """
    if matrix.dim() != 2:
        raise ValueError(f"matrix must be 2-D [d, M], got {tuple(matrix.shape)}")
    d, m = matrix.shape
    value = power_iteration_norm(matrix, iterations, _EPS)
    floor = math.sqrt(m / min(d, m))
    # The floor replaces only estimates that failed (start vector nearly orthogonal to the top
    # directions), so there is no kink where the estimate is right, e.g. orthonormal columns.
    out: Tensor = torch.where(value > 0.5 * floor, value, value.new_tensor(floor))
    return out


def gate_loss(gates: Tensor) -> Tensor:
    r"""Return the gate sparsity term :math:`\mathrm{mean}_t[\|w_t\|_1/M + H_b(w_t)/M]`.

    ``H_b`` is the binary entropy summed over the ``M`` gates: the term is small when gates are
    few (sparse) and decisive (near 0 or 1). This replaces the public code's
    ``||w||_1 - H(w)`` on un-squashed outputs, which is unbounded below and produces NaN.

    Args:
        gates: Gate values in ``[0, 1]``, shaped ``[tasks, M]`` (or ``[M]`` for one task).

    Returns:
        A scalar in ``[0, 1 + log 2]``.

    Example:
        >>> round(float(gate_loss(torch.zeros(2, 4))), 4)
        0.0
        >>> round(float(gate_loss(torch.full((1, 4), 0.5))), 4)  # 0.5 + log 2
        1.1931
    """
    if gates.dim() == 1:
        gates = gates.unsqueeze(0)
    if gates.dim() != 2:
        raise ValueError(f"gates must be shaped [tasks, num_factors], got {tuple(gates.shape)}")
    m = gates.shape[-1]
    w = gates.clamp(_EPS, 1.0 - _EPS)
    entropy = -(w * w.log() + (1.0 - w) * (1.0 - w).log()).sum(dim=-1)
    l1 = gates.abs().sum(dim=-1)
    return ((l1 + entropy) / m).mean()


def irm_penalty(losses: Sequence[Tensor], outputs: Sequence[Tensor]) -> Tensor:
    r"""Return the IRMv1 penalty, averaged over tasks (environments).

    For each task ``t`` with query loss :math:`L_t(o_t)` of outputs :math:`o_t`, the penalty is
    :math:`\big(\partial L_t(s\, o_t)/\partial s\,|_{s=1}\big)^2`, computed exactly by the chain
    rule as :math:`(\sum \nabla_{o_t} L_t \odot o_t)^2`, with the graph kept so that it can be
    differentiated again.

    Args:
        losses: One scalar query loss per task.
        outputs: The outputs (logits or predictions) each loss was computed from; each loss
            must depend on its own task's outputs only.

    Returns:
        The mean over tasks of the squared scale gradients (zero when every task's loss is
        stationary in the output scale).

    Example:
        >>> o = torch.tensor([[2.0, 0.0]], requires_grad=True)
        >>> loss = torch.nn.functional.cross_entropy(o, torch.tensor([0]))
        >>> float(irm_penalty([loss], [o]).detach()) > 0
        True
    """
    if len(losses) != len(outputs):
        raise ValueError(f"got {len(losses)} losses but {len(outputs)} outputs")
    if not losses:
        raise ValueError("the invariance penalty needs at least one task")
    # One backward pass for all tasks: each loss depends on its own outputs only, so the
    # gradient of their sum with respect to ``outputs[t]`` is that of ``losses[t]``.
    grads = torch.autograd.grad(torch.stack(list(losses)).sum(), list(outputs), create_graph=True)
    terms = [(grad * out).sum().square() for grad, out in zip(grads, outputs, strict=True)]
    return torch.stack(terms).mean()


def vrex_penalty(losses: Sequence[Tensor] | Tensor) -> Tensor:
    """Return the V-REx penalty: the variance of the per-task losses.

    Args:
        losses: One scalar loss per task (a sequence or a 1-D tensor).

    Returns:
        The population variance (zero for a single task).

    Example:
        >>> float(vrex_penalty(torch.tensor([1.0, 3.0])))
        1.0
    """
    stacked = losses if isinstance(losses, Tensor) else torch.stack(list(losses))
    if stacked.numel() == 0:
        raise ValueError("the invariance penalty needs at least one task")
    return stacked.reshape(-1).var(unbiased=False)
