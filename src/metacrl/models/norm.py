"""Batch normalisation with per-batch statistics only, written with plain tensor operations."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TaskBatchNorm"]


class TaskBatchNorm(nn.Module):
    """BatchNorm that always normalises with the current batch's statistics (no buffers).

    Equal to ``nn.BatchNorm{1,2}d(track_running_stats=False)`` in value and gradients, but
    built from elementary operations, so that ``torch.func.vmap`` over tasks also gives correct
    second-order meta-gradients. (In torch 2.14, ``vmap`` of a second-order MAML step through
    ``F.batch_norm`` gives wrong gradients for the layers before it, measured against finite
    differences; the loop over tasks is exact.) Parameters are named ``weight`` and ``bias`` as
    in ``nn.BatchNorm``, so state dicts are interchangeable.

    Args:
        num_features: Channels (dimension 1 of the input).
        eps: Added to the variance (default: ``1e-5``, as in ``nn.BatchNorm``).

    Example:
        >>> x = torch.randn(8, 4, 5, 5)
        >>> ref = torch.nn.BatchNorm2d(4, track_running_stats=False)
        >>> bool(torch.allclose(TaskBatchNorm(4)(x), ref(x), atol=1e-5))
        True
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (``[B, C]`` or ``[B, C, ...]``) over every axis but the channels.

        The same computation in training and evaluation mode (there are no running
        statistics), with the biased variance, as ``nn.BatchNorm`` uses for normalising.

        Args:
            x: A batch ``[B, C]`` or ``[B, C, *spatial]`` with ``C = num_features``.

        Returns:
            ``(x - mean) / sqrt(var + eps) * weight + bias``, shaped like ``x``; mean and
            variance are taken per channel over the batch and spatial axes.

        Example:
            >>> y = TaskBatchNorm(3)(torch.randn(16, 3) * 5 + 2)   # weight 1, bias 0 at init
            >>> bool(y.mean(dim=0).abs().max() < 1e-5)
            True
            >>> bool((y.var(dim=0, unbiased=False) - 1).abs().max() < 1e-3)
            True
        """
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(
            shape
        )

    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``.

        Returns:
            ``"num_features, eps=..."``.

        Example:
            >>> TaskBatchNorm(4)
            TaskBatchNorm(4, eps=1e-05)
        """
        return f"{self.num_features}, eps={self.eps}"


def batch_norm(channels: int, track_running_stats: bool) -> nn.Module:
    """``nn.BatchNorm2d`` with running statistics, else :class:`TaskBatchNorm`.

    Args:
        channels: The number of channels.
        track_running_stats: Keep running statistics (``nn.BatchNorm2d``), or always
            normalise with the batch's own (:class:`TaskBatchNorm`, which ``vmap`` can take).

    Returns:
        The normalisation layer.

    Example:
        >>> type(batch_norm(8, track_running_stats=False)).__name__
        'TaskBatchNorm'
    """
    if track_running_stats:
        return nn.BatchNorm2d(channels)
    return TaskBatchNorm(channels)
