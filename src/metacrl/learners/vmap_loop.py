"""All tasks of a meta-batch in one vectorised inner loop (``backend="vmap"``).

``torch.func.vmap`` over tasks of a ``torch.func.grad`` inner loop: one batched kernel per layer
instead of one per task, which pays on a GPU. The model must not mutate buffers in its forward
pass (BatchNorm: :class:`~metacrl.models.TaskBatchNorm`; each task is still normalised with its own
statistics); dropout draws different randomness per task. ``nn.BatchNorm`` layers are refused:
``vmap`` of a second-order step through ``F.batch_norm`` gives wrong meta-gradients in torch
2.14 (measured against finite differences), so use :class:`~metacrl.models.TaskBatchNorm`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from metacrl.typing import HeadTransform, LearningRates, LossFn

__all__ = ["check_vmappable", "vmapped_inner_loops"]


def check_vmappable(model: nn.Module) -> None:
    """Raise ``ValueError`` if ``model`` holds a layer that ``backend="vmap"`` cannot take.

    Every torch BatchNorm layer (``nn.BatchNorm1d/2d/3d``, ``nn.SyncBatchNorm``, ...) is
    refused, with or without running statistics: those that track them mutate buffers in the
    forward pass, and ``vmap`` of a second-order step through ``F.batch_norm`` gives wrong
    meta-gradients in any case. Other modules that mutate buffers are not detected.

    Args:
        model: The model whose submodules are checked (itself included).

    Raises:
        ValueError: If a submodule is a torch BatchNorm layer; the message names it and
            suggests :class:`~metacrl.models.TaskBatchNorm` or ``backend="func"``.

    Example:
        >>> from metacrl.models import TaskBatchNorm
        >>> check_vmappable(nn.Sequential(nn.Linear(2, 3), TaskBatchNorm(3)))  # accepted
        >>> check_vmappable(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))
        Traceback (most recent call last):
            ...
        ValueError: backend='vmap' cannot take 1 (BatchNorm1d): ...
    """
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            raise ValueError(
                f"backend='vmap' cannot take {name or 'the model'} ({type(module).__name__}): "
                "vmap of a second-order inner loop through torch's batch_norm gives wrong "
                "meta-gradients (torch 2.14), and running statistics are buffers it cannot "
                "update; use metacrl.models.TaskBatchNorm (Conv4/ResNet12 with "
                "track_running_stats=False) or backend='func'"
            )


def vmapped_inner_loops(
    module: nn.Module,
    names: list[str],
    inputs: tuple[Tensor, Tensor, Tensor, Tensor],
    loss_fn: LossFn,
    *,
    steps: int,
    lr: LearningRates,
    first_order: bool,
    training: bool,
    transform: HeadTransform | None = None,
) -> tuple[Tensor, Tensor]:
    """Adapt ``module``'s parameters ``names`` on ``T`` tasks at once; return query losses, outputs.

    Args:
        module: Called as ``module(x)`` or ``module(x, task=factors(gates_t))``.
        names: Parameters to adapt.
        inputs: ``(x_spt, y_spt, x_qry, y_qry)`` with a leading task axis.
        loss_fn: The task loss.
        steps: Inner steps.
        lr: Step size, or one tensor per adapted name (Meta-SGD).
        first_order: Treat inner gradients as constants.
        training: Keep the graph to the initial parameters (meta-training).
        transform: A head transform prepared on all ``T`` support sets at once (its ``state``
            has a leading task axis); each task gets ``transform.with_state(state_t)`` as
            ``module``'s ``task`` (default: ``None``: ``module`` is called without ``task``).

    Returns:
        Query losses ``[T]`` and query outputs ``[T, n_query, ...]``.

    Example:
        Three regression tasks in one call; each equals :func:`inner_loop` on that task:

        >>> from metacrl.learners import inner_loop
        >>> head, mse = nn.Linear(2, 1), nn.functional.mse_loss
        >>> x_s, y_s = torch.randn(3, 5, 2), torch.randn(3, 5, 1)
        >>> x_q, y_q = torch.randn(3, 4, 2), torch.randn(3, 4, 1)
        >>> losses, out = vmapped_inner_loops(head, ["weight", "bias"], (x_s, y_s, x_q, y_q),
        ...                                   mse, steps=2, lr=0.1, first_order=False,
        ...                                   training=True)
        >>> tuple(losses.shape), tuple(out.shape), losses.requires_grad
        ((3,), (3, 4, 1), True)
        >>> one = inner_loop(head, ["weight", "bias"], x_s[1], y_s[1], mse, steps=2, lr=0.1)
        >>> bool(torch.allclose(mse(one(x_q[1]), y_q[1]), losses[1], atol=1e-6))
        True
    """
    all_params = dict(module.named_parameters())
    params = {n: all_params[n] if training else all_params[n].detach() for n in names}
    rates: Mapping[str, Tensor | float]
    if isinstance(lr, Mapping):
        rates = {n: r if training else r.detach() for n, r in lr.items()}
    else:
        rates = dict.fromkeys(names, lr)
    constant_grads = first_order or not training

    def solve(
        fast: dict[str, Tensor], x_s: Tensor, y_s: Tensor, x_q: Tensor, y_q: Tensor, w: Any
    ) -> tuple[Tensor, Tensor]:
        kwargs = {} if transform is None else {"task": transform.with_state(w)}

        def support_loss(p: dict[str, Tensor]) -> Tensor:
            return loss_fn(functional_call(module, p, (x_s,), kwargs), y_s)

        for _ in range(steps):
            g = grad(support_loss)(fast)
            fast = {
                n: fast[n] - rates[n] * (g[n].detach() if constant_grads else g[n]) for n in fast
            }
        out: Tensor = functional_call(module, fast, (x_q,), kwargs)
        return loss_fn(out, y_q), out

    x_s, y_s, x_q, y_q = inputs
    state = None if transform is None else transform.state
    in_dims = (None, 0, 0, 0, 0, None if state is None else 0)
    losses, outputs = vmap(solve, in_dims=in_dims, randomness="different")(
        params, x_s, y_s, x_q, y_q, state
    )
    return losses, outputs
