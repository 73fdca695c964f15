"""Omniglot episodes in MAML's protocol, read from torchvision's folder layout.

The data is the layout ``torchvision.datasets.Omniglot`` downloads and unpacks::

    ROOT/omniglot-py/images_background/<alphabet>/<character>/*.png   (964 characters)
    ROOT/omniglot-py/images_evaluation/<alphabet>/<character>/*.png   (659 characters)

``root`` is ``ROOT`` (torchvision's ``root``) or the ``omniglot-py`` folder itself. Nothing is
downloaded: fetch it once with ``torchvision.datasets.Omniglot(ROOT, background=True,
download=True)`` and ``background=False``, or unzip ``images_background.zip`` and
``images_evaluation.zip`` from github.com/brendenlake/omniglot into ``ROOT/omniglot-py``.

The protocol is MAML's (Finn et al., 2017, after Santoro et al., 2016 and Vinyals et al.,
2016), as in higher's MAML example: the 1623 characters of both folders are pooled, 1200 are
used for meta-training and the other 423 for meta-test; each character has 20 images (drawn by
20 people), resized to 28x28 grey; and rotating a character by 90, 180 or 270 degrees makes a
new class. The split is made deterministic here (MAML shuffled the characters with Python's
``random.seed(1)`` in file-system order, which no other machine reproduces): the characters
are sorted by path (``images_background/...`` before ``images_evaluation/...``); the first 1100
are ``"train"``, the next 100 ``"val"`` (the last 100 of the 1200, MAML's own validation count)
and the remaining 423 ``"test"``. The four rotations of a character stay in its split, so no
character is in two splits. That gives 4400 / 400 / 1692 classes of 20 images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metacrl.data.class_images import ClassImageTasks
from metacrl.data.image_cache import build_image_cache
from metacrl.data.image_decode import decode_image
from metacrl.validation import check_int

__all__ = ["OMNIGLOT_FOLDERS", "OMNIGLOT_SPLIT", "Omniglot", "omniglot_characters"]

OMNIGLOT_FOLDERS = ("images_background", "images_evaluation")
"""The two folders of torchvision's ``omniglot-py``, pooled in this order."""

OMNIGLOT_SPLIT = (1100, 100)
"""Characters of ``"train"`` and ``"val"`` (in sorted order); ``"test"`` has the rest (423)."""

ROTATIONS = (0, 90, 180, 270)
"""The rotations (degrees, counter-clockwise) that make each character four classes."""


def _omniglot_folder(root: Path) -> Path:
    """``root/omniglot-py`` if it exists, else ``root`` (given as the ``omniglot-py`` folder)."""
    inner = root / "omniglot-py"
    return inner if inner.is_dir() else root


