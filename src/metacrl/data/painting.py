"""Painting coverage maps into images: two colours and a stripe texture (the nuisances).

:class:`~metacrl.data.ConfoundedShapes` paints its shapes' coverage and
:class:`~metacrl.data.ConfoundedClipart` the ink of its drawings, so both benchmarks carry the
same nuisances: the foreground colour, the background colour and the stripes' orientation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STRIPES_PER_IMAGE", "paint", "paint_masks", "pixel_grid"]

STRIPES_PER_IMAGE = 8
"""Stripe periods across the image side (the texture nuisance)."""


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixel centres of a ``size x size`` image in ``[-1, 1]``, row-major.

    Args:
        size: The image side length.

    Returns:
        ``(gx, gy)``, each ``float32`` ``[1, size * size]``; x runs along a row.

    Example:
        >>> gx, gy = pixel_grid(2)
        >>> gx.tolist(), gy.tolist()
        ([[-0.5, 0.5, -0.5, 0.5]], [[-0.5, -0.5, 0.5, 0.5]])
    """
    f32 = np.float32
    coords = (np.arange(size, dtype=f32) + f32(0.5)) * f32(2.0 / size) - f32(1.0)
    return np.tile(coords, size)[None, :], np.repeat(coords, size)[None, :]


def paint(
    mask: np.ndarray,
    foreground: np.ndarray,
    background: np.ndarray,
    stripe_angle: np.ndarray,
    stripe_phase: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    texture_strength: float,
) -> np.ndarray:
    """Colour ``n`` coverage maps: foreground over background, times the stripe texture.

    Args:
        mask: Coverage ``[n, P]`` in ``[0, 1]`` (1: foreground) over ``P`` pixels.
        foreground: Colours ``[n, 3]``.
        background: Colours ``[n, 3]``.
        stripe_angle: Stripe orientations ``[n]`` (radians).
        stripe_phase: Stripe phases ``[n]`` (radians).
        gx: Pixel x coordinates ``[1, P]`` in ``[-1, 1]`` (see :func:`pixel_grid`).
        gy: Pixel y coordinates ``[1, P]``.
        texture_strength: How much the stripes darken the image (0: none).

    Returns:
        ``float32`` images ``[n, 3, P]`` (not clipped).

    Example:
        >>> gx, gy = pixel_grid(4)
        >>> img = paint(np.ones((1, 16), np.float32), np.ones((1, 3), np.float32),
        ...             np.zeros((1, 3), np.float32), np.zeros(1, np.float32),
        ...             np.zeros(1, np.float32), gx, gy, texture_strength=0.0)
        >>> img.shape, float(img.min())
        ((1, 3, 16), 1.0)
    """
    f32 = np.float32
    fg = foreground[:, :, None]
    bg = background[:, :, None]
    img: np.ndarray = (fg - bg) * mask[:, None, :]  # [n, 3, P]
    img += bg
    if texture_strength > 0:
        ang = stripe_angle[:, None]
        proj = gx * np.cos(ang) + gy * np.sin(ang)
        proj *= f32(np.pi * STRIPES_PER_IMAGE)  # 2 pi * (periods per unit), side of 2 units
        proj += stripe_phase[:, None]
        wave = np.sin(proj)
        # 1 - strength * (0.5 + 0.5 sin): between 1 - strength and 1.
        wave *= f32(-0.5 * texture_strength)
        wave += f32(1.0 - 0.5 * texture_strength)
        img *= wave[:, None, :]
    return img


def paint_masks(
    masks: np.ndarray,
    foreground: np.ndarray,
    background: np.ndarray,
    stripe_angle: np.ndarray,
    stripe_phase: np.ndarray,
    *,
    texture_strength: float,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paint ``M`` square coverage maps into images, with uniform pixel noise, clipped to [0, 1].

    Args:
        masks: Coverage ``[M, S, S]`` in ``[0, 1]``.
        foreground: Colours ``[M, 3]``.
        background: Colours ``[M, 3]``.
        stripe_angle: Stripe orientations ``[M]`` (radians).
        stripe_phase: Stripe phases ``[M]`` (radians).
        texture_strength: How much the stripes darken the image (0: none).
        noise: Standard deviation of the uniform pixel noise (0: none).
        rng: The generator of the noise.

    Returns:
        ``float32`` images ``[M, 3, S, S]`` in ``[0, 1]``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> img = paint_masks(np.zeros((2, 4, 4), np.float32), np.ones((2, 3)), np.zeros((2, 3)),
        ...                   np.zeros(2), np.zeros(2), texture_strength=0.3, noise=0.0, rng=rng)
        >>> img.shape, float(img.max())
        ((2, 3, 4, 4), 0.0)
    """
    f32 = np.float32
    m, size = len(masks), masks.shape[-1]
    gx, gy = pixel_grid(size)
    images = paint(
        np.asarray(masks, dtype=f32).reshape(m, -1),
        np.asarray(foreground, dtype=f32),
        np.asarray(background, dtype=f32),
        np.asarray(stripe_angle, dtype=f32),
        np.asarray(stripe_phase, dtype=f32),
        gx,
        gy,
        texture_strength,
    )
    if noise > 0:
        images += (rng.random(images.shape, dtype=f32) - f32(0.5)) * f32(noise * np.sqrt(12.0))
    np.clip(images, 0, 1, out=images)
    return images.reshape(m, 3, size, size)
