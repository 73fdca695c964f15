"""The module ``reg.wrap(model)`` returns: a model whose head sees a task's gated factors."""

from __future__ import annotations

from torch import Tensor, nn

from metacrl.models import TaskModel
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.module import MetaCRLModule
from metacrl.typing import HeadTransform

__all__ = ["GatedModel"]


class GatedModel(TaskModel):
    """``head(T(features(x)))`` with ``T`` a task's gated factors, for a user's own inner loop.

    Build it with ``reg.wrap(model)``. It shares ``features`` and ``head`` with ``model`` (so
    parameter names stay ``features.*`` and ``head.*``), can be patched by
    ``higher.innerloop_ctx`` or called through ``torch.func.functional_call``, and registers the
    regularizer, so that ``parameters()`` include ``Xi`` and ``f_gr`` for the meta-optimiser.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        regularizer: The MetaCRL regularizer whose gates the head sees.

    Example:
        >>> import higher
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=8)
        >>> net = reg.wrap(model)
        >>> task = reg.task(model.features(x[0]))
        >>> inner_opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, opt):
        ...     _ = opt.step(fnet(x[0], task=task).logsumexp(-1).mean())
        ...     out = fnet(x[0], task=task)
        >>> out.shape, any(p is reg.xi for p in net.parameters())
        (torch.Size([6, 3]), True)
    """

    def __init__(self, model: nn.Module, regularizer: MetaCRLModule) -> None:
        super().__init__(model)
        self.regularizer = regularizer

    def forward(self, x: Tensor, task: HeadTransform | None = None) -> Tensor:
        """Return the head's output on the gated factors of ``x``.

        Args:
            x: A batch of inputs.
            task: The task's factors from ``reg.task(support_features)`` (required).

        Returns:
            The head's outputs, also recorded as ``task.last_output`` (``reg.penalty`` takes
            the IRM penalty from it).

        Raises:
            ValueError: If ``task`` is ``None``.
        """
        if task is None:
            raise ValueError(
                "this model is wrapped by MetaCRLRegularizer: call it as "
                "net(x, task=reg.task(support_features)) so the head sees the task's gated "
                "factors (use the unwrapped model for a plain forward)"
            )
        out = super().forward(x, task)
        if isinstance(task, TaskFactors):
            task.last_output = out
        return out
