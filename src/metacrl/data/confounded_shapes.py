"""ConfoundedShapes: a procedural few-shot benchmark with task confounders that switch per batch.

Why it isolates the task confounder. Every image shows one shape class drawn in random
colours over a random background with a random stripe texture. Only the shape is *causal*: it
alone decides the label in every task and every split, and it survives pose jitter (rotation,
scale, shift), so a learner must recognise the shape, not a pixel pattern. The nuisances
(foreground colour, background colour, stripe orientation) carry no information about the
class. During meta-training, though, one nuisance is tied to the label inside every task of a
meta-batch (with probability ``rho``, through a label-to-value mapping): within the batch it is
as predictive as the shape and much easier to read, so a learner that takes the shortcut fits
the batch. The tie is redrawn for the next meta-batch (another attribute, another mapping), as
the paper observes for real task confounders, so the shortcut does not transfer; and at
meta-test every nuisance is independent of the label, so only shape knowledge scores. With
``rho=0`` training is unconfounded (the oracle); the gap to it measures the confounders' harm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metacrl.data.base import Task, TaskDataset
from metacrl.data.confounding import CONFOUNDERS, Confounder, draw_confounder, draw_nuisances
from metacrl.data.episodes import class_major_labels
from metacrl.data.seeding import check_seed, task_rng
from metacrl.data.shapes_classes import make_shape_bank, split_class_ids
from metacrl.data.shapes_nuisance import (
    BACKGROUND_PALETTE,
    FOREGROUND_PALETTE,
    NUISANCES,
    TEXTURE_ANGLES,
    nuisance_index,
)
from metacrl.data.shapes_render import draw_poses, render_shapes
from metacrl.validation import check_choice, check_index, check_int, check_probability

__all__ = ["ConfoundedShapes", "ShapesEpisode"]

_MODES = ("train", "val", "test")
_TASK, _BATCH_CONFOUNDER, _TASK_CONFOUNDER = 0, 1, 2  # stream tags of task_rng


@dataclass(frozen=True)
class ShapesEpisode:
    """One task of :class:`ConfoundedShapes` with everything that made it.

    Attributes:
        x_spt: Support images ``[N*K, 3, S, S]`` in ``[0, 1]``.
        y_spt: Support labels ``[N*K]``.
        x_qry: Query images ``[N*Q, 3, S, S]``.
        y_qry: Query labels ``[N*Q]``.
        classes: Global class ids ``[n_way]``; label ``j`` is class ``classes[j]``.
        nuisances: Nuisance values ``[N*K + N*Q, 3]`` (support rows first), columns in
            ``NUISANCES`` order (foreground, background, texture).
        masks: The shapes' coverage ``[N*K + N*Q, S, S]`` in ``[0, 1]``.
        confounder: The task's confounder, or ``None``.

    Example:
        >>> ep = ConfoundedShapes("train", n_way=3, k_shot=2, k_query=1, batchsz=4).episode(0)
        >>> tuple(ep.x_spt.shape), ep.nuisances.shape, ep.confounder is not None
        ((6, 3, 32, 32), (9, 3), True)
        >>> labels = ep.y_spt.tolist() + ep.y_qry.tolist()
        >>> column = NUISANCES.index(ep.confounder.attribute)   # the tied nuisance
        >>> values = ep.nuisances[:, column].tolist()
        >>> tied = [v == ep.confounder.mapping[y] for v, y in zip(values, labels, strict=True)]
        >>> sum(tied) >= 5   # most of the 9 examples show their label's value (rho = 0.9)
        True
    """

    x_spt: Tensor
    y_spt: Tensor
    x_qry: Tensor
    y_qry: Tensor
    classes: np.ndarray
    nuisances: np.ndarray
    masks: np.ndarray
    confounder: Confounder | None

    def tensors(self) -> Task:
        """Return ``(x_spt, y_spt, x_qry, y_qry)``.

        Returns:
            The task's four tensors, what ``ConfoundedShapes.task`` returns.

        Example:
            >>> ep = ConfoundedShapes("test", n_way=2, k_query=1, batchsz=2).episode(0)
            >>> [tuple(t.shape) for t in ep.tensors()]
            [(2, 3, 32, 32), (2,), (2, 3, 32, 32), (2,)]
        """
        return self.x_spt, self.y_spt, self.x_qry, self.y_qry


class ConfoundedShapes(TaskDataset):
    """Few-shot shape classification whose training tasks carry switching confounders.

    Classes are seeded random star polygons (:mod:`metacrl.data.shapes_classes`): 64 train,
    16 val and 20 test classes fixed by ``class_seed``, independent of the episode ``seed``. An
    image renders its class's shape with a random pose (rotation within 15 degrees, scale,
    shift) and three nuisances of 8 values each (:mod:`metacrl.data.shapes_nuisance`): the
    foreground colour, the background colour and the orientation of a stripe texture; plus
    light uniform pixel noise. Images are ``float32`` ``[3, image_size, image_size]`` in ``[0, 1]``
    (not standardised). Rendering is vectorised over all images of a task (no PIL).

    Task ``i`` draws ``n_way`` classes of the split in random order (labels remapped to
    ``0..n_way-1`` per task) and fresh images of each; examples are ordered class-major. In
    meta-training (``mode="train"``) with ``rho > 0``, one nuisance is tied to the label: each
    example, support and query alike, takes the value ``mapping[label]`` with probability
    ``rho`` (else a uniform value, which may hit the mapped one by chance); the other nuisances
    are uniform. Which nuisance and which mapping depends on ``confounder``:

    * ``"switch"`` (default): drawn per meta-batch (tasks ``b * meta_batch_size`` to
      ``(b + 1) * meta_batch_size - 1``) from ``(seed, b)``: one attribute uniformly at random and
      a random injective mapping. All tasks of a batch share them; the next batch redraws.
    * ``"fixed"``: always ``fixed_attribute`` (default: the background colour); the mapping is
      redrawn per meta-batch. A stress case: the shortcut is predictive in every training task.
    * ``"task"``: attribute and mapping redrawn for every task.

    In ``"val"`` and ``"test"`` every nuisance is independent of the label whatever ``rho`` and
    ``confounder`` say. Load meta-batches with ``TaskLoader(ds, batch_size=meta_batch_size)``
    so that loader batches and confounder batches coincide (it checks).

    Args:
        mode: ``"train"``, ``"val"`` or ``"test"`` (default: ``"train"``).
        n_way: Classes per task (at most 8 while confounded: the mapping is injective; default:
            ``5``).
        k_shot: Support images per class (default: ``1``).
        k_query: Query images per class (default: ``15``).
        rho: Probability that an example shows its label's mapped value (0: unconfounded; default:
            ``0.9``).
        confounder: ``"switch"``, ``"fixed"`` or ``"task"`` (default: ``"switch"``).
        image_size: Image side length in pixels (default: ``32``).
        batchsz: The number of tasks (default: ``10000``).
        meta_batch_size: Tasks per meta-batch sharing one confounder (default: ``4``).
        seed: The seed of the task stream (default: ``0``).
        fixed_attribute: The nuisance used by ``confounder="fixed"`` (default: ``"background"``).
        noise: Standard deviation of the (uniform) pixel noise (default: ``0.03``).
        texture_strength: How much the stripes darken the image (0 disables the texture's
            visibility; its value is still drawn; default: ``0.3``).
        class_seed: The seed of the shape classes (default: ``0``).

    Raises:
        TypeError: If a count is not an integer.
        ValueError: If a value is out of range or ``n_way`` exceeds the split's classes.

    Example:
        >>> ds = ConfoundedShapes("train", n_way=5, k_shot=1, k_query=3, batchsz=8)
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), y_spt.tolist(), tuple(x_qry.shape)
        ((5, 3, 32, 32), [0, 1, 2, 3, 4], (15, 3, 32, 32))
        >>> ds.confounder_of(0) == ds.confounder_of(3)    # same meta-batch
        True
        >>> ds.num_classes, ds.confounded, ds.required_batch_size
        (64, True, 4)
        >>> ConfoundedShapes("test", batchsz=8).confounder_of(0) is None
        True
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
        fixed_attribute: str = "background",
        noise: float = 0.03,
        texture_strength: float = 0.3,
        class_seed: int = 0,
    ) -> None:
        super().__init__(batchsz, seed)
        self.mode = check_choice("mode", mode, _MODES)
        self.n_way = check_int("n_way", n_way)
        self.k_shot = check_int("k_shot", k_shot)
        self.k_query = check_int("k_query", k_query)
        self.rho = check_probability("rho", rho)
        self.confounder = check_choice("confounder", confounder, CONFOUNDERS)
        self.image_size = check_int("image_size", image_size, minimum=4)
        self.meta_batch_size = check_int("meta_batch_size", meta_batch_size)
        nuisance_index(fixed_attribute)
        self.fixed_attribute = fixed_attribute
        self.noise = float(noise)
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        self.texture_strength = check_probability("texture_strength", texture_strength)
        self.class_seed = check_seed(class_seed)
        self.class_ids = split_class_ids(self.mode)
        if self.n_way > len(self.class_ids):
            raise ValueError(
                f"n_way={self.n_way} is larger than the {len(self.class_ids)} classes of the "
                f"{self.mode!r} split"
            )
        if self.confounded and self.n_way > len(FOREGROUND_PALETTE):
            raise ValueError(
                f"n_way={self.n_way}: a confounded training task maps labels to distinct "
                f"nuisance values, of which there are {len(FOREGROUND_PALETTE)}; use "
                "n_way <= 8 or rho=0"
            )
        self._radii = make_shape_bank(self.class_seed).radii

    # ------------------------------------------------------------------ confounding
    @property
    def num_classes(self) -> int:
        """The number of classes of the split."""
        return len(self.class_ids)

    @property
    def confounded(self) -> bool:
        """Whether tasks carry a confounder (training with ``rho > 0``)."""
        return self.mode == "train" and self.rho > 0

    @property
    def required_batch_size(self) -> int | None:
        """The loader batch size that keeps confounder batches whole, or ``None`` if any works.

        It is ``meta_batch_size`` when a confounder is shared by a meta-batch (training,
        ``rho > 0``, ``"switch"`` or ``"fixed"``); :class:`~metacrl.data.TaskLoader` checks it.
        """
        if self.confounded and self.confounder != "task":
            return self.meta_batch_size
        return None

    def confounder_of(self, index: int) -> Confounder | None:
        """Return task ``index``'s confounder: its attribute and label-to-value mapping.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The :class:`~metacrl.data.confounding.Confounder`, or ``None`` when the task is
            unconfounded (val/test mode, or ``rho=0``).

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> ds = ConfoundedShapes(confounder="fixed", batchsz=8)
            >>> ds.confounder_of(5).attribute
            'background'
        """
        index = check_index(index, self.batchsz)
        if not self.confounded:
            return None
        mode_key = _MODES.index(self.mode)
        if self.confounder == "task":
            rng = task_rng(self.seed, mode_key, _TASK_CONFOUNDER, index)
            return draw_confounder(rng, self.n_way, None)
        rng = task_rng(self.seed, mode_key, _BATCH_CONFOUNDER, index // self.meta_batch_size)
        attribute = self.fixed_attribute if self.confounder == "fixed" else None
        return draw_confounder(rng, self.n_way, attribute)

    # ------------------------------------------------------------------ tasks
    def episode(self, index: int) -> ShapesEpisode:
        """Make task ``index`` with its classes, nuisance values, masks and confounder.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The :class:`ShapesEpisode`.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> ep = ConfoundedShapes("val", n_way=2, k_query=1, batchsz=4).episode(0)
            >>> ep.nuisances.shape, ep.masks.shape
            ((4, 3), (4, 32, 32))
        """
        index = check_index(index, self.batchsz)
        confounder = self.confounder_of(index)
        rng = task_rng(self.seed, _MODES.index(self.mode), _TASK, index)
        classes = self.class_ids[rng.choice(self.num_classes, size=self.n_way, replace=False)]
        y_spt = class_major_labels(self.n_way, self.k_shot)
        y_qry = class_major_labels(self.n_way, self.k_query)
        labels = np.concatenate([y_spt, y_qry])
        count = len(labels)
        poses = draw_poses(rng, count)
        values = draw_nuisances(rng, labels, confounder, self.rho)
        stripe_phase = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
        fg, bg, tex = (values[:, nuisance_index(n)] for n in NUISANCES)
        images, masks = render_shapes(
            self._radii[classes[labels]],
            poses,
            FOREGROUND_PALETTE[fg],
            BACKGROUND_PALETTE[bg],
            TEXTURE_ANGLES[tex],
            stripe_phase,
            self.image_size,
            texture_strength=self.texture_strength,
            noise=self.noise,
            rng=rng,
        )
        x = torch.from_numpy(images)
        n_spt = len(y_spt)
        return ShapesEpisode(
            x_spt=x[:n_spt],
            y_spt=torch.from_numpy(y_spt),
            x_qry=x[n_spt:],
            y_qry=torch.from_numpy(y_qry),
            classes=classes,
            nuisances=values,
            masks=masks,
            confounder=confounder,
        )

    def task(self, index: int) -> Task:
        """Make task ``index``: images ``[N*K, 3, S, S]`` in ``[0, 1]`` and labels ``[N*K]``.

        Args:
            index: The task index.

        Returns:
            ``(x_spt, y_spt, x_qry, y_qry)``.

        Example:
            >>> ds = ConfoundedShapes("val", n_way=3, k_shot=2, k_query=1, image_size=16,
            ...                       batchsz=2)
            >>> x_spt, y_spt, x_qry, y_qry = ds.task(0)
            >>> tuple(x_spt.shape), y_spt.tolist(), y_qry.tolist()
            ((6, 3, 16, 16), [0, 0, 1, 1, 2, 2], [0, 1, 2])
        """
        return self.episode(index).tensors()

    def __repr__(self) -> str:
        return (
            f"ConfoundedShapes(mode={self.mode!r}, n_way={self.n_way}, k_shot={self.k_shot}, "
            f"k_query={self.k_query}, rho={self.rho}, confounder={self.confounder!r}, "
            f"image_size={self.image_size}, batchsz={self.batchsz}, "
            f"meta_batch_size={self.meta_batch_size}, seed={self.seed})"
        )
