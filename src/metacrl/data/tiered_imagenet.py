"""tieredImageNet episodes, read from the widely shared ``{split}_images.npz`` arrays.

tieredImageNet (Ren et al., "Meta-learning for semi-supervised few-shot classification", ICLR
2018) groups 608 ImageNet classes into 34 high-level categories and splits by category, 20 /
6 / 8, so test classes are far from training ones: 351 / 97 / 160 classes, 448,695 / 124,261
/ 206,209 images at 84x84.

The format read is the one most code uses (MetaOptNet, FEAT, RFS and others), one pair of files
per split in ``root``:

* ``{train,val,test}_images.npz``: an ``np.savez`` archive holding ``images``, ``uint8
  [N, 84, 84, 3]``. Its channels are in **BGR** order (the archives were made with OpenCV's
  ``cv2.imdecode`` from Ren et al.'s PNGs); they are flipped to RGB here.
* ``{train,val,test}_labels.pkl``: a pickled dict with the class of each image under
  ``label_specific`` (Ren et al.'s key) or ``labels``, and optionally the class names under
  ``label_specific_str`` (indexed by label); classes without names are called by their label,
  ``"0000"`` and so on.

Ren et al.'s original ``{split}_images_png.pkl`` (a list of PNG-encoded images) is not read:
a clear error says so, and their code (or any of the above) converts it to the ``.npz`` once.
The archive is streamed into the ``uint8`` cache a chunk at a time, so building the cache never
holds the whole split in memory; afterwards the cache is memory-mapped. Pickles are read with
the restricted unpickler of :mod:`metacrl.data.miniimagenet_pickle`.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from metacrl.data.class_images import ClassImageTasks
from metacrl.data.image_cache import build_array_cache
from metacrl.data.image_decode import resize_images
from metacrl.data.miniimagenet_pickle import load_format_pickle

__all__ = ["TieredImagenet", "read_tiered_labels"]

_LABEL_KEYS = ("label_specific", "labels")
_MEMBER = "images.npy"
_ROWS = 512


def read_tiered_labels(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``{split}_labels.pkl`` file: the rows of each class.

    Args:
        path: The labels pickle.

    Returns:
        Class name -> the rows of its images, in the order of the names.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it cannot be unpickled or holds no per-image labels (the file is named).

    Example:
        >>> import pickle, tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "val_labels.pkl")
        ...     with open(p, "wb") as f:
        ...         pickle.dump({"label_specific": np.array([1, 0, 1])}, f)
        ...     {k: v.tolist() for k, v in read_tiered_labels(p).items()}
        {'0000': [1], '0001': [0, 2]}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tieredImageNet labels not found: {path}")
    data = load_format_pickle(path)
    if isinstance(data, dict):
        data = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in data.items()}
    key = next((k for k in _LABEL_KEYS if isinstance(data, dict) and k in data), None)
    if key is None:
        raise ValueError(
            f"{path} is not a tieredImageNet labels file: expected a dict with the key "
            f"{' or '.join(map(repr, _LABEL_KEYS))}"
        )
    labels = np.asarray(data[key])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError(f"{path}: {key!r} must be a non-empty list of integer labels")
    if labels.min() < 0:
        raise ValueError(f"{path}: {key!r} holds negative labels")
    names = data.get("label_specific_str")
    if names is not None and len(names) <= int(labels.max()):
        raise ValueError(f"{path}: 'label_specific_str' names {len(names)} classes, too few")
    classes: dict[str, np.ndarray] = {}
    for label in np.unique(labels):
        name = _name(names[label]) if names is not None else f"{int(label):04d}"
        classes[name] = np.flatnonzero(labels == label)
    return classes


def _name(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _npy_header(f: IO[bytes], path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Read the header of the ``.npy`` member; check it is C-ordered ``uint8 [N, H, W, 3]``."""
    try:
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
    except ValueError as err:
        raise ValueError(f"{path}: 'images' is not a readable .npy array: {err}") from err
    if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or fortran:
        raise ValueError(
            f"{path}: 'images' must be a uint8 [N, H, W, 3] array, got {dtype} {tuple(shape)}"
        )
    return tuple(shape), dtype


def npz_images_shape(path: str | Path) -> tuple[int, ...]:
    """Return the shape of the ``images`` array of an ``.npz`` archive, without reading it.

    Args:
        path: The archive.

    Returns:
        ``(N, H, W, 3)``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not an ``.npz`` archive holding a ``uint8 [N, H, W, 3]`` array
            ``images`` (the file is named).

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "val_images.npz")
        ...     np.savez(p, images=np.zeros((2, 4, 4, 3), np.uint8))
        ...     npz_images_shape(p)
        (2, 4, 4, 3)
    """
    path = Path(path)
    with _open_member(path) as f:
        shape, _ = _npy_header(f, path)
    return shape


@contextlib.contextmanager
def _open_member(path: Path) -> Iterator[IO[bytes]]:
    """Open the ``images.npy`` member of the archive ``path`` (closing both afterwards)."""
    if not path.is_file():
        raise FileNotFoundError(f"tieredImageNet images not found: {path}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is not an .npz archive: {err}") from err
    with archive:
        names = archive.namelist()
        if _MEMBER not in names:
            raise ValueError(
                f"{path} holds no 'images' array (it has {', '.join(names) or 'none'})"
            )
        with archive.open(_MEMBER) as member:
            yield member


