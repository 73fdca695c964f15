"""Reading the widely shared pickle format: ``mini-imagenet-cache-{train,validation,test}.pkl``.

Each file holds a dict with ``image_data`` (``uint8 [N, 84, 84, 3]``) and ``class_dict`` (class
name -> list of row indices of ``image_data``). Loading a pickle can run arbitrary code: only
open files from a source you trust.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PICKLE_SPLITS", "PickleSplit", "pickle_path", "read_split_pickle"]

PICKLE_SPLITS = {"train": "train", "val": "validation", "test": "test"}
"""The split name in the pickle's file name for each mode."""


@dataclass(frozen=True)
class PickleSplit:
    """The images of one split from a pickle file.

    Attributes:
        path: The pickle file.
        images: ``uint8`` images ``[N, H, W, 3]``.
        class_rows: Class name -> row indices into ``images``.

    Example:
        >>> split = PickleSplit(Path("x.pkl"), np.zeros((3, 84, 84, 3), np.uint8),
        ...                     {"n01": np.array([0, 2]), "n02": np.array([1])})
        >>> split.images[split.class_rows["n01"]].shape
        (2, 84, 84, 3)
    """

    path: Path
    images: np.ndarray
    class_rows: dict[str, np.ndarray]


def pickle_path(root: str | Path, mode: str) -> Path:
    """Return where the pickle of ``mode`` lives under ``root``.

    Args:
        root: The data folder.
        mode: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        ``root/mini-imagenet-cache-{train,validation,test}.pkl``.

    Example:
        >>> pickle_path("data", "val").name
        'mini-imagenet-cache-validation.pkl'
    """
    return Path(root) / f"mini-imagenet-cache-{PICKLE_SPLITS[mode]}.pkl"


def read_split_pickle(path: str | Path) -> PickleSplit:
    """Load and check a miniImageNet pickle.

    Args:
        path: The ``.pkl`` file.

    Returns:
        The :class:`PickleSplit`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it cannot be unpickled or does not hold the expected dict (the file is
            named).

    Example:
        >>> import tempfile, os
        >>> data = {"image_data": np.zeros((2, 84, 84, 3), np.uint8),
        ...         "class_dict": {"n01": [0, 1]}}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "mini-imagenet-cache-train.pkl")
        ...     with open(p, "wb") as f:
        ...         pickle.dump(data, f)
        ...     read_split_pickle(p).images.shape
        (2, 84, 84, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"miniImageNet pickle not found: {path}")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - the documented format of this file
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as err:
        raise ValueError(f"cannot unpickle {path}: {err}") from err
    if not isinstance(data, dict) or "image_data" not in data or "class_dict" not in data:
        raise ValueError(f"{path} must hold a dict with keys 'image_data' and 'class_dict'")
    images = np.asarray(data["image_data"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(
            f"{path}: 'image_data' must be uint8 [N, H, W, 3], got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    class_dict = data["class_dict"]
    if not isinstance(class_dict, dict) or not class_dict:
        raise ValueError(f"{path}: 'class_dict' must be a non-empty dict of class -> rows")
    class_rows: dict[str, np.ndarray] = {}
    for name in sorted(class_dict, key=str):
        rows = np.asarray(class_dict[name], dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(images)):
            raise ValueError(f"{path}: class {name!r} refers to rows outside 0..{len(images) - 1}")
        class_rows[str(name)] = rows
    return PickleSplit(path, images, class_rows)
