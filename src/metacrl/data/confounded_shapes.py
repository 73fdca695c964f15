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

import numpy as np

from metacrl.data.confounded import ConfoundedEpisode, ConfoundedTasks
from metacrl.data.episodes import class_major_labels
from metacrl.data.seeding import check_seed
from metacrl.data.shapes_classes import make_shape_bank, split_class_ids
from metacrl.data.shapes_nuisance import (
    BACKGROUND_PALETTE,
    FOREGROUND_PALETTE,
    NUISANCES,
    TEXTURE_ANGLES,
    nuisance_index,
)
from metacrl.data.shapes_render import draw_poses, render_shapes
from metacrl.validation import check_index

__all__ = ["ConfoundedShapes", "ShapesEpisode"]


ShapesEpisode = ConfoundedEpisode
"""One task of :class:`ConfoundedShapes` with everything that made it (its ``masks`` are the
shapes' coverage); see :class:`~metacrl.data.confounded.ConfoundedEpisode`."""


class ConfoundedShapes(ConfoundedTasks):
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
    ``confounder`` say (``eval_confounding="neutral"``, the default). With
    ``eval_confounding="conflict"`` they are *conflict* tasks instead: each task draws (from its
    own stream) one nuisance, a support mapping and a query mapping that moves every label to
    another label's support value; every support example shows its label's support value and
    every query example its query value (a tie probability of 1, whatever ``rho`` says), and
    the other nuisances are uniform. A learner that reads the nuisance off the support set
    then predicts wrong labels on the queries, so the accuracy drop from neutral to conflict
    tasks measures its reliance on the nuisance. A conflict task shows the classes, images and
    untied nuisances of the neutral task of the same index and seed; only the tied nuisance
    differs. Load meta-batches with ``TaskLoader(ds, batch_size=meta_batch_size)`` so that
    loader batches and confounder batches coincide (it checks).

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
        eval_confounding: ``"neutral"`` or ``"conflict"``: the kind of val/test tasks
            (``"conflict"`` needs ``mode`` ``"val"`` or ``"test"`` and ``2 <= n_way <= 8``;
            default: ``"neutral"``).
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

        A conflict task ties one nuisance to the label by one mapping in the support set and
        another in the query set:

        >>> conflict = ConfoundedShapes("test", n_way=3, k_query=2, batchsz=8,
        ...                             eval_confounding="conflict")
        >>> ep = conflict.episode(0)
        >>> column = NUISANCES.index(ep.confounder.attribute)
        >>> support, query = ep.nuisances[:3, column], ep.nuisances[3:, column]
        >>> support.tolist() == list(ep.confounder.mapping)      # labels 0, 1, 2
        True
        >>> query.tolist() == [ep.query_confounder.mapping[y] for y in ep.y_qry.tolist()]
        True
        >>> any(query[::2] == support)     # no label keeps its support value
        False
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
        eval_confounding: str = "neutral",
        class_seed: int = 0,
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
        self.class_seed = check_seed(class_seed)
        self.class_ids = split_class_ids(self.mode)
        self._check_n_way()
        self._radii = make_shape_bank(self.class_seed).radii

    # ------------------------------------------------------------------ confounding
    @property
    def num_classes(self) -> int:
        """The number of classes of the split."""
        return len(self.class_ids)

    # ------------------------------------------------------------------ tasks
    def episode(self, index: int) -> ConfoundedEpisode:
        """Make task ``index`` with its classes, nuisance values, masks and confounder.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The :class:`~metacrl.data.confounded.ConfoundedEpisode`.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> ep = ConfoundedShapes("val", n_way=2, k_query=1, batchsz=4).episode(0)
            >>> ep.nuisances.shape, ep.masks.shape
            ((4, 3), (4, 32, 32))
        """
        index = check_index(index, self.batchsz)
        rng = self.task_generator(index)
        classes = self.class_ids[rng.choice(self.num_classes, size=self.n_way, replace=False)]
        y_spt = class_major_labels(self.n_way, self.k_shot)
        y_qry = class_major_labels(self.n_way, self.k_query)
        labels = np.concatenate([y_spt, y_qry])
        count = len(labels)
        poses = draw_poses(rng, count)
        values, confounder, query_confounder = self.task_nuisances(index, rng, y_spt, y_qry)
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
        return ConfoundedEpisode.assemble(
            images, y_spt, y_qry, classes, values, masks, confounder, query_confounder
        )
