"""Turning cached ``uint8`` images into the float tensors the learners take."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_tensor"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet (RGB), as in dragen1860/MAML-Pytorch's ``transforms.Normalize``."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet (RGB)."""


def to_tensor(images: np.ndarray, normalize: bool = True) -> Tensor:
    """Convert ``uint8`` images ``[N, H, W, 3]`` to a float tensor ``[N, 3, H, W]``.

    Pixels are scaled to ``[0, 1]`` and, with ``normalize``, standardised per channel with
    :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD` (``ToTensor`` then ``Normalize`` in the seed
    code).

    Args:
        images: A ``uint8`` array ``[N, H, W, 3]``.
        normalize: Standardise with the ImageNet statistics (default: ``True``).

    Returns:
        A contiguous ``float32`` tensor ``[N, 3, H, W]``.

    Example:
        >>> x = to_tensor(np.full((1, 2, 2, 3), 255, np.uint8), normalize=False)
        >>> x.shape, float(x.max())
        (torch.Size([1, 3, 2, 2]), 1.0)
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)
    return x.contiguous()