def omniglot_characters(root: str | Path) -> dict[str, list[Path]]:
    """List the characters of torchvision's Omniglot layout and their PNG files.

    Args:
        root: torchvision's ``root`` (holding ``omniglot-py``) or the ``omniglot-py`` folder.

    Returns:
        ``"<folder>/<alphabet>/<character>"`` -> its ``.png`` files, both sorted, the
        ``images_background`` characters first.

    Raises:
        FileNotFoundError: If ``root``, ``images_background`` or ``images_evaluation`` is
            missing.
        ValueError: If a folder holds no characters.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_omniglot
        >>> with tempfile.TemporaryDirectory() as d:
        ...     chars = omniglot_characters(write_fake_omniglot(d, (2, 1), images_per_character=3))
        >>> list(chars)[0], len(chars), len(chars["images_evaluation/Alphabet_2/character01"])
        ('images_background/Alphabet_1/character01', 3, 3)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Omniglot root folder not found: {root}")
    base = _omniglot_folder(root)
    characters: dict[str, list[Path]] = {}
    for folder in OMNIGLOT_FOLDERS:
        path = base / folder
        if not path.is_dir():
            raise FileNotFoundError(
                f"Omniglot folder not found: {path} (torchvision's layout: "
                f"ROOT/omniglot-py/{{{','.join(OMNIGLOT_FOLDERS)}}}/<alphabet>/<character>/*.png)"
            )
        found = 0
        for alphabet in sorted(p for p in path.iterdir() if p.is_dir()):
            for character in sorted(p for p in alphabet.iterdir() if p.is_dir()):
                name = f"{folder}/{alphabet.name}/{character.name}"
                characters[name] = sorted(character.glob("*.png"))
                found += 1
        if not found:
            raise ValueError(f"{path} holds no <alphabet>/<character>/ folders")
    return characters


class Omniglot(ClassImageTasks):
    """N-way K-shot episodes of Omniglot, MAML's protocol (map-style: ``ds[i]`` is task ``i``).

    The splits (see :mod:`metacrl.data.omniglot`): the 1623 characters of
    ``images_background`` and ``images_evaluation``, sorted by path; the first 1100 are
    ``"train"``, the next 100 ``"val"`` and the other 423 ``"test"`` (``split_characters``).
    With ``rotations`` (the default), each character rotated by 0, 90, 180 and 270 degrees is
    four classes (named ``<character>/rot090`` and so on) in every split: 4400 / 400 / 1692
    classes of 20 images. Episodes are drawn as in :class:`~metacrl.data.MiniImagenet` (same
    seeding, labels and order).

    Images are returned as ``float32 [1, resize, resize]`` in ``[0, 1]`` (white paper 1,
    black ink 0, as torchvision reads the PNGs; not standardised), resized once with PIL's
    bilinear filter (antialiased) and cached as ``uint8`` in ``cache_dir``
    (``omniglot-{resize}px.npy``, one cache for the three splits).

    Args:
        root: torchvision's ``root`` (holding ``omniglot-py/``) or the ``omniglot-py`` folder.
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``; a character has 20 images).
        batchsz: The number of tasks (default: ``10000``).
        resize: The image side length (default: ``28``, MAML's).
        seed: The seed of the task stream (default: ``0``).
        cache: Decode every image once into an on-disk cache (default: ``True``); ``False``
            decodes on every access.
        cache_dir: Where the cache goes (default: ``root/cache``).
        rotations: Make the 90, 180 and 270 degree rotations of each character new classes
            (default: ``True``).
        split_characters: The number of ``"train"`` and ``"val"`` characters (default:
            ``(1100, 100)``); ``"test"`` gets the rest.
        progress: Show a progress bar while building the cache (default: ``True``).

    Attributes:
        classes: The split's class names, sorted.
        characters: The split's characters (folder paths relative to ``omniglot-py``).
        cache_path: The cache's ``.npy`` file, or ``None`` (``cache=False``).
        files: Every image file of the three splits, in cache order.

    Raises:
        FileNotFoundError: If ``root`` or one of the two folders is missing.
        ValueError: If there are not more characters than ``sum(split_characters)``, a class
            has fewer than ``k_shot + k_query`` images, an image cannot be decoded, ``n_way``
            is above the number of classes, or an argument is out of range.
        TypeError: If a count is not an integer.

    Example:
        >>> import tempfile
        >>> from metacrl.data import write_fake_omniglot
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = write_fake_omniglot(tmp.name, (4, 2), images_per_character=4, image_size=16)
        >>> ds = Omniglot(root, "train", n_way=5, k_shot=1, k_query=2, batchsz=10, resize=8,
        ...               split_characters=(3, 1), progress=False)
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), y_spt.tolist(), tuple(x_qry.shape)
        ((5, 1, 8, 8), [0, 1, 2, 3, 4], (10, 1, 8, 8))
        >>> ds.num_classes, len(ds.characters), ds.classes[1]
        (12, 3, 'images_background/Alphabet_1/character01/rot090')
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
        resize: int = 28,
        seed: int = 0,
        cache: bool = True,
        *,
        cache_dir: str | Path | None = None,
        rotations: bool = True,
        split_characters: Sequence[int] = OMNIGLOT_SPLIT,
        progress: bool = True,
    ) -> None:
        super().__init__(mode, n_way, k_shot, k_query, batchsz, resize, seed, normalize=False)
        self.root = Path(root)
        self.rotations = bool(rotations)
        n_train, n_val = self._check_split(split_characters)
        characters = omniglot_characters(self.root)
        names = list(characters)
        if len(names) <= n_train + n_val:
            raise ValueError(
                f"found {len(names)} Omniglot characters in {self.root}, but the split needs "
                f"more than {n_train} train + {n_val} val (the full data has 1623: are both "
                f"{' and '.join(OMNIGLOT_FOLDERS)} complete?)"
            )
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
        lo, hi = bounds.get(self.mode, (n_train + n_val, len(names)))
        self.characters = names[lo:hi]

        self.files = [f for name in names for f in characters[name]]
        filenames = [f"{name}/{f.name}" for name in names for f in characters[name]]
        first = np.cumsum([0] + [len(characters[name]) for name in names])
        turns = len(ROTATIONS) if self.rotations else 1
        class_rows: dict[str, np.ndarray] = {}
        for k in range(lo, hi):
            stored = np.arange(first[k], first[k + 1], dtype=np.int64)
            for turn in range(turns):
                label = f"{names[k]}/rot{ROTATIONS[turn]:03d}" if self.rotations else names[k]
                class_rows[label] = stored * turns + turn
        self._turns = turns

        if cache:

            def build(directory: Path, name: str) -> np.ndarray:
                return build_image_cache(
                    directory,
                    name,
                    self.files,
                    filenames,
                    self.resize,
                    progress=progress,
                    desc=f"caching Omniglot at {self.resize}px",
                )

            self._use_cache(self.root, cache_dir, f"omniglot-{self.resize}px", filenames, build)
        self._set_class_rows(class_rows, where=str(_omniglot_folder(self.root)))

    @staticmethod
    def _check_split(split_characters: Sequence[int]) -> tuple[int, int]:
        if len(split_characters) != 2:
            raise ValueError(
                f"split_characters must give (train, val) counts, got {split_characters!r}"
            )
        return (
            check_int("split_characters[0]", split_characters[0]),
            check_int("split_characters[1]", split_characters[1]),
        )

    def _decode_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([decode_image(self.files[int(r)], self.resize) for r in rows])

    def load_images(self, rows: np.ndarray) -> np.ndarray:
        """Return images by row as grey ``uint8 [len(rows), resize, resize, 1]``, rotated.

        Args:
            rows: Image rows (from :meth:`class_rows`); a row names a stored image and a
                rotation.

        Returns:
            The images, each turned by its class's rotation.

        Example:
            >>> import tempfile
            >>> from metacrl.data import write_fake_omniglot
            >>> tmp = tempfile.TemporaryDirectory()
            >>> root = write_fake_omniglot(tmp.name, (3, 1), images_per_character=2,
            ...                            image_size=8)
            >>> ds = Omniglot(root, n_way=2, k_shot=1, k_query=1, batchsz=2, resize=8,
            ...               split_characters=(2, 1), progress=False)
            >>> up, left = ds.load_images(ds.class_rows(0)), ds.load_images(ds.class_rows(1))
            >>> up.shape, bool((np.rot90(up, 1, axes=(1, 2)) == left).all())
            ((2, 8, 8, 1), True)
            >>> tmp.cleanup()
        """
        rows = np.asarray(rows, dtype=np.int64)
        stored = super().load_images(rows // self._turns)[..., :1]
        out = np.empty_like(stored)
        for turn in range(self._turns):
            which = rows % self._turns == turn
            out[which] = np.rot90(stored[which], turn, axes=(1, 2))
        return out
