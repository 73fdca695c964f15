"""The drawings of the Open Clip Art Library, as Debian's ``openclipart-png`` installs them.

``apt-get install openclipart-png`` puts about 6,900 PNG drawings (public domain) under
:data:`DEFAULT_ROOT`, one folder per category (``animals/birds``, ``food/fruit``, ...). A class of
:class:`~metacrl.data.ConfoundedClipart` is a folder with at least ``min_images`` drawings of its
own (symbolic links, which repeat drawings of other folders, do not count), except the folders
in :data:`EXCLUDED` and drawings larger than :data:`MAX_PIXELS`. Nothing is downloaded: the
files come with the package.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "DEFAULT_ROOT",
    "EXCLUDED",
    "MAX_PIXELS",
    "decode_drawing",
    "scan_clipart",
]

DEFAULT_ROOT = Path("/usr/share/openclipart/png")
"""Where Debian's ``openclipart-png`` package installs the drawings."""

EXCLUDED = frozenset({"unsorted", "shapes/stars"})
"""Folders that are not classes: a catch-all, and generated star polygons."""

MAX_PIXELS = 4_000_000
"""Drawings with more pixels than this are left out (a few huge posters; decoding them costs
more than all the others together)."""


def scan_clipart(root: str | Path, min_images: int = 20) -> dict[str, list[Path]]:
    """Return the classes under ``root``: folder name (relative, ``/``-separated) -> drawings.

    Results are remembered per ``(root, min_images)`` for the life of the process (a scan
    reads every PNG's header).

    Args:
        root: The drawings' root folder (Debian: :data:`DEFAULT_ROOT`).
        min_images: The fewest drawings a folder needs to be a class (default: ``20``).

    Returns:
        The classes, sorted by name, each with its drawings sorted by file name.

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If a PNG file is not a readable image (named in the message).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.makedirs(f"{d}/food/fruit")
        ...     for i in range(3):
        ...         Image.new("L", (8, 8)).save(f"{d}/food/fruit/{i}.png")
        ...     {name: len(files) for name, files in scan_clipart(d, min_images=3).items()}
        {'food/fruit': 3}
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"clip-art folder not found: {root}; install the drawings with "
            "`apt-get install openclipart-png` (Debian/Ubuntu) or pass root= (the folder that "
            "holds one sub-folder per category)"
        )
    return _scan(str(root.resolve()), min_images)


@functools.cache
def _scan(root: str, min_images: int) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        name = Path(folder).relative_to(root).as_posix()
        if name in EXCLUDED:
            continue
        drawings = [
            Path(folder, f)
            for f in sorted(files)
            if f.lower().endswith(".png") and not os.path.islink(os.path.join(folder, f))
        ]
        drawings = [p for p in drawings if _pixels(p) <= MAX_PIXELS]
        if len(drawings) >= min_images and name != ".":
            classes[name] = drawings
    return dict(sorted(classes.items()))


def _pixels(path: Path) -> int:
    try:
        with warnings.catch_warnings():  # a huge poster is left out, not a threat
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only
                return int(img.width * img.height)
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1  # a huge poster: left out
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read drawing {path}: {err}") from err


def decode_drawing(path: Path, size: int) -> np.ndarray:
    """Read a drawing as grey ink on white: transparency flattened, padded square, resized.

    Args:
        path: A PNG file.
        size: The output side length.

    Returns:
        ``uint8`` ``[size, size, 3]`` (the three channels equal): 255 is paper, 0 full ink.

    Raises:
        ValueError: If the file cannot be decoded (named in the message).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.new("RGBA", (10, 4), (0, 0, 0, 0)).save(f"{d}/clear.png")  # transparent
        ...     grey = decode_drawing(Path(f"{d}/clear.png"), 4)
        >>> grey.shape, int(grey.min())
        ((4, 4, 3), 255)
    """
    try:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot decode drawing {path}: {err}") from err
    rgba.thumbnail((4 * size, 4 * size), Image.Resampling.BILINEAR)
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    paper.alpha_composite(rgba)
    grey = paper.convert("L")
    side = max(grey.size)
    square = Image.new("L", (side, side), 255)
    square.paste(grey, ((side - grey.width) // 2, (side - grey.height) // 2))
    small = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return np.repeat(small[:, :, None], 3, axis=2)
