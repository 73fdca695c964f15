"""ConfoundedClipart: real drawings (the Open Clip Art Library) with switching task confounders.

The second confounded benchmark beside :class:`~metacrl.data.ConfoundedShapes`, with the same
options, nuisances and confounder schedule, but real images: drawings made by people, in
about 70 categories (animals/birds, food/fruit, recreation/music, ...). The drawing's category
is the causal factor. Each drawing is reduced to grey ink on white paper, then painted with
three nuisances: an ink colour, a paper colour and a stripe texture. Only the drawing decides
the label; in training tasks one nuisance is tied to it, redrawn per meta-batch.

The drawings come from Debian's ``openclipart-png`` package (public domain; nothing is
downloaded at run time): ``apt-get install openclipart-png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from metacrl.data.clipart_files import DEFAULT_ROOT, decode_drawing, scan_clipart
from metacrl.data.confounded import ConfoundedEpisode, ConfoundedTasks
from metacrl.data.episodes import sample_episode
from metacrl.data.image_cache import open_image_cache
from metacrl.data.painting import paint_masks
from metacrl.data.seeding import check_seed
from metacrl.data.shapes_nuisance import (
    BACKGROUND_PALETTE,
    FOREGROUND_PALETTE,
    NUISANCES,
    TEXTURE_ANGLES,
    nuisance_index,
)
from metacrl.typing import Split
from metacrl.validation import check_index, check_int

__all__ = ["SPLIT_FRACTIONS", "ConfoundedClipart", "clipart_splits", "default_cache_dir"]

SPLIT_FRACTIONS = {"val": 0.2, "test": 0.2}
"""The fractions of the classes held out for validation and test; the rest trains."""


def clipart_splits(names: list[str], class_seed: int = 0) -> dict[Split, list[str]]:
    """Split class names into train, val and test classes, by a seeded shuffle.

    Args:
        names: The class names (their order does not matter: they are sorted first).
        class_seed: The seed of the shuffle (default: ``0``).

    Returns:
        Disjoint lists of names per split, each sorted; val and test get
        :data:`SPLIT_FRACTIONS` of the classes (rounded, at least one each), train the rest.

    Raises:
        ValueError: If there are fewer than three classes.

    Example:
        >>> splits = clipart_splits([f"c{i}" for i in range(10)])
        >>> [len(splits[s]) for s in ("train", "val", "test")]
        [6, 2, 2]
    """
    if len(names) < 3:
        raise ValueError(f"a train/val/test split needs at least 3 classes, got {len(names)}")
    order = np.random.default_rng(check_seed(class_seed)).permutation(sorted(names)).tolist()
    n_val, n_test = (max(1, round(SPLIT_FRACTIONS[s] * len(order))) for s in ("val", "test"))
    return {
        "val": sorted(order[:n_val]),
        "test": sorted(order[n_val : n_val + n_test]),
        "train": sorted(order[n_val + n_test :]),
    }


def default_cache_dir() -> Path:
    """Where the decoded drawings are cached: ``$XDG_CACHE_HOME/metacrl`` (``~/.cache/metacrl``).

    Returns:
        The folder (not created here).

    Example:
        >>> default_cache_dir().name
        'metacrl'
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metacrl"