def _npz_chunks(path: Path, rows: int = _ROWS) -> Iterator[np.ndarray]:
    """Yield the archive's images as RGB chunks of ``rows``, reading one chunk at a time."""
    with _open_member(path) as f:
        shape, dtype = _npy_header(f, path)
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            buffer = f.read(n * row_bytes)
            if len(buffer) != n * row_bytes:
                raise ValueError(f"{path} is truncated: it ends within image {start + n - 1}")
            yield np.frombuffer(buffer, dtype).reshape(n, *shape[1:])[..., ::-1]


class TieredImagenet(ClassImageTasks):
    """N-way K-shot episodes of tieredImageNet (Ren et al., 2018): 351 / 97 / 160 classes.

    Reads ``root/{mode}_images.npz`` and ``root/{mode}_labels.pkl`` (the format of
    :mod:`metacrl.data.tiered_imagenet`). Episodes are drawn as in
    :class:`~metacrl.data.MiniImagenet` (same seeding, labels and order), and images are
    returned the same way: ``float32 [3, resize, resize]``, standardised with the ImageNet mean
    and std (``normalize=False``: in ``[0, 1]``). The split is streamed once into a ``uint8``
    cache at ``resize`` (``tiered-imagenet-{mode}-{resize}px.npy`` in ``cache_dir``).

    Args:
        root: The folder of the ``.npz`` and ``.pkl`` files.
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        batchsz: The number of tasks (default: ``10000``).
        resize: The image side length (default: ``84``).
        seed: The seed of the task stream (default: ``0``).
        cache: Stream the split into an on-disk cache (default: ``True``); ``False`` loads the
            whole archive into memory.
        cache_dir: Where the cache goes (default: ``root/cache``).
        normalize: Standardise with the ImageNet mean and std (default: ``True``).
        progress: Show a progress bar while building the cache (default: ``True``).

    Attributes:
        classes: The split's class names, sorted.
        source: The ``.npz`` archive.
        cache_path: The cache's ``.npy`` file, or ``None``.

    Raises:
        FileNotFoundError: If ``root`` or a file of the split is missing.
        ValueError: If a file is not in the format (named, with what is wrong; Ren et al.'s
            PNG pickles are named as such), the labels and images disagree in number, a class
            has fewer than ``k_shot + k_query`` images, ``n_way`` is above the number of
            classes, or an argument is out of range.
        TypeError: If a count is not an integer.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_tiered_imagenet
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = write_fake_tiered_imagenet(tmp.name, (6, 2, 3), images_per_class=3,
        ...                                   image_size=8)
        >>> ds = TieredImagenet(root, "test", n_way=3, k_shot=1, k_query=2, batchsz=4, resize=8,
        ...                     progress=False)
        >>> tuple(ds[0][0].shape), ds.num_classes, ds.classes[0]
        ((3, 3, 8, 8), 3, 'n92000008')
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | Path,
        mode: str = "train",
        n_way: int = 5,
        k_shot: int = 1,
        k_query: int = 15,
        batchsz: int = 10000,
        resize: int = 84,
        seed: int = 0,
        cache: bool = True,
        *,
        cache_dir: str | Path | None = None,
        normalize: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__(mode, n_way, k_shot, k_query, batchsz, resize, seed, normalize)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"tieredImageNet root folder not found: {self.root}")
        images_path = self.root / f"{self.mode}_images.npz"
        labels_path = self.root / f"{self.mode}_labels.pkl"
        png_path = self.root / f"{self.mode}_images_png.pkl"
        if not images_path.is_file() and png_path.is_file():
            raise ValueError(
                f"found {png_path} (Ren et al.'s PNG pickle) but not {images_path.name}: this "
                "loader reads the decoded arrays {train,val,test}_images.npz (key 'images', "
                "uint8 [N, 84, 84, 3]) that MetaOptNet, FEAT and RFS use; convert the pickle "
                "once with np.savez (see docs/data.md)"
            )
        if not images_path.is_file():
            raise FileNotFoundError(
                f"tieredImageNet images not found: {images_path} (expected "
                f"{self.mode}_images.npz and {self.mode}_labels.pkl in {self.root})"
            )
        self.source = images_path
        class_rows = read_tiered_labels(labels_path)
        count = sum(len(rows) for rows in class_rows.values())
        shape = npz_images_shape(images_path)
        if shape[0] != count:
            raise ValueError(
                f"{images_path} holds {shape[0]} images but {labels_path} labels {count}"
            )
        if cache:
            keys = [f"{images_path.name}[{i}]" for i in range(count)]

            def build(directory: Path, name: str) -> np.ndarray:
                return build_array_cache(
                    directory,
                    name,
                    _npz_chunks(images_path),
                    keys,
                    self.resize,
                    progress=progress,
                    desc=f"caching tieredImageNet {self.mode} at {self.resize}px",
                )

            name = f"tiered-imagenet-{self.mode}-{self.resize}px"
            self._use_cache(self.root, cache_dir, name, keys, build)
        else:
            rgb = np.concatenate(list(_npz_chunks(images_path)))
            desc = f"resizing tieredImageNet {self.mode}"
            self._set_images(resize_images(rgb, self.resize, progress, desc))
        self._set_class_rows(class_rows, where=str(labels_path))
