"""The shape classes of :class:`~metacrl.data.ConfoundedShapes`: seeded random star polygons.

Each of the 100 classes is a polygon with 3 to 8 vertices at increasing angles around the
origin (evenly spaced plus jitter, with a random overall orientation) and random radii in
``[0.35, 1]`` (the largest scaled to 1). Every ray from the origin crosses such a polygon's
boundary exactly once, so the shape is fully described by its boundary radius as a function of
angle, ``r(phi)``, tabulated at :data:`ANGLE_BINS` angles. Rasterising is then a vectorised
lookup (see :mod:`metacrl.data.shapes_render`). Classes 0-63 are the training split, 64-79
validation and 80-99 test; they depend only on ``class_seed``, never on the episode seed, so
the splits are disjoint and stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacrl.data.seeding import check_seed
from metacrl.validation import check_choice

__all__ = ["ANGLE_BINS", "SPLIT_CLASSES", "ShapeBank", "make_shape_bank", "split_class_ids"]

ANGLE_BINS = 256
"""Angles at which a class's boundary radius is tabulated (linear interpolation between)."""

SPLIT_CLASSES = {"train": 64, "val": 16, "test": 20}
"""Classes per split, in the order of their global class ids."""

_MIN_VERTICES, _MAX_VERTICES = 3, 8
_ANGLE_JITTER = 0.2  # fraction of the even spacing: keeps every edge under pi radians
_MIN_RADIUS = 0.35


@dataclass(frozen=True)
class ShapeBank:
    """All shape classes.

    Attributes:
        vertices: Per class, the polygon's vertices ``[V, 2]`` (max radius 1).
        radii: The boundary radius of each class at each tabulated angle,
            ``[num_classes, ANGLE_BINS]`` ``float32``; angle ``b`` is ``2 pi b / ANGLE_BINS``.

    Example:
        >>> bank = make_shape_bank(0)
        >>> bank.num_classes, len(bank.vertices), bool(bank.radii.max() <= 1.0)
        (100, 100, True)
    """

    vertices: tuple[np.ndarray, ...]
    radii: np.ndarray

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return int(self.radii.shape[0])


def _polygon(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(_MIN_VERTICES, _MAX_VERTICES + 1))
    step = 2 * np.pi / n
    angles = np.arange(n) * step + rng.uniform(-_ANGLE_JITTER, _ANGLE_JITTER, n) * step
    angles = np.mod(angles + rng.uniform(0, 2 * np.pi), 2 * np.pi)
    radii = rng.uniform(_MIN_RADIUS, 1.0, n)
    radii /= radii.max()
    order = np.argsort(angles)
    angles, radii = angles[order], radii[order]
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _boundary_radius(vertices: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Where the ray at angle ``phi`` leaves a star polygon (vertices sorted by angle)."""
    angles = np.mod(np.arctan2(vertices[:, 1], vertices[:, 0]), 2 * np.pi)
    k = (np.searchsorted(angles, phi, side="right") - 1) % len(vertices)
    p = vertices[k]
    d = vertices[(k + 1) % len(vertices)] - p
    u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    # Solve t u = p + s d for t: cross both sides with d.
    num = p[:, 0] * d[:, 1] - p[:, 1] * d[:, 0]
    den = u[:, 0] * d[:, 1] - u[:, 1] * d[:, 0]
    out: np.ndarray = num / den
    return out


def make_shape_bank(class_seed: int = 0, num_classes: int = 100) -> ShapeBank:
    """Draw the shape classes from ``class_seed``.

    Args:
        class_seed: Seed of the shapes (independent of any episode seed; default: ``0``).
        num_classes: How many classes to draw (default: ``100``).

    Returns:
        The :class:`ShapeBank`.

    Example:
        >>> bank = make_shape_bank()
        >>> bank.radii.shape, float(bank.radii.max()) <= 1.0
        ((100, 256), True)
    """
    seed = check_seed(class_seed)
    phi = np.arange(ANGLE_BINS) * (2 * np.pi / ANGLE_BINS)
    vertices = tuple(_polygon(np.random.default_rng([seed, c])) for c in range(num_classes))
    radii = np.stack([_boundary_radius(v, phi) for v in vertices]).astype(np.float32)
    return ShapeBank(vertices, radii)


def split_class_ids(mode: str) -> np.ndarray:
    """Return the global class ids of a split: train 0-63, val 64-79, test 80-99.

    Args:
        mode: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        The ids as ``int64``.

    Raises:
        ValueError: If ``mode`` is not a split.

    Example:
        >>> split_class_ids("val")[[0, -1]].tolist()
        [64, 79]
    """
    modes = tuple(SPLIT_CLASSES)
    check_choice("mode", mode, modes)
    first = sum(SPLIT_CLASSES[m] for m in modes[: modes.index(mode)])
    return np.arange(first, first + SPLIT_CLASSES[mode], dtype=np.int64)
