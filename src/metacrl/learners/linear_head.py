"""A batched, closed-form inner loop for linear heads (the causal step's fast path)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["adapt_linear_heads"]


def adapt_linear_heads(
    head: nn.Linear,
    h_spt: Tensor,
    y_spt: Tensor,
    h_qry: Tensor,
    *,
    loss: str,
    steps: int,
    lr: float | Mapping[str, Tensor],
) -> Tensor:
    """Adapt copies of a linear head on ``E`` tasks at once and return their query outputs.

    Gradient descent on the mean cross-entropy or MSE of each task, written with the loss's
    closed-form gradient and batched matrix products, so that ``E`` tasks cost a handful of
    kernels instead of ``E`` autograd round trips. The head's own weights are used as constants;
    the result stays differentiable (to any order) in ``h_spt`` and ``h_qry``. It equals
    :func:`~metacrl.learners.inner_loop.inner_loop` run on each task (tested).

    Args:
        head: The head; its weights are the starting point, not differentiated. A bias with
            ``requires_grad=False`` is kept fixed, as the generic inner loop does.
        h_spt: Support head inputs ``[E, n, k]``.
        y_spt: Support targets ``[E, n]`` (labels) or ``[E, n, out]`` (regression).
        h_qry: Query head inputs ``[E, q, k]``.
        loss: ``"cross_entropy"`` or ``"mse"`` (any other name is treated as ``"mse"``).
        steps: Inner steps.
        lr: Step size, or per-element step sizes ``{"weight": ..., "bias": ...}`` (Meta-SGD;
            detached, so they get no gradient here).

    Returns:
        The adapted heads' query outputs ``[E, q, out]``.

    Example:
        Two 3-way tasks; the result matches the generic inner loop and never reaches the head:

        >>> from metacrl.learners import inner_loop
        >>> head = nn.Linear(4, 3)
        >>> h_spt = torch.randn(2, 6, 4, requires_grad=True)
        >>> y_spt = torch.arange(3).repeat(2).expand(2, 6)
        >>> h_qry = torch.randn(2, 5, 4)
        >>> out = adapt_linear_heads(head, h_spt, y_spt, h_qry, loss="cross_entropy", steps=3,
        ...                          lr=0.5)
        >>> tuple(out.shape), out.requires_grad
        ((2, 5, 3), True)
        >>> ce = nn.functional.cross_entropy
        >>> one = inner_loop(head, ["weight", "bias"], h_spt[0], y_spt[0], ce, steps=3, lr=0.5)
        >>> bool(torch.allclose(out[0], one(h_qry[0]), atol=1e-5))
        True
        >>> out.sum().backward()
        >>> h_spt.grad is not None, head.weight.grad is None
        (True, True)
    """
    n_tasks, n, _ = h_spt.shape
    weight = head.weight.detach().expand(n_tasks, -1, -1)
    bias = None if head.bias is None else head.bias.detach().expand(n_tasks, -1)
    adapt_bias = head.bias is not None and head.bias.requires_grad  # a frozen bias stays
    lr_w: float | Tensor = lr["weight"].detach() if isinstance(lr, Mapping) else lr
    lr_b: float | Tensor = lr["bias"].detach() if isinstance(lr, Mapping) and adapt_bias else lr_w
    if loss == "cross_entropy":
        classes = torch.arange(weight.shape[1], device=y_spt.device)
        # out-of-range labels give zero rows here; the query loss then names the problem
        target = (y_spt.unsqueeze(-1) == classes).to(h_spt.dtype)
    else:
        target = y_spt
    for _ in range(steps):
        out = torch.bmm(h_spt, weight.transpose(1, 2))
        if bias is not None:
            out = out + bias.unsqueeze(1)
        if loss == "cross_entropy":
            d_out = (torch.softmax(out, dim=-1) - target) / n
        else:
            d_out = 2.0 * (out - target) / out[0].numel()
        weight = weight - lr_w * torch.bmm(d_out.transpose(1, 2), h_spt)
        if bias is not None and adapt_bias:
            bias = bias - lr_b * d_out.sum(dim=1)
    out = torch.bmm(h_qry, weight.transpose(1, 2))
    return out if bias is None else out + bias.unsqueeze(1)