class ConfoundedClipart(ConfoundedTasks):
    """Few-shot classification of real drawings whose training tasks carry switching confounders.

    Classes are the folders of the drawings' root with at least ``min_images`` drawings (see
    :func:`~metacrl.data.clipart_files.scan_clipart`), split into train/val/test classes by
    :func:`clipart_splits` (Debian's package: 73 classes, 43/15/15). Every drawing is decoded once
    into a ``uint8`` cache of grey ink at ``image_size`` (in ``cache_dir``, shared by the splits,
    with a progress bar). An image paints the drawing's ink (``1 - grey``) in an ink colour over
    a paper colour, times a stripe texture, plus light pixel noise: float32
    ``[3, image_size, image_size]`` in ``[0, 1]``.

    Tasks, nuisances and confounders follow :class:`~metacrl.data.ConfoundedShapes`: task ``i``
    draws ``n_way`` classes of the split and ``k_shot + k_query`` distinct drawings of each
    (class-major); in training with ``rho > 0`` one nuisance is tied to the label, per meta-batch
    (``"switch"``, ``"fixed"``) or per task (``"task"``); val and test tasks are unconfounded,
    or conflict tasks with ``eval_confounding="conflict"`` (a nuisance tied by one mapping in
    the support set and another in the query set).

    Args:
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (at most 8 while confounded; default: ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        rho: Probability that an example shows its label's mapped value (default: ``0.9``).
        confounder: ``"switch"``, ``"fixed"`` or ``"task"`` (default: ``"switch"``).
        image_size: Image side length in pixels (default: ``32``).
        batchsz: The number of tasks (default: ``10000``).
        meta_batch_size: Tasks per meta-batch sharing one confounder (default: ``4``).
        seed: The seed of the task stream (default: ``0``).
        root: The drawings' folder (default: Debian's ``/usr/share/openclipart/png``).
        cache_dir: Where the decoded drawings are cached (default: :func:`default_cache_dir`).
        min_images: The fewest drawings a folder needs to be a class (default: ``20``).
        fixed_attribute: The nuisance of ``confounder="fixed"`` (default: ``"background"``).
        noise: Standard deviation of the uniform pixel noise (default: ``0.03``).
        texture_strength: How much the stripes darken the image (default: ``0.3``).
        eval_confounding: ``"neutral"`` or ``"conflict"``: the kind of val/test tasks (see
            :class:`~metacrl.data.ConfoundedShapes`; default: ``"neutral"``).
        class_seed: The seed of the class split (default: ``0``).
        progress: Show a progress bar while building the cache (default: ``True``).

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        TypeError: If a count is not an integer.
        ValueError: If a value is out of range, a class of the split has fewer than
            ``k_shot + k_query`` drawings, ``n_way`` exceeds the split's classes, or a drawing
            cannot be decoded.
        OSError: If the cache cannot be written.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for c in range(6):                                    # 6 classes x 3 drawings
        ...         os.makedirs(f"{d}/art/c{c}")
        ...         for i in range(3):
        ...             Image.new("L", (9, 7), 40 * i).save(f"{d}/art/c{c}/{i}.png")
        ...     ds = ConfoundedClipart("train", n_way=2, k_query=2, image_size=8, batchsz=4,
        ...                            root=f"{d}/art", cache_dir=f"{d}/cache", min_images=3,
        ...                            progress=False)
        ...     x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> ds.num_classes, tuple(x_spt.shape), y_qry.tolist()
        (4, (2, 3, 8, 8), [0, 0, 1, 1])
    """

    def __init__(
        self,
        mode: str = "train",
        n_way: int = 5,
        k_shot: int = 1,
        k_query: int = 15,
        rho: float = 0.9,
        confounder: str = "switch",
        image_size: int = 32,
        batchsz: int = 10000,
        meta_batch_size: int = 4,
        seed: int = 0,
        *,
        root: str | Path = DEFAULT_ROOT,
        cache_dir: str | Path | None = None,
        min_images: int = 20,
        fixed_attribute: str = "background",
        noise: float = 0.03,
        texture_strength: float = 0.3,
        eval_confounding: str = "neutral",
        class_seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__(
            mode,
            n_way,
            k_shot,
            k_query,
            rho,
            confounder,
            image_size,
            batchsz,
            meta_batch_size,
            seed,
            fixed_attribute=fixed_attribute,
            noise=noise,
            texture_strength=texture_strength,
            eval_confounding=eval_confounding,
        )
        self.root = Path(root)
        self.class_seed = check_seed(class_seed)
        self.min_images = check_int("min_images", min_images)
        found = scan_clipart(self.root, self.min_images)
        if len(found) < 3:
            raise ValueError(
                f"{self.root} has {len(found)} folders with >= {self.min_images} PNG drawings; "
                "a train/val/test split needs at least 3 (is this the openclipart png folder?)"
            )
        self.classes: list[str] = clipart_splits(list(found), self.class_seed)[self.mode]
        self._check_n_way()
        needed = self.k_shot + self.k_query
        for name in self.classes:
            if len(found[name]) < needed:
                raise ValueError(
                    f"class {name!r} has {len(found[name])} drawings, fewer than k_shot + "
                    f"k_query = {needed}"
                )
        # one cache of every class's drawings (all splits), in a fixed order
        files = [path for name in found for path in found[name]]
        starts = np.cumsum([0] + [len(found[name]) for name in found])
        offset = dict(zip(found, starts[:-1].tolist(), strict=True))
        self._class_rows = [
            np.arange(offset[n], offset[n] + len(found[n]), dtype=np.int64) for n in self.classes
        ]
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._images = open_image_cache(
            directory,
            f"clipart-{self.image_size}",
            files,
            [p.relative_to(self.root.resolve()).as_posix() for p in files],
            self.image_size,
            progress=progress,
            desc="caching clip art",
            decode=decode_drawing,
        )

    @property
    def num_classes(self) -> int:
        """The number of classes of the split."""
        return len(self.classes)

    def episode(self, index: int) -> ConfoundedEpisode:
        """Make task ``index`` with its classes, nuisance values, ink masks and confounder.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The :class:`~metacrl.data.confounded.ConfoundedEpisode`; ``classes`` index
            :attr:`classes`.

        Raises:
            IndexError: If ``index`` is out of range.
        """
        index = check_index(index, self.batchsz)
        rng = self.task_generator(index)
        picked = sample_episode(rng, self._class_rows, self.n_way, self.k_shot, self.k_query)
        rows = np.concatenate([picked.support, picked.query])
        order = np.argsort(rows, kind="stable")  # memory-mapped reads in file order
        grey = np.empty((len(rows), self.image_size, self.image_size), dtype=np.float32)
        grey[order] = self._images[rows[order], :, :, 0]
        masks = 1.0 - grey / np.float32(255.0)
        labels = np.concatenate([picked.y_spt, picked.y_qry])
        values, confounder, query_confounder = self.task_nuisances(
            index, rng, picked.y_spt, picked.y_qry
        )
        phase = rng.uniform(0, 2 * np.pi, len(labels)).astype(np.float32)
        fg, bg, tex = (values[:, nuisance_index(n)] for n in NUISANCES)
        images = paint_masks(
            masks,
            FOREGROUND_PALETTE[fg],
            BACKGROUND_PALETTE[bg],
            TEXTURE_ANGLES[tex],
            phase,
            texture_strength=self.texture_strength,
            noise=self.noise,
            rng=rng,
        )
        return ConfoundedEpisode.assemble(
            images,
            picked.y_spt,
            picked.y_qry,
            picked.classes,
            values,
            masks,
            confounder,
            query_confounder,
        )

    def _extra_repr(self) -> str:
        return f", root={str(self.root)!r}"
