"""CIFAR-FS and FC100 episodes, read from CIFAR-100's python files (torchvision's layout).

Both benchmarks split the 100 classes of CIFAR-100 (600 images of 32x32 each: its ``train`` and
``test`` files pooled) into meta-training, validation and test classes:

* **CIFAR-FS** (Bertinetto et al., "Meta-learning with differentiable closed-form solvers",
  ICLR 2019): 64 / 16 / 20 classes chosen at random. The lists are
  :data:`CIFAR_FS_SPLITS`, from the paper's split files
  (``github.com/bertinetto/r2d2``, ``data/cifar-fs/splits/bertinetto/{train,val,test}.txt``),
  as reproduced in torchmeta's ``datasets/assets/cifar100/cifar-fs/*.json``.
* **FC100** (Oreshkin et al., "TADAM: Task dependent adaptive metric for improved few-shot
  learning", NeurIPS 2018): split by the 20 superclasses, 12 / 4 / 4 (60 / 20 / 20 classes), so
  that test classes are far from training ones. The lists are :data:`FC100_SPLITS`: superclass
  indices 1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19 for training, 8, 11, 13, 16 for validation
  and 0, 7, 12, 14 for test (as in TADAM's code and torchmeta's ``cifar100/fc100/*.json``).

The files are CIFAR-100's "python version", as ``torchvision.datasets.CIFAR100`` downloads
them: ``ROOT/cifar-100-python/{train,test,meta}``. Each data file is a pickled dict with
``data`` (``uint8 [N, 3072]``, the red, green then blue planes of each 32x32 image),
``fine_labels``, ``coarse_labels`` and ``filenames``; ``meta`` holds ``fine_label_names`` and
``coarse_label_names``. They are read with the restricted unpickler of
:mod:`metacrl.data.miniimagenet_pickle` (nothing but arrays, lists, dicts and strings), whose
keys may be strings or bytes (Python 2 pickles read either way).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metacrl.data.class_images import ClassImageTasks
from metacrl.data.image_cache import build_array_cache
from metacrl.data.image_decode import resize_images
from metacrl.data.miniimagenet_pickle import load_format_pickle

__all__ = [
    "CIFAR100_SUPERCLASSES",
    "CIFARFS",
    "CIFAR_FS_SPLITS",
    "FC100",
    "FC100_SPLITS",
    "Cifar100",
    "read_cifar100",
]

CIFAR100_SUPERCLASSES: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
        "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
        "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
        "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
        "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
        "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
        "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
        "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
        "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
        "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
        "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
        "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
        "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
        "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
        "people": ("baby", "boy", "girl", "man", "woman"),
        "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
        "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
        "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
        "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
        "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
    }
)
"""CIFAR-100's 20 superclasses (in label order, as ``coarse_label_names``) and their classes
(Krizhevsky, 2009; the table of www.cs.toronto.edu/~kriz/cifar.html). The readers take the
labels from the files; this table is for checks and for
:func:`~metacrl.data.write_fake_cifar100`."""

# fmt: off
CIFAR_FS_SPLITS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "train": (
            "dolphin", "seal", "aquarium_fish", "ray", "trout", "orchid", "sunflower", "tulip",
            "bottle", "bowl", "can", "cup", "plate", "apple", "mushroom", "orange", "pear",
            "clock", "keyboard", "chair", "couch", "bee", "caterpillar", "cockroach", "bear",
            "lion", "tiger", "wolf", "bridge", "castle", "house", "road", "skyscraper", "cloud",
            "forest", "mountain", "elephant", "kangaroo", "porcupine", "possum", "raccoon",
            "skunk", "lobster", "spider", "boy", "girl", "dinosaur", "lizard", "snake", "turtle",
            "hamster", "mouse", "rabbit", "shrew", "squirrel", "oak_tree", "palm_tree",
            "pine_tree", "willow_tree", "bus", "train", "lawn_mower", "streetcar", "tank",
        ),
        "val": (
            "beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly",
            "sea", "camel", "cattle", "crab", "crocodile", "maple_tree", "motorcycle", "tractor",
        ),
        "test": (
            "whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe",
            "leopard", "plain", "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman",
            "bicycle", "pickup_truck", "rocket",
        ),
    }
)
# fmt: on
"""CIFAR-FS's classes of each split (64 / 16 / 20), CIFAR-100 fine label names: Bertinetto et
al. (ICLR 2019), split files ``data/cifar-fs/splits/bertinetto/*.txt`` of github.com/bertinetto/r2d2
(transcribed from torchmeta's ``datasets/assets/cifar100/cifar-fs/*.json``)."""

# fmt: off
FC100_SPLITS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "train": (
            "fish", "flowers", "food_containers", "fruit_and_vegetables",
            "household_electrical_devices", "household_furniture",
            "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "reptiles", "trees",
            "vehicles_1", "vehicles_2",
        ),
        "val": (
            "large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates",
            "small_mammals",
        ),
        "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
    }
)
# fmt: on
"""FC100's superclasses of each split (12 / 4 / 4; indices 1-6, 9, 10, 15, 17-19 / 8, 11, 13, 16
/ 0, 7, 12, 14): Oreshkin et al. (NeurIPS 2018), as in torchmeta's
``datasets/assets/cifar100/fc100/*.json``."""

_FILES = ("train", "test")


@dataclass(frozen=True)
class Cifar100:
    """CIFAR-100's two python files, pooled: ``train`` (50000 images) then ``test`` (10000).

    Attributes:
        folder: The ``cifar-100-python`` folder.
        images: ``uint8 [N, 32, 32, 3]`` RGB images.
        fine: The fine (class) label of each image.
        coarse: The coarse (superclass) label of each image.
        fine_names: The class names, by fine label.
        coarse_names: The superclass names, by coarse label.
        keys: ``"train/<filename>"`` or ``"test/<filename>"`` for each image (the cache's keys).

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_cifar100
        >>> with tempfile.TemporaryDirectory() as d:
        ...     data = read_cifar100(write_fake_cifar100(d, images_per_class=(2, 1)))
        >>> data.images.shape, data.fine_names[0], data.coarse_names[data.coarse[0]]
        ((300, 32, 32, 3), 'apple', 'fruit_and_vegetables')
    """

    folder: Path
    images: np.ndarray
    fine: np.ndarray
    coarse: np.ndarray
    fine_names: list[str]
    coarse_names: list[str]
    keys: list[str]


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _load_dict(path: Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """Unpickle a dict (keys read as ``str`` whether stored as strings or bytes); check keys."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-100 file not found: {path} ({what})")
    data = load_format_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CIFAR-100 python file: it holds no dict")
    data = {_text(k): v for k, v in data.items()}
    missing = [k for k in keys if k not in data]
    if missing:
        hint = " (CIFAR-10's files have 'labels': give CIFAR-100's)" if "labels" in data else ""
        raise ValueError(
            f"{path} is not a CIFAR-100 python file: it lacks {', '.join(map(repr, missing))}{hint}"
        )
    return data


def read_cifar100(root: str | Path) -> Cifar100:
    """Read CIFAR-100's python files (``train``, ``test``, ``meta``) as torchvision stores them.

    Args:
        root: torchvision's ``root`` (holding ``cifar-100-python/``) or that folder itself.

    Returns:
        The pooled :class:`Cifar100` images and labels.

    Raises:
        FileNotFoundError: If the folder or a file is missing.
        ValueError: If a file is not one of CIFAR-100's (wrong keys, shapes or labels), or
            cannot be unpickled (the file is named).

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_cifar100
        >>> with tempfile.TemporaryDirectory() as d:
        ...     data = read_cifar100(write_fake_cifar100(d, images_per_class=(1, 1)))
        >>> len(data.fine_names), len(data.coarse_names), data.keys[0][:6]
        (100, 20, 'train/')
    """
    root = Path(root)
    folder = root / "cifar-100-python"
    if not folder.is_dir():
        folder = root
    if not (folder / "meta").is_file() and not (folder / "train").is_file():
        raise FileNotFoundError(
            f"CIFAR-100 folder not found: {root} holds neither cifar-100-python/ nor its files "
            "(torchvision's layout: ROOT/cifar-100-python/{train,test,meta})"
        )
    meta = _load_dict(folder / "meta", ("fine_label_names", "coarse_label_names"), "the names")
    fine_names = [_text(n) for n in meta["fine_label_names"]]
    coarse_names = [_text(n) for n in meta["coarse_label_names"]]
    parts: list[np.ndarray] = []
    fine: list[np.ndarray] = []
    coarse: list[np.ndarray] = []
    keys: list[str] = []
    for name in _FILES:
        path = folder / name
        data = _load_dict(path, ("data", "fine_labels", "coarse_labels"), f"the {name} images")
        pixels = np.asarray(data["data"])
        if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
            raise ValueError(
                f"{path}: 'data' must be uint8 [N, 3072], got {pixels.dtype} {pixels.shape}"
            )
        n = len(pixels)
        labels = [
            np.asarray(data[k], dtype=np.int64).reshape(-1)
            for k in ("fine_labels", "coarse_labels")
        ]
        for key, values, names in zip(
            ("fine_labels", "coarse_labels"), labels, (fine_names, coarse_names), strict=True
        ):
            if len(values) != n:
                raise ValueError(f"{path}: {len(values)} {key} for {n} images")
            if n and (values.min() < 0 or values.max() >= len(names)):
                raise ValueError(f"{path}: {key} outside 0..{len(names) - 1} (see meta)")
        filenames = data.get("filenames")
        names_of = (
            [_text(f) for f in filenames] if filenames is not None else list(map(str, range(n)))
        )
        if len(names_of) != n:
            raise ValueError(f"{path}: {len(names_of)} filenames for {n} images")
        parts.append(pixels.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1))
        fine.append(labels[0])
        coarse.append(labels[1])
        keys.extend(f"{name}/{f}" for f in names_of)
    return Cifar100(
        folder=folder,
        images=np.concatenate(parts),
        fine=np.concatenate(fine),
        coarse=np.concatenate(coarse),
        fine_names=fine_names,
        coarse_names=coarse_names,
        keys=keys,
    )


class _Cifar100Tasks(ClassImageTasks):
    """Episodes over some CIFAR-100 classes; subclasses choose the split's classes."""

    benchmark = "CIFAR-100"

    def __init__(
        self,
        root: str | Path,
        mode: str = "train",
        n_way: int = 5,
        k_shot: int = 1,
        k_query: int = 15,
        batchsz: int = 10000,
        resize: int = 32,
        seed: int = 0,
        cache: bool = True,
        *,
        cache_dir: str | Path | None = None,
        normalize: bool = True,
        progress: bool = True,
    ) -> None:
        super().__init__(mode, n_way, k_shot, k_query, batchsz, resize, seed, normalize)
        self.root = Path(root)
        data = read_cifar100(self.root)
        self.source = data.folder
        wanted = self._split_classes(data)
        class_rows = {
            data.fine_names[label]: np.flatnonzero(data.fine == label) for label in wanted
        }
        if cache:

            def build(directory: Path, name: str) -> np.ndarray:
                chunks = (data.images[i : i + 1024] for i in range(0, len(data.images), 1024))
                return build_array_cache(
                    directory,
                    name,
                    chunks,
                    data.keys,
                    self.resize,
                    progress=progress,
                    desc=f"caching CIFAR-100 at {self.resize}px",
                )

            self._use_cache(self.root, cache_dir, f"cifar100-{self.resize}px", data.keys, build)
        else:
            desc = f"resizing CIFAR-100 to {self.resize}px"
            self._set_images(resize_images(data.images, self.resize, progress, desc))
        self._set_class_rows(class_rows, where=f"{self.benchmark} in {data.folder}")

    def _split_classes(self, data: Cifar100) -> list[int]:
        raise NotImplementedError


def _labels_of(names: tuple[str, ...], known: list[str], what: str, where: Path) -> list[int]:
    index = {name: k for k, name in enumerate(known)}
    missing = [name for name in names if name not in index]
    if missing:
        raise ValueError(
            f"{where / 'meta'} does not name the {what} {', '.join(map(repr, missing))}: "
            "is it CIFAR-100's meta file?"
        )
    return [index[name] for name in names]


class CIFARFS(_Cifar100Tasks):
    """N-way K-shot episodes of CIFAR-FS (Bertinetto et al., 2019): 64 / 16 / 20 classes.

    The classes of each split are :data:`CIFAR_FS_SPLITS` (fine labels of CIFAR-100), with all
    600 images of each (CIFAR-100's ``train`` and ``test`` files pooled). Episodes are drawn as
    in :class:`~metacrl.data.MiniImagenet` (same seeding, labels and order). Images are
    ``float32 [3, resize, resize]``: pixels in ``[0, 1]`` standardised with the ImageNet mean
    and std, like MiniImagenet's (``normalize=False``: left in ``[0, 1]``). The images of all
    100 classes are cached once, at ``resize``, in ``cache_dir`` (``cifar100-{resize}px.npy``,
    shared with :class:`FC100`).

    Args:
        root: torchvision's ``root`` (holding ``cifar-100-python/``) or that folder.
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        batchsz: The number of tasks (default: ``10000``).
        resize: The image side length (default: ``32``, CIFAR's own).
        seed: The seed of the task stream (default: ``0``).
        cache: Keep the images in an on-disk ``uint8`` cache (default: ``True``); ``False``
            holds them in memory (resized there if ``resize != 32``).
        cache_dir: Where the cache goes (default: ``root/cache``).
        normalize: Standardise with the ImageNet mean and std (default: ``True``).
        progress: Show a progress bar while building the cache (default: ``True``).

    Attributes:
        classes: The split's class names, sorted.
        source: The ``cifar-100-python`` folder.
        cache_path: The cache's ``.npy`` file, or ``None``.

    Raises:
        FileNotFoundError: If the folder or one of its files is missing.
        ValueError: If a file is not CIFAR-100's, a class has fewer than ``k_shot + k_query``
            images, ``n_way`` is above the number of classes, or an argument is out of range.
        TypeError: If a count is not an integer.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_cifar100
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = write_fake_cifar100(tmp.name, images_per_class=(3, 1))
        >>> ds = CIFARFS(root, "val", n_way=5, k_shot=1, k_query=2, batchsz=10, progress=False)
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), tuple(x_qry.shape), ds.num_classes, ds.num_images
        ((5, 3, 32, 32), (10, 3, 32, 32), 16, 64)
        >>> tmp.cleanup()
    """

    benchmark = "CIFAR-FS"

    def _split_classes(self, data: Cifar100) -> list[int]:
        names = CIFAR_FS_SPLITS[self.mode]
        return _labels_of(names, data.fine_names, "CIFAR-FS classes", data.folder)


class FC100(_Cifar100Tasks):
    """N-way K-shot episodes of FC100 (Oreshkin et al., 2018): 12 / 4 / 4 superclasses.

    A split holds every class of its superclasses (:data:`FC100_SPLITS`): 60 / 20 / 20 classes
    of 600 images, read from the files' coarse labels. Everything else is as in
    :class:`CIFARFS` (the same arguments, cache and normalisation).

    Args:
        root: torchvision's ``root`` (holding ``cifar-100-python/``) or that folder.
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        batchsz: The number of tasks (default: ``10000``).
        resize: The image side length (default: ``32``).
        seed: The seed of the task stream (default: ``0``).
        cache: Keep the images in an on-disk ``uint8`` cache (default: ``True``).
        cache_dir: Where the cache goes (default: ``root/cache``).
        normalize: Standardise with the ImageNet mean and std (default: ``True``).
        progress: Show a progress bar while building the cache (default: ``True``).

    Attributes:
        classes: The split's class names, sorted.
        source: The ``cifar-100-python`` folder.
        cache_path: The cache's ``.npy`` file, or ``None``.

    Raises:
        FileNotFoundError: If the folder or one of its files is missing.
        ValueError: If a file is not CIFAR-100's, a class has fewer than ``k_shot + k_query``
            images, ``n_way`` is above the number of classes, or an argument is out of range.
        TypeError: If a count is not an integer.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_cifar100
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = write_fake_cifar100(tmp.name, images_per_class=(3, 1))
        >>> ds = FC100(root, "test", n_way=5, k_shot=1, k_query=2, batchsz=10, progress=False)
        >>> tuple(ds[0][0].shape), ds.num_classes, ds.classes[:3]
        ((5, 3, 32, 32), 20, ['baby', 'beaver', 'bee'])
        >>> tmp.cleanup()
    """

    benchmark = "FC100"

    def _split_classes(self, data: Cifar100) -> list[int]:
        names = FC100_SPLITS[self.mode]
        supers = set(_labels_of(names, data.coarse_names, "superclasses", data.folder))
        return [int(f) for f in np.unique(data.fine[np.isin(data.coarse, sorted(supers))])]
