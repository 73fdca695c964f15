"""A fake miniImageNet folder in dragen1860/MAML-Pytorch's layout, for tests, demos, benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from metacrl.data.seeding import check_seed
from metacrl.validation import check_int

__all__ = ["write_fake_miniimagenet"]

_SPLITS = ("train", "val", "test")


def write_fake_miniimagenet(
    root: str | Path,
    classes_per_split: Sequence[int] = (64, 16, 20),
    images_per_class: int = 600,
    image_size: int | tuple[int, int] = 84,
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write random JPEGs and split CSVs laid out like the real miniImageNet folder.

    Creates ``root/images/<class><8 digits>.jpg`` and ``root/{train,val,test}.csv`` (header
    ``filename,label``). Each class has its own colour; each image is that colour plus a random
    smooth pattern and noise, so the JPEGs cost about as much to decode as photos of their size.

    Args:
        root: The folder to create (or fill).
        classes_per_split: Classes of train, val and test (the real data: 64, 16, 20; default:
            ``(64, 16, 20)``).
        images_per_class: Images per class (the real data: 600; default: ``600``).
        image_size: Side length, or ``(width, height)``; real ImageNet photos are about 500x375
            (default: ``84``).
        seed: Seed of the random content (default: ``0``).
        quality: JPEG quality (default: ``90``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a count or size is not a positive integer, or there are not three splits.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     root = write_fake_miniimagenet(d, (2, 1, 1), images_per_class=3, image_size=8)
        ...     sorted(os.listdir(root)), len(os.listdir(root / "images"))
        (['images', 'test.csv', 'train.csv', 'val.csv'], 12)
    """
    if len(classes_per_split) != 3:
        raise ValueError(
            f"classes_per_split must give (train, val, test) counts, got {classes_per_split!r}"
        )
    counts = [check_int(f"classes_per_split[{k}]", c) for k, c in enumerate(classes_per_split)]
    per_class = check_int("images_per_class", images_per_class)
    if isinstance(image_size, tuple):
        width, height = (check_int("image_size", s) for s in image_size)
    else:
        width = height = check_int("image_size", image_size)
    rng = np.random.default_rng(check_seed(seed))
    root = Path(root)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    first = 0
    for split, n_classes in zip(_SPLITS, counts, strict=True):
        rows = ["filename,label"]
        for c in range(first, first + n_classes):
            wnid = f"n{90000000 + c:08d}"
            colour = rng.uniform(40, 215, size=3).astype(np.float32)
            for k in range(per_class):
                fx, fy = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi / max(width, height)
                wave = 40 * np.sin(fx * xx + rng.uniform(0, 6.3)) * np.cos(fy * yy)
                pixels = colour + wave[..., None] + rng.normal(0, 12, size=(height, width, 3))
                name = f"{wnid}{k:08d}.jpg"
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
                    images_dir / name, quality=quality
                )
                rows.append(f"{name},{wnid}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        first += n_classes
    return root
