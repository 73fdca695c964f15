"""DropBlock (Ghiasi et al., 2018): dropout of contiguous square regions of feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DropBlock", "drop_block"]


def drop_block(x: Tensor, drop_rate: float, block_size: int, training: bool = True) -> Tensor:
    """Zero square blocks of ``x`` (``[B, C, H, W]``) so that about ``drop_rate`` is dropped.

    Kept activations are rescaled by the kept fraction. Identity when not ``training`` or when
    ``drop_rate`` is 0. The block size is capped by the feature map's size.

    Args:
        x: Feature maps.
        drop_rate: Expected fraction of activations to drop.
        block_size: Side of the dropped squares (odd sizes centre exactly).
        training: Apply the drop (``False``: return ``x``; default: ``True``).

    Returns:
        The feature maps with blocks dropped.

    Example:
        >>> y = drop_block(torch.ones(2, 4, 10, 10), drop_rate=0.2, block_size=3)
        >>> y.shape, bool((y == 0).any())
        (torch.Size([2, 4, 10, 10]), True)
    """
    if not training or drop_rate <= 0.0:
        return x
    _, _, height, width = x.shape
    size = min(block_size, height, width)
    valid_h, valid_w = height - size + 1, width - size + 1
    gamma = drop_rate * height * width / (size * size * valid_h * valid_w)
    centres = (torch.rand(x.shape[0], x.shape[1], valid_h, valid_w, device=x.device) < gamma).to(
        x.dtype
    )
    pad_top, pad_left = (size - 1) // 2, (size - 1) // 2
    centres = F.pad(
        centres, (pad_left, width - valid_w - pad_left, pad_top, height - valid_h - pad_top)
    )
    dropped = F.max_pool2d(centres, kernel_size=size, stride=1, padding=size // 2)
    if size % 2 == 0:  # even kernels pad one extra row/column: trim it
        dropped = dropped[:, :, :height, :width]
    keep = 1.0 - dropped
    return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))


class DropBlock(nn.Module):
    """Module form of :func:`drop_block` (no parameters, no buffers).

    Active in ``train()`` mode only; ``eval()`` mode returns its input unchanged.

    Args:
        drop_rate: Expected fraction of activations to drop in training mode, in ``[0, 1)``
            (default 0.1, as after blocks 3-4 of :class:`~metacrl.models.ResNet12`).
        block_size: Side of the dropped squares (default 5).

    Raises:
        ValueError: If ``drop_rate`` is outside ``[0, 1)`` or ``block_size < 1``.

    Example:
        >>> drop = DropBlock(drop_rate=0.2, block_size=3)
        >>> x = torch.ones(2, 4, 10, 10)
        >>> drop(x).shape
        torch.Size([2, 4, 10, 10])
        >>> bool(torch.equal(drop.eval()(x), x))   # identity in eval mode
        True
    """

    def __init__(self, drop_rate: float = 0.1, block_size: int = 5) -> None:
        super().__init__()
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate!r}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size!r}")
        self.drop_rate = drop_rate
        self.block_size = block_size

    def forward(self, x: Tensor) -> Tensor:
        """Apply DropBlock in training mode (identity in ``eval()`` mode).

        Args:
            x: Feature maps ``[B, C, H, W]``.

        Returns:
            The feature maps with blocks dropped and the rest rescaled.
        """
        return drop_block(x, self.drop_rate, self.block_size, self.training)

    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``.

        Returns:
            ``"drop_rate=..., block_size=..."``.

        Example:
            >>> DropBlock(0.2, 3)
            DropBlock(drop_rate=0.2, block_size=3)
        """
        return f"drop_rate={self.drop_rate}, block_size={self.block_size}"
