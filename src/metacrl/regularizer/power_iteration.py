"""The power iteration of :func:`~metacrl.regularizer.spectral_norm_estimate`, fast backward.

Autograd through ``k`` steps of ``v <- A^T (A v) / ||.||`` builds ``2k + 1`` rank-one gradients
of ``A``, each written out as a full ``[d, M]`` matrix and added to the others: for MetaCRL's
``[800, 800]`` factor matrix (Conv4-32 at 84x84) that was most of the causal step's cost.
:class:`PowerIterationNorm` computes the same function and, for a first-order backward, the
same gradient as one product of two thin matrices. When the backward itself must be
differentiable (``create_graph=True``: second-order gradients), it recomputes the iteration with
autograd instead, so higher derivatives are those of the plain computation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["power_iteration_norm"]


def _iterate(
    matrix: Tensor, iterations: int, eps: float
) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:
    """``||A v_k||`` and the iterates: ``v_0 .. v_k``, ``u_j = A v_{j-1}``, ``w_j = A^T u_j``.

    Differentiable when ``matrix`` is.
    """
    v = matrix.new_ones(matrix.shape[1]) / math.sqrt(matrix.shape[1])
    vs, us, ws = [v], [], []
    for _ in range(iterations):
        us.append(matrix @ v)
        ws.append(matrix.T @ us[-1])
        v = ws[-1] / ws[-1].norm().clamp_min(eps)
        vs.append(v)
    return (matrix @ v).norm(), vs, us, ws


class PowerIterationNorm(torch.autograd.Function):
    """``||A v_k||`` after ``k`` normalised power-iteration steps of ``A^T A`` from ``1/sqrt(M)``.

    The first-order backward repeats the iteration (cheap: ``2k + 1`` matrix-vector products)
    rather than keeping the iterates, so that the function also works under ``torch.func``
    transforms (``vmap`` by the generated rule).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(matrix: Tensor, iterations: int, eps: float) -> Tensor:
        with torch.no_grad():
            value, *_ = _iterate(matrix, iterations, eps)
        return value

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        matrix, iterations, eps = inputs
        ctx.save_for_backward(matrix)
        ctx.iterations, ctx.eps = iterations, eps

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        (matrix,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        if torch.is_grad_enabled():  # create_graph: a backward that autograd can differentiate
            with torch.enable_grad():
                value, *_ = _iterate(matrix, ctx.iterations, ctx.eps)
                (g,) = torch.autograd.grad(value, matrix, grad, create_graph=True)
            return g, None, None
        with torch.no_grad():
            _, vs, us, ws = _iterate(matrix.detach(), ctx.iterations, ctx.eps)
        return _fast_gradient(matrix.detach(), grad, vs, us, ws, ctx.eps), None, None


def _fast_gradient(
    a: Tensor, grad: Tensor, vs: list[Tensor], us: list[Tensor], ws: list[Tensor], eps: float
) -> Tensor:
    """Reverse mode through :func:`_iterate`, the rank-one terms summed as one matrix product."""
    with torch.no_grad():
        y = a @ vs[-1]
        y_bar = grad * y / y.norm().clamp_min(torch.finfo(a.dtype).tiny)
        left, right = [y_bar], [vs[-1]]  # dL/dA = sum of left_i right_i^T
        v_bar = a.T @ y_bar
        for k in range(len(us), 0, -1):
            v, w = vs[k], ws[k - 1]
            norm = w.norm()
            # below eps the clamped norm is a constant (a select, not a branch: vmap-safe)
            w_bar = torch.where(
                norm > eps, (v_bar - v * torch.dot(v, v_bar)) / norm.clamp_min(eps), v_bar / eps
            )
            u_bar = a @ w_bar
            left += [us[k - 1], u_bar]
            right += [w_bar, vs[k - 1]]
            v_bar = a.T @ u_bar
        # the sum of rank-one terms in float64: a float32 product's rounding depends on how the
        # product is split over threads, and a data-parallel run (one thread a process) would
        # then drift from one process with two threads
        gradient = torch.stack(left, dim=1).double() @ torch.stack(right, dim=1).double().T
        return gradient.to(a.dtype)


def power_iteration_norm(matrix: Tensor, iterations: int, eps: float) -> Tensor:
    """``||A v_k||``, ``v_k`` the ``k``-th normalised power iterate of ``A^T A`` from ``1/sqrt(M)``.

    Differentiable (any order); the first-order gradient costs one ``[d, 2k+1] x [2k+1, M]``
    product instead of ``2k + 1`` full ``[d, M]`` accumulations.

    Args:
        matrix: ``[d, M]``.
        iterations: Power-iteration steps ``k``.
        eps: Floor of each iterate's norm before it is normalised.

    Returns:
        A scalar.

    Example:
        >>> a = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
        >>> fast = torch.autograd.grad(power_iteration_norm(a, 10, 1e-6), a)[0]
        >>> value, *_ = _iterate(a, 10, 1e-6)
        >>> torch.allclose(fast, torch.autograd.grad(value, a)[0])
        True
    """
    out: Tensor = PowerIterationNorm.apply(matrix, iterations, eps)
    return out
