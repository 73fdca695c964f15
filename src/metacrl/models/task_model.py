"""A contract model whose head sees a per-task transform of the features."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from metacrl.models.contract import check_model
from metacrl.typing import HeadTransform

__all__ = ["TaskModel"]


class TaskModel(nn.Module):
    """``head(T(features(x)))``: a contract model whose head sees a task's transform ``T``.

    ``T`` is the :class:`~metacrl.typing.HeadTransform` passed as ``task`` (the identity when
    ``task`` is ``None``). The module shares ``features`` and ``head`` with the model it wraps,
    so parameter names stay ``features.*`` and ``head.*``; it can be patched by
    ``higher.innerloop_ctx`` or called through ``torch.func.functional_call``. The learners run
    their inner loops on it; MetaCRL's :class:`~metacrl.GatedModel` derives from it.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.

    Raises:
        TypeError: If ``model`` does not follow the contract (see
            :func:`~metacrl.models.check_model`).

    Example:
        >>> net = TaskModel(model)
        >>> net(torch.randn(5, 4)).shape, [n for n, _ in net.named_parameters()][0]
        (torch.Size([5, 3]), 'features.weight')
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_model(model)
        self.features = cast(nn.Module, model.features)
        self.head = cast(nn.Module, model.head)
        self.feature_dim: int = int(model.feature_dim)  # type: ignore[arg-type]

    def forward(self, x: Tensor, task: HeadTransform | None = None) -> Tensor:
        """Return the head's output on the (transformed) features of ``x``.

        Args:
            x: A batch of inputs.
            task: The task's transform of the head's input (default: ``None``, the identity).

        Returns:
            The head's outputs.
        """
        feats: Tensor = self.features(x)
        out: Tensor = self.head(feats if task is None else task.transform(feats))
        return out
