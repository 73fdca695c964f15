"""The nuisance attributes of :class:`~metacrl.data.ConfoundedShapes` and their values.

Three nuisances, each taking one of :data:`NUM_VALUES` = 8 values, so a task's labels can be
mapped injectively onto values of any of them:

* ``"foreground"``: the shape's colour, from :data:`FOREGROUND_PALETTE` (light colours,
  luminance >= 0.54);
* ``"background"``: the background colour, from :data:`BACKGROUND_PALETTE` (dark colours,
  luminance <= 0.25), so the shape always stands out whatever the two colours are;
* ``"texture"``: the orientation of a stripe pattern multiplied over the whole image, one of 8
  angles ``k * pi / 8`` (period: an eighth of the image side; random phase per image).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKGROUND_PALETTE",
    "FOREGROUND_PALETTE",
    "NUISANCES",
    "NUM_VALUES",
    "TEXTURE_ANGLES",
    "nuisance_index",
]

NUISANCES = ("foreground", "background", "texture")
"""The nuisance attributes, in the column order of an episode's ``nuisances`` array."""

NUM_VALUES = 8
"""The number of values of each nuisance."""

FOREGROUND_PALETTE = np.array(
    [
        [1.00, 0.35, 0.35],  # red
        [0.35, 0.95, 0.35],  # green
        [0.45, 0.60, 1.00],  # blue
        [1.00, 0.90, 0.30],  # yellow
        [1.00, 0.45, 1.00],  # magenta
        [0.35, 1.00, 1.00],  # cyan
        [1.00, 0.65, 0.20],  # orange
        [0.95, 0.95, 0.95],  # white
    ],
    dtype=np.float32,
)
"""Shape colours (RGB in ``[0, 1]``)."""

BACKGROUND_PALETTE = np.array(
    [
        [0.05, 0.05, 0.05],  # black
        [0.30, 0.05, 0.05],  # maroon
        [0.05, 0.25, 0.05],  # dark green
        [0.05, 0.05, 0.35],  # navy
        [0.25, 0.05, 0.30],  # purple
        [0.05, 0.25, 0.25],  # teal
        [0.30, 0.18, 0.05],  # brown
        [0.25, 0.25, 0.25],  # grey
    ],
    dtype=np.float32,
)
"""Background colours (RGB in ``[0, 1]``)."""

TEXTURE_ANGLES = np.arange(NUM_VALUES, dtype=np.float32) * np.float32(np.pi / NUM_VALUES)
"""Stripe orientations (radians)."""


def nuisance_index(name: str) -> int:
    """Return the column of nuisance ``name``.

    Args:
        name: One of :data:`NUISANCES`.

    Returns:
        Its index in :data:`NUISANCES`.

    Raises:
        ValueError: If ``name`` is not a nuisance.

    Example:
        >>> nuisance_index("background")
        1
    """
    if name not in NUISANCES:
        raise ValueError(f"unknown nuisance {name!r}; choose one of {', '.join(NUISANCES)}")
    return NUISANCES.index(name)
