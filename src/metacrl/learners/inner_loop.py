"""Differentiable inner loops behind one switch: ``torch.func`` (default) or ``higher``.

Both backends run plain gradient descent on a chosen subset of a module's parameters and return
a predictor that evaluates the adapted module. They give the same values and meta-gradients; the
``torch.func`` backend (``functional_call``) is faster and maintained, the ``higher`` backend
exists because many users' inner loops are written on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metacrl.typing import Backend, LearningRates, LossFn, Predictor
from metacrl.validation import check_choice

__all__ = ["check_backend", "inner_loop"]


def check_backend(backend: object) -> Backend:
    """Return ``backend`` if it names an inner-loop backend, else raise ``ValueError``.

    Args:
        backend: The requested backend, one of ``"func"``, ``"higher"`` or ``"vmap"``.

    Returns:
        ``backend``, typed as a :data:`~metacrl.typing.Backend`.

    Raises:
        ValueError: If ``backend`` is not one of the three names.

    Example:
        >>> check_backend("higher")
        'higher'
    """
    return check_choice("backend", backend, get_args(Backend))


def inner_loop(
    module: nn.Module,
    names: Sequence[str],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    *,
    steps: int,
    lr: LearningRates,
    first_order: bool = False,
    training: bool = True,
    detach_init: bool | None = None,
    backend: Backend = "func",
    kwargs: Mapping[str, Any] | None = None,
) -> Predictor:
    """Adapt ``module``'s parameters ``names`` by ``steps`` gradient steps on ``(x, y)``.

    Args:
        module: The module to adapt; called as ``module(x, **kwargs)``.
        names: Names (as in ``module.named_parameters()``) of the parameters to adapt; the
            others are used as they are.
        x: The support inputs.
        y: The support targets.
        loss_fn: ``loss_fn(outputs, y)``, the inner-loop loss.
        steps: The number of gradient steps (0 returns the unadapted module).
        lr: The step size: one float, or one tensor per adapted parameter name (Meta-SGD).
        first_order: Drop the second-order terms: the adapted weights still depend on the
            initial ones (so meta-gradients flow), but the inner gradients are constants
            (default: ``False``).
        training: ``True`` to keep the graph from the adapted weights back to the initial
            ones (meta-training, the default); ``False`` for meta-testing (nothing is kept).
        detach_init: Start from detached copies of the parameters, so no gradient reaches
            them while the graph through the steps is kept with respect to ``x`` (default:
            ``not training``).
        backend: ``"func"`` (``torch.func.functional_call``, the default) or ``"higher"``;
            ``"vmap"`` (a learner's batched mode) runs one task here like ``"func"``.
        kwargs: Extra keyword arguments for every call of ``module`` (default: none).

    Returns:
        A function that maps inputs to the adapted module's outputs.

    Raises:
        ValueError: If ``steps`` is negative.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
        >>> loss = nn.functional.mse_loss
        >>> f = inner_loop(net, ["weight", "bias"], x, y, loss, steps=3, lr=0.1)
        >>> bool(loss(f(x), y) < loss(net(x), y))
        True
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    kw = dict(kwargs or {})
    detach = not training if detach_init is None else detach_init
    loop = _higher_loop if backend == "higher" else _func_loop
    return loop(module, names, x, y, loss_fn, steps, lr, first_order, training, detach, kw)


def _step_size(lr: LearningRates, name: str, training: bool) -> float | Tensor:
    if isinstance(lr, Mapping):
        rate = lr[name]
        return rate if training else rate.detach()
    return lr


def _func_loop(
    module: nn.Module,
    names: Sequence[str],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    steps: int,
    lr: LearningRates,
    first_order: bool,
    training: bool,
    detach_init: bool,
    kwargs: dict[str, Any],
) -> Predictor:
    all_params = dict(module.named_parameters())
    # Step 0 differentiates with respect to aliases of the parameters, not the parameters
    # themselves: tensors computed from the parameters before the loop (MetaCRL's gates) are then
    # constants of the inner loop, and their graph is not freed by a first-order step.
    fast: dict[str, Tensor] = {}
    for n in names:
        param = all_params[n]
        fast[n] = param.detach().requires_grad_() if detach_init else param.view_as(param)
    create_graph = training and not first_order
    with torch.enable_grad():
        for _ in range(steps):
            loss = loss_fn(functional_call(module, fast, (x,), kwargs), y)
            grads = torch.autograd.grad(
                loss, list(fast.values()), create_graph=create_graph, allow_unused=True
            )
            updated: dict[str, Tensor] = {}
            for (n, p), g in zip(fast.items(), grads, strict=True):
                if g is None:
                    updated[n] = p
                    continue
                if not create_graph:
                    g = g.detach()
                new = p - _step_size(lr, n, training) * g
                updated[n] = new if training else new.detach().requires_grad_()
            fast = updated

    def predict(inputs: Tensor) -> Tensor:
        out: Tensor = functional_call(module, fast, (inputs,), kwargs)
        return out

    return predict


def _detach_grads(grads: Sequence[Tensor | None]) -> list[Tensor | None]:
    return [None if g is None else g.detach() for g in grads]


def _higher_loop(
    module: nn.Module,
    names: Sequence[str],
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    steps: int,
    lr: LearningRates,
    first_order: bool,
    training: bool,
    detach_init: bool,
    kwargs: dict[str, Any],
) -> Predictor:
    import higher

    all_params = dict(module.named_parameters())
    adapted = [all_params[n] for n in names]
    # One parameter group per adapted tensor so that Meta-SGD can override each step size.
    opt = torch.optim.SGD(
        [{"params": [p]} for p in adapted], lr=1.0 if isinstance(lr, Mapping) else lr
    )
    override = None
    if isinstance(lr, Mapping):
        override = {"lr": [_step_size(lr, n, training) for n in names]}
    with torch.enable_grad():
        fmodel = higher.monkeypatch(
            module, copy_initial_weights=detach_init, track_higher_grads=training
        )
        if not detach_init:  # aliases, as in the func backend
            fmodel.update_params([p.view_as(p) for p in fmodel.fast_params])
        diffopt = higher.optim.get_diff_optim(
            opt,
            module.parameters(),
            fmodel=fmodel,
            override=override,
            track_higher_grads=training,
        )
        callback = _detach_grads if first_order else None
        for _ in range(steps):
            loss = loss_fn(fmodel(x, **kwargs), y)
            diffopt.step(loss, grad_callback=callback)

    def predict(inputs: Tensor) -> Tensor:
        out: Tensor = fmodel(inputs, **kwargs)
        return out

    return predict
