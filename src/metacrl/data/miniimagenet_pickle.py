"""Reading the widely shared pickle format: ``mini-imagenet-cache-{train,validation,test}.pkl``.

Each file holds a dict with ``image_data`` (``uint8 [N, 84, 84, 3]``) and ``class_dict`` (class
name -> list of row indices of ``image_data``). A pickle can name any function for the loader to
call, so these files are read by a restricted unpickler (:class:`FormatUnpickler`) that builds
only what the format needs (dicts, lists, strings, numbers, numpy arrays and scalars) and
refuses anything else before it runs. Pickles written by Python 2 load too.
"""

from __future__ import annotations

import codecs
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PICKLE_SPLITS",
    "FormatUnpickler",
    "PickleSplit",
    "load_format_pickle",
    "pickle_path",
    "read_split_pickle",
    "warn_if_other_split",
]

PICKLE_SPLITS = {"train": "train", "val": "validation", "test": "test"}
"""The split name in the pickle's file name for each mode."""


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as pickles of ``bytes`` use it (Python 3, protocols 0 to 2)."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _constructor(reduced: str | tuple[Any, ...]) -> Callable[..., Any]:
    """The function that an object's ``__reduce__`` names (what its pickle calls)."""
    if not isinstance(reduced, tuple) or not callable(reduced[0]):
        raise TypeError(f"not a reduction with a constructor: {reduced!r}")
    return reduced[0]  # type: ignore[no-any-return]


def _allowed() -> dict[tuple[str, str], Callable[..., Any]]:
    """The globals a data pickle may name, under the module names numpy 1 and 2 use."""
    array = np.zeros(1, np.uint8)
    found: dict[str, Callable[..., Any]] = {
        "multiarray._reconstruct": _constructor(array.__reduce__()),  # ndarray, protocols 0-4
        "multiarray.scalar": _constructor(np.int64(0).__reduce__()),  # numpy scalars
        "numeric._frombuffer": _constructor(array.__reduce_ex__(5)),  # ndarray, protocol 5
    }
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
    }
    for qualified, function in found.items():
        module, name = qualified.split(".")
        for package in ("numpy.core", "numpy._core"):
            allowed[(f"{package}.{module}", name)] = function
    for builtins in ("builtins", "__builtin__"):
        allowed[(builtins, "bytes")] = bytes
        allowed[(builtins, "bytearray")] = bytearray
    return allowed


_ALLOWED = _allowed()


class FormatUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays.

    A pickle calls the functions it names while it loads, so an ordinary ``pickle.load`` of a
    crafted file runs any code (``os.system``, say). This one looks every name up in a short
    list (numpy's array, dtype and scalar constructors, and the helpers pickles of ``bytes``
    use) and raises ``pickle.UnpicklingError`` for any other, before anything is called.
    Python 2 strings are read as Latin-1, as numpy needs for Python 2 pickles of arrays.

    Args:
        file: A binary file open for reading.

    Example:
        >>> import io, os
        >>> data = pickle.dumps({"image_data": np.zeros((1, 2, 2, 3), np.uint8)})
        >>> FormatUnpickler(io.BytesIO(data)).load()["image_data"].shape
        (1, 2, 2, 3)
        >>> class Exploit:
        ...     def __reduce__(self):
        ...         return os.system, ("echo hacked",)
        >>> FormatUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()
        Traceback (most recent call last):
            ...
        _pickle.UnpicklingError: refused to load posix.system: ...
    """

    def __init__(self, file: Any) -> None:
        super().__init__(file, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed global ``module.name``; refuse any other.

        Args:
            module: The module the pickle names.
            name: The name in it.

        Returns:
            The function or class.

        Raises:
            pickle.UnpicklingError: If the name is not one the format needs.
        """
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a data pickle (miniImageNet, CIFAR-100, "
                "tieredImageNet) holds only dicts, lists, strings, numbers and numpy arrays, and "
                "loading anything else could run code"
            )
        return found


def load_format_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`FormatUnpickler`, naming the file in any error.

    Args:
        path: The pickle file.

    Returns:
        What it holds.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it names anything but the format's types (nothing is run), or cannot be
            unpickled (truncated, not a pickle, ...); the message names the file.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "x.pkl")
        ...     with open(p, "wb") as f:
        ...         pickle.dump({"class_dict": {"n01": [0, 1]}}, f)
        ...     load_format_pickle(p)
        {'class_dict': {'n01': [0, 1]}}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"miniImageNet pickle not found: {path}")
    try:
        with open(path, "rb") as f:
            return FormatUnpickler(f).load()
    except MemoryError:
        raise
    except Exception as err:  # a damaged or foreign pickle fails in many ways
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"cannot unpickle {path}: {reason}") from err


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


def warn_if_other_split(path: str | Path, mode: str) -> None:
    """Warn when a pickle given as one file holds another split than ``mode``.

    One file given as the data root serves whatever split is asked for; when its name says it
    holds another split (``mini-imagenet-cache-test.pkl`` used for training, say), the classes
    of one split leak into another, so this warns (a ``UserWarning`` naming the file).

    Args:
        path: The pickle file.
        mode: The split it is used as: ``"train"``, ``"val"`` or ``"test"``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_other_split("mini-imagenet-cache-test.pkl", "train")
        >>> print(caught[0].message)  # doctest: +ELLIPSIS
        mini-imagenet-cache-test.pkl holds the 'test' split but is used as the 'train' split...
    """
    name = Path(path).name
    for split_mode, split in PICKLE_SPLITS.items():
        if name == f"mini-imagenet-cache-{split}.pkl" and split_mode != mode:
            warnings.warn(
                f"{path} holds the {split_mode!r} split but is used as the {mode!r} split: its "
                "classes are then shared between splits; give the folder that holds the three "
                "pickles instead",
                UserWarning,
                stacklevel=3,
            )


def read_split_pickle(path: str | Path) -> PickleSplit:
    """Load and check a miniImageNet pickle.

    Args:
        path: The ``.pkl`` file.

    Returns:
        The :class:`PickleSplit`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it names anything but the format's types (it is refused before anything
            runs, see :class:`FormatUnpickler`), cannot be unpickled, or does not hold the
            expected dict (the file is named).

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
    data = load_format_pickle(path)
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
