"""A model with MetaCRL factor gates between its feature extractor and its head."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from torch import Tensor, nn

from metacrl.models.contract import check_model

if TYPE_CHECKING:
    from metacrl.regularizer.factors import TaskFactors
    from metacrl.regularizer.regularizer import MetaCRLRegularizer

__all__ = ["GatedModel"]


class GatedModel(nn.Module):
    """``head(T(features(x)))``: a contract model whose head sees a task's gated factors.

    ``T`` is the transform of the :class:`~metacrl.regularizer.TaskFactors` passed as ``task``
    (the identity when ``task`` is ``None`` and no regularizer is attached). The module shares
    ``features`` and ``head`` with the model it wraps, so parameter names stay ``features.*`` and
    ``head.*``; it can be patched by ``higher.innerloop_ctx`` or called through
    ``torch.func.functional_call``.

    Build it with ``reg.wrap(model)``, which also registers the regularizer, so that
    ``parameters()`` includes ``Xi`` and ``f_gr`` (convenient for the meta-optimiser).

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        regularizer: The :class:`~metacrl.MetaCRLRegularizer` to register, or ``None`` (default:
            ``None``).

    Example:
        >>> import torch, higher
        >>> from torch import nn
        >>> from metacrl import MetaCRLRegularizer
        >>> from metacrl.models import FeatureHead
        >>> model = FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8)
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=8)
        >>> net = reg.wrap(model)
        >>> x = torch.randn(6, 4)
        >>> task = reg.task(model.features(x))
        >>> inner_opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, opt):
        ...     _ = opt.step(fnet(x, task=task).logsumexp(-1).mean())
        ...     out = fnet(x, task=task)
        >>> out.shape
        torch.Size([6, 3])
    """

    def __init__(self, model: nn.Module, regularizer: MetaCRLRegularizer | None = None) -> None:
        super().__init__()
        check_model(model)
        self.features = cast(nn.Module, model.features)
        self.head = cast(nn.Module, model.head)
        self.feature_dim: int = int(model.feature_dim)  # type: ignore[arg-type]
        self.regularizer = regularizer

    def forward(self, x: Tensor, task: TaskFactors | None = None) -> Tensor:
        """Return the head's output on the (gated) features of ``x``.

        Args:
            x: A batch of inputs.
            task: The task's factors from ``reg.task(support_features)``; required when a
                regularizer is attached (default: ``None``).

        Returns:
            The head's outputs. The output is also recorded on ``task`` (``task.last_output``)
            so that ``reg.penalty`` can compute the IRM penalty from it.

        Raises:
            ValueError: If ``task`` is ``None`` while a regularizer is attached.
        """
        feats: Tensor = self.features(x)
        if task is None:
            if self.regularizer is not None:
                raise ValueError(
                    "this model is wrapped by MetaCRLRegularizer: call it as "
                    "net(x, task=reg.task(support_features)) so the head sees the task's gated "
                    "factors (use the unwrapped model for a plain forward)"
                )
            out: Tensor = self.head(feats)
            return out
        out = self.head(task.transform(feats))
        task.last_output = out
        return out
