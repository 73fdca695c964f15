"""Decoding and resizing images with PIL, as dragen1860/MAML-Pytorch does (bilinear, antialiased).

PIL's ``BILINEAR`` filter widens its support when it shrinks an image, so downscaling is
antialiased; this matches ``torchvision.transforms.Resize`` on PIL images, which
dragen1860/MAML-Pytorch's miniImageNet loader applies to every image on every access.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["decode_image", "resize_images"]


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Read an image file, convert it to RGB and resize it to ``size x size``.

    Args:
        path: The image file.
        size: The output side length in pixels.

    Returns:
        A ``uint8`` array ``[size, size, 3]``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file cannot be decoded (not an image, truncated, corrupt).

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "a.png")
        ...     Image.new("RGB", (10, 6), (255, 0, 0)).save(p)
        ...     decode_image(p, 4).shape
        (4, 4, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err


def resize_images(
    images: np.ndarray, size: int, progress: bool = False, desc: str = "resizing images"
) -> np.ndarray:
    """Resize a stack of RGB images with the same filter as :func:`decode_image`.

    Args:
        images: A ``uint8`` array ``[N, H, W, 3]``.
        size: The output side length.
        progress: Show a progress bar (default: ``False``).
        desc: The progress bar's label (default: ``"resizing images"``).

    Returns:
        A ``uint8`` array ``[N, size, size, 3]`` (``images`` itself if already that size).

    Example:
        >>> resize_images(np.zeros((2, 8, 8, 3), np.uint8), 4).shape
        (2, 4, 4, 3)
    """
    if images.shape[1:3] == (size, size):
        return images
    from tqdm.auto import tqdm

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for n, img in enumerate(tqdm(images, desc=desc, unit="img", disable=not progress)):
        out[n] = np.asarray(
            Image.fromarray(np.ascontiguousarray(img)).resize(
                (size, size), Image.Resampling.BILINEAR
            )
        )
    return out
