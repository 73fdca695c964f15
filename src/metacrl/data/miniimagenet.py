"""miniImageNet episodes from dragen1860/MAML-Pytorch's folder format or the common pickle files.

Two on-disk formats are read:

* the layout of dragen1860/MAML-Pytorch's loader: ``root/images/*.jpg`` and ``root/{mode}.csv`` with
  the header ``filename,label`` (a class name such as ``n01532829``). Decoding JPEGs on every
  access is far too slow, so the images of a split are decoded and resized once into a ``uint8``
  cache (``root/cache/{mode}-{resize}px.npy`` plus a JSON header, see
  :mod:`metacrl.data.image_cache`) and memory-mapped afterwards;
* the widely shared pickles ``root/mini-imagenet-cache-{train,validation,test}.pkl`` (or ``root``
  given as such a file): a dict with ``image_data`` ``uint8 [N, 84, 84, 3]`` and ``class_dict``.

The real data has 64/16/20 classes of 600 images; any counts are accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metacrl.data.class_images import MODES, ClassImageTasks
from metacrl.data.image_cache import build_image_cache
from metacrl.data.image_decode import decode_image, resize_images
from metacrl.data.miniimagenet_csv import read_split_csv
from metacrl.data.miniimagenet_pickle import pickle_path, read_split_pickle, warn_if_other_split

__all__ = ["MODES", "MiniImagenet"]


class MiniImagenet(ClassImageTasks):
    """N-way K-shot episodes of miniImageNet (map-style: ``ds[i]`` is task ``i``).

    Task ``i`` draws ``n_way`` classes in random order (label ``j`` is the ``j``-th drawn class,
    so labels are remapped to ``0..n_way-1`` differently in every task) and ``k_shot + k_query``
    distinct images of each, from a generator seeded by ``(seed, mode, i)``. Examples are ordered
    class-major: all support images of label 0, then label 1, ... (likewise the query set).

    Images are resized to ``resize x resize`` with PIL's bilinear filter (antialiased when
    shrinking, as ``torchvision.transforms.Resize`` in dragen1860/MAML-Pytorch) and returned as
    float tensors ``[3, resize, resize]``: pixels scaled to ``[0, 1]`` then standardised with the
    ImageNet mean ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)`` as in that code;
    with ``normalize=False`` they stay in ``[0, 1]``.

    Args:
        root: The data folder (``images/`` plus ``{mode}.csv``, or the pickles), or one
            ``mini-imagenet-cache-*.pkl`` file (whose split is then used whatever ``mode`` says;
            a ``UserWarning`` says so when its name is another split's).
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        batchsz: The number of tasks (``len(ds)``; default: ``10000``).
        resize: The image side length in pixels (default: ``84``).
        seed: The seed of the task stream (default: ``0``).
        cache: Folder format only: decode the split once into an on-disk cache and reuse it
            (the default, ``True``; ``False`` decodes and resizes every image on every access,
            as dragen1860/MAML-Pytorch does: correct but slow). The pickle format holds decoded
            images (resized once in memory if ``resize != 84``) and never writes a cache.
        cache_dir: Where the cache goes (default ``root/cache``; one folder per dataset).
        normalize: Standardise with the ImageNet mean and std (default: ``True``).
        progress: Show a progress bar while building the cache (or resizing a pickle; default:
            ``True``).

    Attributes:
        classes: The split's class names, sorted; :meth:`episode` refers to them by index.
        source: The CSV or pickle file the split was read from.
        cache_path: The cache's ``.npy`` file, or ``None`` (no cache: pickle, ``cache=False``).
        files: The image files (folder format), in CSV order, or ``None`` (pickle).

    Worker processes get the dataset by pickling (or forking): a cached dataset re-opens its
    memory-mapped cache there instead of copying it; a pickle-format dataset is copied.

    Raises:
        FileNotFoundError: If ``root``, the split's CSV or pickle, or a listed image is missing
            (images are checked whenever they must be decoded: building the cache, or
            ``cache=False``).
        ValueError: For a malformed CSV or pickle, an unreadable image, a class with fewer than
            ``k_shot + k_query`` images, ``n_way`` above the number of classes, or a bad
            argument.
        TypeError: If a count is not an integer.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_miniimagenet
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = write_fake_miniimagenet(tmp.name, classes_per_split=(5, 2, 2),
        ...                                images_per_class=4, image_size=16)
        >>> ds = MiniImagenet(root, "train", n_way=5, k_shot=1, k_query=2, batchsz=10,
        ...                   resize=8, progress=False)
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), y_spt.tolist(), tuple(x_qry.shape)
        ((5, 3, 8, 8), [0, 1, 2, 3, 4], (10, 3, 8, 8))
        >>> ds.num_classes, ds.num_images
        (5, 20)
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
        self.source = self.root
        self.files: list[Path] | None = None

        if self.root.is_file():
            if self.root.suffix != ".pkl":
                raise ValueError(
                    f"root must be a data folder or a mini-imagenet-cache-*.pkl file, got the "
                    f"file {self.root}"
                )
            warn_if_other_split(self.root, self.mode)
            self._init_pickle(self.root, progress)
        elif not self.root.is_dir():
            raise FileNotFoundError(f"miniImageNet root folder not found: {self.root}")
        else:
            csv_path, pkl_path = self.root / f"{self.mode}.csv", pickle_path(self.root, self.mode)
            if csv_path.is_file():
                self._init_csv(csv_path, cache, cache_dir, progress)
            elif pkl_path.is_file():
                self._init_pickle(pkl_path, progress)
            else:
                raise FileNotFoundError(
                    f"no {self.mode!r} split in {self.root}: looked for {csv_path} (seed format, "
                    f"with images/) and {pkl_path} (pickle format)"
                )

    # ------------------------------------------------------------------ construction
    def _init_csv(
        self, csv_path: Path, cache: bool, cache_dir: str | Path | None, progress: bool
    ) -> None:
        self.source = csv_path
        split = read_split_csv(csv_path)
        self._set_classes(split.labels, where=str(csv_path))
        images_dir = self.root / "images"
        files = [images_dir / name for name in split.filenames]
        self.files = files
        if cache:

            def build(directory: Path, name: str) -> np.ndarray:
                self._check_files(split.lines, csv_path, images_dir)
                return build_image_cache(
                    directory,
                    name,
                    files,
                    split.filenames,
                    self.resize,
                    progress=progress,
                    desc=f"caching miniImageNet {self.mode} at {self.resize}px",
                )

            name = f"{self.mode}-{self.resize}px"
            self._use_cache(self.root, cache_dir, name, split.filenames, build)
        else:
            self._check_files(split.lines, csv_path, images_dir)

    def _check_files(self, lines: list[int], csv_path: Path, images_dir: Path) -> None:
        assert self.files is not None
        if not images_dir.is_dir():
            raise FileNotFoundError(
                f"images folder not found: {images_dir} (the images listed in {csv_path})"
            )
        for path, line in zip(self.files, lines, strict=True):
            if not path.is_file():
                raise FileNotFoundError(
                    f"image file not found: {path} (listed in {csv_path}, line {line})"
                )

    def _init_pickle(self, path: Path, progress: bool) -> None:
        self.source = path
        split = read_split_pickle(path)
        images = split.images
        if images.shape[1:3] != (self.resize, self.resize):
            images = resize_images(
                images, self.resize, progress, desc=f"resizing miniImageNet {self.mode}"
            )
        self._set_images(images)
        self._set_class_rows(split.class_rows, where=str(path))

    def _set_classes(self, labels: list[str], where: str) -> None:
        rows: dict[str, list[int]] = {}
        for row, label in enumerate(labels):
            rows.setdefault(label, []).append(row)
        self._set_class_rows(
            {name: np.asarray(r, dtype=np.int64) for name, r in rows.items()}, where
        )

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        assert self.files is not None
        return np.stack([decode_image(self.files[int(r)], self.resize) for r in rows])
