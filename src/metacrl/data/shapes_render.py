"""Vectorised rendering of shape images: every image of a task in one set of array operations.

A pixel is inside a class's star polygon when its radius (in the shape's frame) is below the
class's boundary radius at its angle (see :mod:`metacrl.data.shapes_classes`). Edges are
antialiased analytically: a pixel's coverage ramps linearly over one pixel across the boundary
(measured along the ray from the shape's centre), which costs nothing next to supersampling.
Each image has its own pose: a small rotation, a scale and a shift (see :func:`draw_poses`), so
that what identifies a class is its shape, not a fixed pixel pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacrl.data.painting import STRIPES_PER_IMAGE, paint, pixel_grid

__all__ = [
    "ROTATION_JITTER",
    "SCALE_RANGE",
    "SHIFT_RANGE",
    "STRIPES_PER_IMAGE",
    "Poses",
    "draw_poses",
    "render_shapes",
]

ROTATION_JITTER = float(np.pi / 12)
"""Images are rotated by ``U[-pi/12, pi/12]`` (15 degrees) around the class's orientation."""

SCALE_RANGE = (0.5, 0.75)
"""The shape's largest radius, as a fraction of half the image side."""

SHIFT_RANGE = 0.15
"""The shape's centre moves by ``U[-0.15, 0.15]`` of half the image side along each axis."""

_CHUNK_PIXELS = 6144  # keeps each temporary under glibc's 128 KiB mmap threshold


@dataclass(frozen=True)
class Poses:
    """Per-image pose jitter, in image coordinates (the image spans ``[-1, 1]^2``).

    Attributes:
        rotation: Rotation angles ``[M]`` (radians).
        scale: Scales ``[M]`` (the shape's largest radius).
        shift: Centre offsets ``[M, 2]`` (x, y).

    Example:
        >>> poses = draw_poses(np.random.default_rng(0), 3)
        >>> poses.rotation.shape, poses.shift.shape
        ((3,), (3, 2))
    """

    rotation: np.ndarray
    scale: np.ndarray
    shift: np.ndarray


def draw_poses(rng: np.random.Generator, count: int) -> Poses:
    """Draw ``count`` random poses (see :data:`ROTATION_JITTER`, :data:`SCALE_RANGE`, ...).

    Args:
        rng: The task's generator.
        count: The number of images.

    Returns:
        The :class:`Poses` (``float32``).

    Example:
        >>> p = draw_poses(np.random.default_rng(0), 3)
        >>> p.rotation.shape, p.shift.shape
        ((3,), (3, 2))
    """
    f32 = np.float32
    return Poses(
        rotation=rng.uniform(-ROTATION_JITTER, ROTATION_JITTER, count).astype(f32),
        scale=rng.uniform(*SCALE_RANGE, count).astype(f32),
        shift=rng.uniform(-SHIFT_RANGE, SHIFT_RANGE, (count, 2)).astype(f32),
    )


