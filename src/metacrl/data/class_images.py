"""The image store shared by the few-shot image benchmarks: one split's images, grouped by class.

:class:`ClassImageTasks` holds the images of one split (an in-memory array, or a memory-mapped
:mod:`~metacrl.data.image_cache` file) and, for each class, the rows of its images. It draws
N-way K-shot episodes with :func:`~metacrl.data.episodes.sample_episode` from a generator seeded
by ``(seed, mode, index)``, and turns them into tensors. :class:`~metacrl.data.MiniImagenet`,
:class:`~metacrl.data.Omniglot`, :class:`~metacrl.data.CIFARFS`, :class:`~metacrl.data.FC100`
and :class:`~metacrl.data.TieredImagenet` only say how a split is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metacrl.data.base import Task, TaskDataset
from metacrl.data.episodes import Episode, sample_episode
from metacrl.data.image_cache import load_image_cache
from metacrl.data.normalize import to_tensor
from metacrl.data.seeding import task_rng
from metacrl.validation import check_choice, check_index, check_int

__all__ = ["MODES", "ClassImageTasks", "check_disjoint_splits"]

MODES = ("train", "val", "test")
"""The splits, in the order of their key in the task seed."""


class ClassImageTasks(TaskDataset):
    """N-way K-shot episodes over one split's images grouped by class (map-style).

    Task ``i`` draws ``n_way`` classes in random order (label ``j`` is the ``j``-th drawn class,
    so labels are remapped to ``0..n_way-1`` differently in every task) and ``k_shot + k_query``
    distinct images of each, from a generator seeded by ``(seed, mode, i)``. Examples are ordered
    class-major: all support images of label 0, then label 1, ... (likewise the query set).

    A subclass reads its split, then calls :meth:`_set_images` (or sets ``cache_path``) and
    :meth:`_set_class_rows`; it may override :meth:`load_images` to transform what is stored.

    Args:
        mode: ``"train"``, ``"val"`` or ``"test"``.
        n_way: Classes per task.
        k_shot: Support images per class.
        k_query: Query images per class.
        batchsz: The number of tasks (``len(ds)``).
        resize: The image side length in pixels.
        seed: The seed of the task stream.
        normalize: Standardise RGB images with the ImageNet mean and std
            (:func:`~metacrl.data.normalize.to_tensor`); otherwise pixels are in ``[0, 1]``.

    Attributes:
        classes: The split's class names, sorted; :meth:`episode` refers to them by index.
        cache_path: The cache's ``.npy`` file, or ``None`` (images held in memory).

    Raises:
        ValueError: If an argument is out of range.
        TypeError: If a count is not an integer.

    Example:
        >>> class Tiny(ClassImageTasks):
        ...     def __init__(self):
        ...         super().__init__("train", 2, 1, 1, batchsz=4, resize=2, seed=0,
        ...                          normalize=False)
        ...         self._set_images(np.arange(4 * 12, dtype=np.uint8).reshape(4, 2, 2, 3))
        ...         self._set_class_rows({"a": np.array([0, 1]), "b": np.array([2, 3])}, "here")
        >>> ds = Tiny()
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), y_spt.tolist(), ds.num_classes, ds.num_images
        ((2, 3, 2, 2), [0, 1], 2, 4)
    """

    def __init__(
        self,
        mode: str,
        n_way: int,
        k_shot: int,
        k_query: int,
        batchsz: int,
        resize: int,
        seed: int,
        normalize: bool,
    ) -> None:
        super().__init__(batchsz, seed)
        self.mode = check_choice("mode", mode, MODES)
        self.n_way = check_int("n_way", n_way)
        self.k_shot = check_int("k_shot", k_shot)
        self.k_query = check_int("k_query", k_query)
        self.resize = check_int("resize", resize)
        self.normalize = bool(normalize)
        self.cache_path: Path | None = None
        self._images: np.ndarray | None = None
        self.classes: list[str] = []
        self._class_rows: list[np.ndarray] = []

    # ------------------------------------------------------------------ for subclasses
    def _set_images(self, images: np.ndarray, cache_path: Path | None = None) -> None:
        """Hold ``images`` (``uint8 [N, resize, resize, 3]``); a cached array names its file."""
        self._images = images
        self.cache_path = cache_path

    def _use_cache(
        self,
        root: Path,
        cache_dir: str | Path | None,
        name: str,
        keys: Sequence[str],
        build: Callable[[Path, str], np.ndarray],
    ) -> None:
        """Hold the images of cache ``name``, building it with ``build`` if need be.

        The cache on disk is used if it was made from ``keys`` at this size; otherwise
        ``build(directory, name)`` writes it. The folder is ``cache_dir``, by default
        ``root/cache``.
        """
        directory = Path(cache_dir) if cache_dir is not None else root / "cache"
        images = load_image_cache(directory, name, keys, self.resize)
        if images is None:
            images = build(directory, name)
        self._set_images(images, directory / f"{name}.npy")

    def _set_class_rows(self, class_rows: dict[str, np.ndarray], where: str) -> None:
        """Group rows by class and check that every class has enough images for a task."""
        self.classes = sorted(class_rows)
        self._class_rows = [np.asarray(class_rows[name], dtype=np.int64) for name in self.classes]
        if self.n_way > len(self.classes):
            raise ValueError(
                f"n_way={self.n_way} is larger than the {len(self.classes)} classes of the "
                f"{self.mode!r} split ({where})"
            )
        need = self.k_shot + self.k_query
        for name, rows in zip(self.classes, self._class_rows, strict=True):
            if len(rows) < need:
                raise ValueError(
                    f"class {name!r} has {len(rows)} images in {where}, fewer than "
                    f"k_shot + k_query = {self.k_shot} + {self.k_query} = {need}"
                )

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        """Images of ``rows`` when nothing is stored (a subclass that decodes on access)."""
        raise RuntimeError(f"{type(self).__name__} holds no images")

    # ------------------------------------------------------------------ access
    @property
    def num_classes(self) -> int:
        """The number of classes of the split."""
        return len(self.classes)

    @property
    def num_images(self) -> int:
        """The number of images of the split."""
        return sum(len(r) for r in self._class_rows)

    def class_rows(self, index: int) -> np.ndarray:
        """Return the image rows of class ``self.classes[index]``.

        Args:
            index: A class index in ``0..num_classes-1``.

        Returns:
            The rows (indices for :meth:`load_images`) of the class's images.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> import tempfile
            >>> from metacrl.data import MiniImagenet, write_fake_miniimagenet
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = write_fake_miniimagenet(tmp.name, (3, 1, 1), images_per_class=3,
            ...                                image_size=8)
            >>> ds = MiniImagenet(root, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8,
            ...                   progress=False)
            >>> ds.classes[0], ds.class_rows(0).tolist()
            ('n90000000', [0, 1, 2])
            >>> tmp.cleanup()
        """
        return self._class_rows[index]

    def episode(self, index: int) -> Episode:
        """Return which images (and labels) make task ``index``.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The :class:`~metacrl.data.episodes.Episode` (classes, image rows, labels).

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> import tempfile
            >>> from metacrl.data import MiniImagenet, write_fake_miniimagenet
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = write_fake_miniimagenet(tmp.name, (3, 1, 1), images_per_class=3,
            ...                                image_size=8)
            >>> ds = MiniImagenet(root, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8,
            ...                   progress=False)
            >>> ep = ds.episode(-1)                        # the last task
            >>> ep.y_spt.tolist(), len(ep.support), len(ep.query)
            ([0, 1], 2, 2)
            >>> tmp.cleanup()
        """
        rng = task_rng(self.seed, MODES.index(self.mode), check_index(index, self.batchsz))
        return sample_episode(rng, self._class_rows, self.n_way, self.k_shot, self.k_query)

    def load_images(self, rows: np.ndarray) -> np.ndarray:
        """Return images by row as ``uint8`` ``[len(rows), resize, resize, C]``.

        Rows come from the cache (or the array in memory) when there is one, else are decoded
        now. ``C`` is 3 (RGB) except for :class:`~metacrl.data.Omniglot` (1, grey).

        Args:
            rows: Image rows.

        Returns:
            The images.

        Example:
            >>> import tempfile
            >>> from metacrl.data import MiniImagenet, write_fake_miniimagenet
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = write_fake_miniimagenet(tmp.name, (3, 1, 1), images_per_class=3,
            ...                                image_size=8)
            >>> ds = MiniImagenet(root, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8,
            ...                   progress=False)
            >>> images = ds.load_images(ds.class_rows(1))
            >>> images.shape, images.dtype
            ((3, 8, 8, 3), dtype('uint8'))
            >>> tmp.cleanup()
        """
        if self._images is None and self.cache_path is not None:
            self._images = np.load(self.cache_path, mmap_mode="r", allow_pickle=False)
        if self._images is not None:
            return np.asarray(self._images[np.asarray(rows)])
        return self._decode_rows(np.asarray(rows))

    def task(self, index: int) -> Task:
        """Make task ``index``: images ``[N*K, C, H, W]`` and labels ``[N*K]``.

        Args:
            index: The task index.

        Returns:
            ``(x_spt, y_spt, x_qry, y_qry)``, images ``float32`` and labels ``int64``.

        Example:
            >>> import tempfile
            >>> from metacrl.data import MiniImagenet, write_fake_miniimagenet
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = write_fake_miniimagenet(tmp.name, (3, 1, 1), images_per_class=3,
            ...                                image_size=8)
            >>> ds = MiniImagenet(root, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8,
            ...                   progress=False)
            >>> x_spt, y_spt, x_qry, y_qry = ds.task(0)
            >>> tuple(x_spt.shape), x_spt.dtype, y_spt.tolist()
            ((2, 3, 8, 8), torch.float32, [0, 1])
            >>> tmp.cleanup()
        """
        ep = self.episode(index)
        x = to_tensor(self.load_images(np.concatenate([ep.support, ep.query])), self.normalize)
        n_spt = len(ep.support)
        return (
            x[:n_spt],
            torch.from_numpy(ep.y_spt),
            x[n_spt:],
            torch.from_numpy(ep.y_qry),
        )

    # ------------------------------------------------------------------ pickling for workers
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.cache_path is not None:
            state["_images"] = None  # workers re-open the memory map instead of copying it
        return state

    def __repr__(self) -> str:
        root = getattr(self, "root", None)
        where = f"root={str(root)!r}, " if root is not None else ""
        return (
            f"{type(self).__name__}({where}mode={self.mode!r}, n_way={self.n_way}, "
            f"k_shot={self.k_shot}, k_query={self.k_query}, batchsz={self.batchsz}, "
            f"resize={self.resize}, classes={self.num_classes}, images={self.num_images})"
        )


def check_disjoint_splits(splits: dict[str, list[str]], source: str) -> None:
    """Check that no class is listed in two splits (a benchmark's split lists).

    Args:
        splits: Split name -> its class names.
        source: What the lists are, for the error message.

    Raises:
        ValueError: If a class is in two splits, or listed twice in one.

    Example:
        >>> check_disjoint_splits({"train": ["a", "b"], "test": ["c"]}, "my split")
        >>> check_disjoint_splits({"train": ["a"], "test": ["a"]}, "my split")
        Traceback (most recent call last):
            ...
        ValueError: my split: class 'a' is in both 'train' and 'test'
    """
    owner: dict[str, str] = {}
    for split, names in splits.items():
        for name in names:
            if name in owner:
                where = (
                    f"is in both {owner[name]!r} and {split!r}"
                    if owner[name] != split
                    else f"is listed twice in {split!r}"
                )
                raise ValueError(f"{source}: class {name!r} {where}")
            owner[name] = split
