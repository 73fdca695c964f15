"""Tiny fake Omniglot, CIFAR-100 and tieredImageNet files in the real formats.

For tests, demos and trying a benchmark's code path before fetching the data: each writer lays
out random images exactly as the real files are (see :class:`~metacrl.data.Omniglot`,
:class:`~metacrl.data.CIFARFS` and :class:`~metacrl.data.TieredImagenet`), so the readers
cannot tell them apart from the real data except by content and counts.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from metacrl.data.cifar import CIFAR100_SUPERCLASSES
from metacrl.data.omniglot import OMNIGLOT_FOLDERS
from metacrl.data.seeding import check_seed
from metacrl.validation import check_int

__all__ = ["write_fake_cifar100", "write_fake_omniglot", "write_fake_tiered_imagenet"]


def _counts(name: str, values: Sequence[int], n: int) -> list[int]:
    if len(values) != n:
        raise ValueError(f"{name} must give {n} counts, got {values!r}")
    return [check_int(f"{name}[{k}]", v) for k, v in enumerate(values)]


def write_fake_omniglot(
    root: str | Path,
    characters: Sequence[int] = (8, 4),
    images_per_character: int = 20,
    image_size: int = 105,
    characters_per_alphabet: int = 2,
    seed: int = 0,
) -> Path:
    """Write black-and-white PNGs in torchvision's Omniglot layout.

    Creates ``root/omniglot-py/{images_background,images_evaluation}/Alphabet_<a>/
    character<cc>/<id>_<drawer>.png`` (1-bit PNGs, as the real ones of 105x105): each character
    is a random set of strokes, and each drawing of it adds a little jitter.

    Args:
        root: The folder to create (or fill); torchvision's ``root``.
        characters: Characters of ``images_background`` and ``images_evaluation`` (the real
            data: 964 and 659; default: ``(8, 4)``).
        images_per_character: Drawings per character (the real data: 20; default: ``20``).
        image_size: Side length (default: ``105``, the real one).
        characters_per_alphabet: Characters per alphabet folder (default: ``2``).
        seed: Seed of the random content (default: ``0``).

    Returns:
        ``root`` as a :class:`~pathlib.Path` (pass it to :class:`~metacrl.data.Omniglot`).

    Raises:
        ValueError: If a count is not a positive integer, or there are not two counts.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     root = write_fake_omniglot(d, (3, 1), images_per_character=2, image_size=8)
        ...     sorted(os.listdir(root / "omniglot-py" / "images_background"))
        ['Alphabet_1', 'Alphabet_2']
    """
    counts = _counts("characters", characters, 2)
    per_character = check_int("images_per_character", images_per_character)
    size = check_int("image_size", image_size)
    per_alphabet = check_int("characters_per_alphabet", characters_per_alphabet)
    rng = np.random.default_rng(check_seed(seed))
    root = Path(root)
    alphabet = 0
    character_id = 0
    for folder, n_characters in zip(OMNIGLOT_FOLDERS, counts, strict=True):
        for c in range(n_characters):
            if c % per_alphabet == 0:
                alphabet += 1
            character_id += 1
            path = root / "omniglot-py" / folder / f"Alphabet_{alphabet}"
            path = path / f"character{c % per_alphabet + 1:02d}"
            path.mkdir(parents=True, exist_ok=True)
            strokes = rng.random((size, size)) < 0.15
            for k in range(per_character):
                jitter = rng.random((size, size)) < 0.03
                ink = np.roll(strokes, tuple(rng.integers(-1, 2, size=2)), axis=(0, 1)) ^ jitter
                image = Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert("1")
                image.save(path / f"{character_id:04d}_{k + 1:02d}.png")
    return root


def write_fake_cifar100(
    root: str | Path,
    images_per_class: Sequence[int] = (5, 1),
    seed: int = 0,
    *,
    bytes_keys: bool = False,
) -> Path:
    """Write CIFAR-100's python files (``train``, ``test``, ``meta``) with random pixels.

    Creates ``root/cifar-100-python/{train,test,meta}`` as torchvision reads them: pickled
    dicts with ``data`` (``uint8 [N, 3072]``), ``fine_labels``, ``coarse_labels``,
    ``filenames`` and ``batch_label``, and ``meta`` with ``fine_label_names`` and
    ``coarse_label_names``. All 100 real classes and their real superclasses are written
    (:data:`~metacrl.data.cifar.CIFAR100_SUPERCLASSES`, names in CIFAR-100's order), so
    CIFAR-FS's and FC100's splits apply; each class has its own colour.

    Args:
        root: The folder to create (or fill); torchvision's ``root``.
        images_per_class: Images per class in ``train`` and in ``test`` (the real data: 500
            and 100; default: ``(5, 1)``).
        seed: Seed of the random content (default: ``0``).
        bytes_keys: Write the keys and strings as ``bytes`` (as Python 2's pickles read with
            ``encoding="bytes"``) instead of ``str`` (default: ``False``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a count is not a positive integer.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     sorted(os.listdir(write_fake_cifar100(d, (1, 1)) / "cifar-100-python"))
        ['meta', 'test', 'train']
    """
    counts = _counts("images_per_class", images_per_class, 2)
    rng = np.random.default_rng(check_seed(seed))
    coarse_names = list(CIFAR100_SUPERCLASSES)
    fine_names = sorted(c for classes in CIFAR100_SUPERCLASSES.values() for c in classes)
    coarse_of = {c: k for k, s in enumerate(coarse_names) for c in CIFAR100_SUPERCLASSES[s]}
    colours = rng.uniform(30, 225, size=(len(fine_names), 3))

    def key(text: str) -> str | bytes:
        return text.encode("latin-1") if bytes_keys else text

    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, per_class in zip(("train", "test"), counts, strict=True):
        fine = np.repeat(np.arange(len(fine_names)), per_class)
        rng.shuffle(fine)
        pixels = colours[fine][:, :, None, None] + rng.normal(0, 20, size=(len(fine), 3, 32, 32))
        entry = {
            key("batch_label"): key(f"{name}ing batch 1 of 1"),
            key("filenames"): [key(f"{fine_names[f]}_s_{n:06d}.png") for n, f in enumerate(fine)],
            key("fine_labels"): fine.tolist(),
            key("coarse_labels"): [coarse_of[fine_names[f]] for f in fine],
            key("data"): np.clip(pixels, 0, 255).astype(np.uint8).reshape(len(fine), -1),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {
        key("fine_label_names"): [key(n) for n in fine_names],
        key("coarse_label_names"): [key(n) for n in coarse_names],
    }
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return Path(root)


def write_fake_tiered_imagenet(
    root: str | Path,
    classes_per_split: Sequence[int] = (8, 4, 4),
    images_per_class: int = 20,
    image_size: int = 84,
    seed: int = 0,
) -> Path:
    """Write ``{split}_images.npz`` and ``{split}_labels.pkl`` as tieredImageNet is shared.

    Creates, for ``train``, ``val`` and ``test``, an ``np.savez`` archive with ``images``
    (``uint8 [N, size, size, 3]``, BGR like the real files) and a pickle with
    ``label_specific`` (the class of each image, ``0..C-1`` within the split),
    ``label_specific_str`` (their names, ``n92000000`` on) and ``label_general`` (all ``0``).
    Classes get their own colour and are shuffled among the rows.

    Args:
        root: The folder to create (or fill).
        classes_per_split: Classes of train, val and test (the real data: 351, 97, 160;
            default: ``(8, 4, 4)``).
        images_per_class: Images per class (default: ``20``; the real data has 732 to 1300).
        image_size: Side length (default: ``84``, the real one).
        seed: Seed of the random content (default: ``0``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a count is not a positive integer, or there are not three counts.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     root = write_fake_tiered_imagenet(d, (2, 1, 1), images_per_class=2, image_size=8)
        ...     sorted(os.listdir(root))[:2]
        ['test_images.npz', 'test_labels.pkl']
    """
    counts = _counts("classes_per_split", classes_per_split, 3)
    per_class = check_int("images_per_class", images_per_class)
    size = check_int("image_size", image_size)
    rng = np.random.default_rng(check_seed(seed))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    first = 0
    for split, n_classes in zip(("train", "val", "test"), counts, strict=True):
        labels = np.repeat(np.arange(n_classes), per_class)
        rng.shuffle(labels)
        colours = rng.uniform(30, 225, size=(n_classes, 3))
        pixels = colours[labels][:, None, None, :] + rng.normal(0, 20, (len(labels), size, size, 3))
        np.savez(root / f"{split}_images.npz", images=np.clip(pixels, 0, 255).astype(np.uint8))
        names = [f"n{92000000 + first + c:08d}" for c in range(n_classes)]
        with open(root / f"{split}_labels.pkl", "wb") as f:
            pickle.dump(
                {
                    "label_specific": labels,
                    "label_specific_str": names,
                    "label_general": np.zeros_like(labels),
                },
                f,
            )
        first += n_classes
    return root