def render_shapes(
    radii: np.ndarray,
    poses: Poses,
    foreground: np.ndarray,
    background: np.ndarray,
    stripe_angle: np.ndarray,
    stripe_phase: np.ndarray,
    size: int,
    texture_strength: float = 0.3,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``M`` images of shapes at once.

    Args:
        radii: Each image's class boundary table ``[M, A]`` (radius at angle ``2 pi b / A``).
        poses: Each image's pose.
        foreground: Shape colours ``[M, 3]`` in ``[0, 1]``.
        background: Background colours ``[M, 3]``.
        stripe_angle: Stripe orientations ``[M]`` (radians).
        stripe_phase: Stripe phases ``[M]`` (radians).
        size: The image side length in pixels.
        texture_strength: How much the stripes darken the image (0: no texture; default: ``0.3``).
        noise: Standard deviation of uniform pixel noise (needs ``rng`` when positive; default:
            ``0.0``).
        rng: The generator of the noise (default: ``None``).

    Returns:
        ``(images, masks)``: ``float32`` images ``[M, 3, size, size]`` in ``[0, 1]`` and the
        shapes' coverage ``[M, size, size]`` in ``[0, 1]`` (1 inside, antialiased edges).

    Raises:
        ValueError: If ``noise > 0`` and no ``rng`` is given.

    Example:
        >>> r = np.full((2, 16), 1.0, np.float32)   # two discs
        >>> p = Poses(np.zeros(2, np.float32), np.full(2, 0.5, np.float32),
        ...           np.zeros((2, 2), np.float32))
        >>> img, mask = render_shapes(r, p, np.ones((2, 3)), np.zeros((2, 3)),
        ...                           np.zeros(2), np.zeros(2), size=8, texture_strength=0.0)
        >>> img.shape, float(mask[0, 4, 4]), float(mask[0, 0, 0])
        ((2, 3, 8, 8), 1.0, 0.0)
    """
    f32 = np.float32
    m, bins = radii.shape
    pixels = size * size
    if noise > 0:
        if rng is None:
            raise ValueError("render_shapes needs rng when noise > 0")
        # Uniform noise with standard deviation `noise`, drawn straight into the output.
        images = rng.random((m, 3, pixels), dtype=f32)
        images -= f32(0.5)
        images *= f32(noise * np.sqrt(12.0))
    else:
        images = np.zeros((m, 3, pixels), dtype=f32)
    masks = np.empty((m, pixels), dtype=f32)
    gx, gy = pixel_grid(size)
    # Padded with its first two columns, each table wraps around without a modulo.
    table = np.concatenate([radii, radii[:, :2]], axis=1).astype(f32)
    # Work on a few images at a time: small temporaries are recycled by the allocator, where
    # large ones are fresh memory maps page-faulted in for every task (2-3x slower overall).
    step = max(1, _CHUNK_PIXELS // pixels)
    for lo in range(0, m, step):
        sl = slice(lo, min(m, lo + step))
        _render_chunk(
            table[sl],
            Poses(poses.rotation[sl], poses.scale[sl], poses.shift[sl]),
            np.asarray(foreground, dtype=f32)[sl],
            np.asarray(background, dtype=f32)[sl],
            np.asarray(stripe_angle, dtype=f32)[sl],
            np.asarray(stripe_phase, dtype=f32)[sl],
            gx,
            gy,
            size,
            texture_strength,
            images[sl],
            masks[sl],
        )
    np.clip(images, 0, 1, out=images)
    return images.reshape(m, 3, size, size), masks.reshape(m, size, size)


def _render_chunk(
    table: np.ndarray,
    poses: Poses,
    foreground: np.ndarray,
    background: np.ndarray,
    stripe_angle: np.ndarray,
    stripe_phase: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    size: int,
    texture_strength: float,
    out: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Render images into ``out`` ``[n, 3, P]`` (adding to its noise) and ``mask`` ``[n, P]``."""
    f32 = np.float32
    n, width = table.shape
    bins = width - 2
    dx = gx - poses.shift[:, :1]
    dy = gy - poses.shift[:, 1:]
    cos = np.cos(poses.rotation)[:, None]
    sin = np.sin(poses.rotation)[:, None]
    inv_scale = (f32(1.0) / poses.scale)[:, None]
    xs = (cos * dx + sin * dy) * inv_scale  # rotate by -rotation into the shape's frame
    ys = (cos * dy - sin * dx) * inv_scale
    rad = np.sqrt(xs * xs + ys * ys)
    # Angle in [0, 2 pi] as atan2(-y, -x) + pi, then in table bins [0, bins].
    pos = np.arctan2(-ys, -xs)
    pos += f32(np.pi)
    pos *= f32(bins / (2 * np.pi))
    low = np.floor(pos)
    frac = pos - low
    flat = table.reshape(-1)
    i0 = low.astype(np.int64)
    i0 += (np.arange(n, dtype=np.int64) * width)[:, None]
    r0 = flat[i0]
    i0 += 1
    boundary = r0 + (flat[i0] - r0) * frac  # linear interpolation between table bins
    # Distance to the edge in pixels (shape units * scale -> image units * size/2 -> pixels).
    np.subtract(boundary, rad, out=mask)
    mask *= poses.scale[:, None] * f32(size / 2)
    mask += f32(0.5)
    np.clip(mask, 0, 1, out=mask)
    out += paint(mask, foreground, background, stripe_angle, stripe_phase, gx, gy, texture_strength)
