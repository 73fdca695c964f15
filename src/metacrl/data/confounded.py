"""What the confounded benchmarks share: their settings and the confounder schedule.

:class:`~metacrl.data.ConfoundedShapes` (procedural shapes) and
:class:`~metacrl.data.ConfoundedClipart` (real drawings) differ only in what carries the class:
a shape's coverage or a drawing's ink. Both paint it with the same three nuisances (foreground
colour, background colour, stripe orientation; :mod:`metacrl.data.painting`) and tie one of
them to the label in training tasks, switched per meta-batch, as this base class schedules.
Their validation and test tasks are neutral (no nuisance follows the label) or, with
``eval_confounding="conflict"``, tie a nuisance to the label by one mapping in the support set
and another in the query set, which measures how much a learner relies on the nuisance.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import get_args

import numpy as np
import torch
from torch import Tensor

from metacrl.data.base import Task, TaskDataset
from metacrl.data.confounding import (
    Confounder,
    check_conflict_ways,
    draw_conflict,
    draw_conflict_nuisances,
    draw_confounder,
    draw_nuisances,
)
from metacrl.data.seeding import task_rng
from metacrl.data.shapes_nuisance import NUM_VALUES, nuisance_index
from metacrl.typing import ConfounderKind, EvalConfounding, Split
from metacrl.validation import (
    check_choice,
    check_float,
    check_index,
    check_int,
    check_probability,
)

__all__ = ["ConfoundedEpisode", "ConfoundedTasks"]

SPLITS: tuple[Split, ...] = get_args(Split)
TASK_STREAM, BATCH_CONFOUNDER_STREAM, TASK_CONFOUNDER_STREAM = 0, 1, 2  # tags of task_rng
CONFLICT_STREAM = 3  # the conflict of a task (its own stream: the other streams are unchanged)


@dataclass(frozen=True)
class ConfoundedEpisode:
    """One task of a confounded benchmark with everything that made it.

    Attributes:
        x_spt: Support images ``[N*K, 3, S, S]`` in ``[0, 1]``.
        y_spt: Support labels ``[N*K]``.
        x_qry: Query images ``[N*Q, 3, S, S]``.
        y_qry: Query labels ``[N*Q]``.
        classes: Global class ids ``[n_way]``; label ``j`` is class ``classes[j]``.
        nuisances: Nuisance values ``[N*K + N*Q, 3]`` (support rows first), columns in
            ``NUISANCES`` order (foreground, background, texture).
        masks: What carries the class, ``[N*K + N*Q, S, S]`` in ``[0, 1]``: a shape's coverage
            (:class:`~metacrl.data.ConfoundedShapes`) or a drawing's ink
            (:class:`~metacrl.data.ConfoundedClipart`).
        confounder: The task's confounder, or ``None`` (neutral tasks). In a conflict task
            (``eval_confounding="conflict"``) it is the support set's tie.
        query_confounder: The query set's tie when it differs from the support set's: in a
            conflict task, the same attribute with every label moved to another label's support
            value. ``None`` otherwise (the query examples follow ``confounder`` like the support
            examples).

    Example:
        >>> from metacrl.data import ConfoundedShapes, NUISANCES
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
    query_confounder: Confounder | None = None

    @classmethod
    def assemble(
        cls,
        images: np.ndarray,
        y_spt: np.ndarray,
        y_qry: np.ndarray,
        classes: np.ndarray,
        nuisances: np.ndarray,
        masks: np.ndarray,
        confounder: Confounder | None,
        query_confounder: Confounder | None = None,
    ) -> ConfoundedEpisode:
        """Build an episode from all its images (support rows first) and its labels.

        Args:
            images: ``float32`` images ``[N*K + N*Q, 3, S, S]``, support first.
            y_spt: Support labels ``[N*K]``.
            y_qry: Query labels ``[N*Q]``.
            classes: The task's classes.
            nuisances: Nuisance values ``[N*K + N*Q, 3]``.
            masks: What carries the class ``[N*K + N*Q, S, S]``.
            confounder: The task's confounder (a conflict task's support tie), or ``None``.
            query_confounder: A conflict task's query tie, or ``None`` (default).

        Returns:
            The episode, its images split into the support and query sets.
        """
        x = torch.from_numpy(images)
        n_spt = len(y_spt)
        return cls(
            x_spt=x[:n_spt],
            y_spt=torch.from_numpy(y_spt),
            x_qry=x[n_spt:],
            y_qry=torch.from_numpy(y_qry),
            classes=classes,
            nuisances=nuisances,
            masks=masks,
            confounder=confounder,
            query_confounder=query_confounder,
        )

    def tensors(self) -> Task:
        """Return ``(x_spt, y_spt, x_qry, y_qry)``.

        Returns:
            The task's four tensors, what the dataset's ``task`` returns.
        """
        return self.x_spt, self.y_spt, self.x_qry, self.y_qry


class ConfoundedTasks(TaskDataset, abc.ABC):
    """Few-shot tasks whose training tasks tie a nuisance to the label (the shared base).

    See :class:`~metacrl.data.ConfoundedShapes` for the arguments and the confounder schedule;
    a subclass says which classes its split has (:attr:`num_classes`) and makes the tasks.

    Args:
        mode: ``"train"``, ``"val"`` or ``"test"``.
        n_way: Classes per task.
        k_shot: Support images per class.
        k_query: Query images per class.
        rho: Probability that an example shows its label's mapped value (0: unconfounded).
        confounder: ``"switch"``, ``"fixed"`` or ``"task"``.
        image_size: Image side length in pixels.
        batchsz: The number of tasks.
        meta_batch_size: Tasks per meta-batch sharing one confounder.
        seed: The seed of the task stream.
        fixed_attribute: The nuisance used by ``confounder="fixed"``.
        noise: Standard deviation of the uniform pixel noise.
        texture_strength: How much the stripes darken the image.
        eval_confounding: ``"neutral"`` (default) or ``"conflict"``: what val/test tasks do with
            the nuisances (see :class:`~metacrl.data.ConfoundedShapes`); ``"conflict"``
            needs ``mode`` ``"val"`` or ``"test"`` and ``2 <= n_way <= 8``.

    Example:
        >>> from metacrl.data import ConfoundedShapes
        >>> ds = ConfoundedShapes("train", n_way=3, batchsz=8, meta_batch_size=4)
        >>> isinstance(ds, ConfoundedTasks), ds.required_batch_size
        (True, 4)
        >>> ds.confounder_of(0) == ds.confounder_of(3) and ds.confounder_of(4) is not None
        True
        >>> test = ConfoundedShapes("test", n_way=3, batchsz=8, eval_confounding="conflict")
        >>> support, query = test.confounder_of(0), test.query_confounder_of(0)
        >>> support.attribute == query.attribute and support.mapping != query.mapping
        True
    """

    def __init__(
        self,
        mode: str,
        n_way: int,
        k_shot: int,
        k_query: int,
        rho: float,
        confounder: str,
        image_size: int,
        batchsz: int,
        meta_batch_size: int,
        seed: int,
        *,
        fixed_attribute: str,
        noise: float,
        texture_strength: float,
        eval_confounding: str = "neutral",
    ) -> None:
        super().__init__(batchsz, seed)
        self.mode: Split = check_choice("mode", mode, SPLITS)
        self.n_way = check_int("n_way", n_way)
        self.k_shot = check_int("k_shot", k_shot)
        self.k_query = check_int("k_query", k_query)
        self.rho = check_probability("rho", rho)
        self.confounder: ConfounderKind = check_choice(
            "confounder", confounder, get_args(ConfounderKind)
        )
        self.image_size = check_int("image_size", image_size, minimum=4)
        self.meta_batch_size = check_int("meta_batch_size", meta_batch_size)
        nuisance_index(fixed_attribute)
        self.fixed_attribute = fixed_attribute
        self.noise = check_float("noise", noise, at_least=0)
        self.texture_strength = check_probability("texture_strength", texture_strength)
        self.eval_confounding: EvalConfounding = check_choice(
            "eval_confounding", eval_confounding, get_args(EvalConfounding)
        )
        if self.confounded and self.n_way > NUM_VALUES:
            raise ValueError(
                f"n_way={self.n_way}: a confounded training task maps labels to distinct "
                f"nuisance values, of which there are {NUM_VALUES}; use n_way <= 8 or rho=0"
            )
        if self.conflict:
            if self.mode == "train":
                raise ValueError(
                    "eval_confounding='conflict' makes val/test tasks, not training tasks "
                    "(mode='train' ties the nuisance by rho and confounder)"
                )
            check_conflict_ways(self.n_way)

    def _check_n_way(self) -> None:
        """Refuse more ways than the split has classes (call once the classes are known)."""
        if self.n_way > self.num_classes:
            raise ValueError(
                f"n_way={self.n_way} is larger than the {self.num_classes} classes of the "
                f"{self.mode!r} split"
            )

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """The number of classes of the split."""

    @property
    def confounded(self) -> bool:
        """Whether tasks carry a confounder (training with ``rho > 0``)."""
        return self.mode == "train" and self.rho > 0

    @property
    def conflict(self) -> bool:
        """Whether tasks are conflict tasks (``eval_confounding="conflict"``, val/test only)."""
        return self.eval_confounding == "conflict"

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
            The :class:`~metacrl.data.Confounder`, or ``None`` when the task is unconfounded
            (neutral val/test tasks, or ``rho=0``). In a conflict task it is the support set's
            tie (the query set's is :meth:`query_confounder_of`).

        Raises:
            IndexError: If ``index`` is out of range.
        """
        index = check_index(index, self.batchsz)
        if self.conflict:
            return self._conflict(index)[0]
        if not self.confounded:
            return None
        mode_key = SPLITS.index(self.mode)
        if self.confounder == "task":
            rng = task_rng(self.seed, mode_key, TASK_CONFOUNDER_STREAM, index)
            return draw_confounder(rng, self.n_way, None)
        rng = task_rng(self.seed, mode_key, BATCH_CONFOUNDER_STREAM, index // self.meta_batch_size)
        attribute = self.fixed_attribute if self.confounder == "fixed" else None
        return draw_confounder(rng, self.n_way, attribute)

    def query_confounder_of(self, index: int) -> Confounder | None:
        """Return the query set's tie of task ``index`` where it differs from the support set's.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            In a conflict task, the tied attribute with the query mapping: every label takes
            another label's support value (the support mapping is :meth:`confounder_of`).
            Otherwise ``None``: the query set follows :meth:`confounder_of` like the support.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> from metacrl.data import ConfoundedShapes
            >>> ConfoundedShapes("train", batchsz=4).query_confounder_of(0) is None
            True
        """
        index = check_index(index, self.batchsz)
        return self._conflict(index)[1] if self.conflict else None

    def _conflict(self, index: int) -> tuple[Confounder, Confounder]:
        """The support and query ties of conflict task ``index`` (a checked index)."""
        rng = task_rng(self.seed, SPLITS.index(self.mode), CONFLICT_STREAM, index)
        return draw_conflict(rng, self.n_way)

    def task_nuisances(
        self, index: int, rng: np.random.Generator, y_spt: np.ndarray, y_qry: np.ndarray
    ) -> tuple[np.ndarray, Confounder | None, Confounder | None]:
        """Draw the nuisance values of task ``index``, and return them with its ties.

        Subclasses call it from :meth:`episode`. A conflict task uses ``rng`` as a neutral task
        does, so it shows the classes, images and untied nuisances of the neutral task of the
        same index and seed; only the tied nuisance differs.

        Args:
            index: A checked task index.
            rng: The task's generator (:meth:`task_generator`).
            y_spt: Support labels ``[N*K]``.
            y_qry: Query labels ``[N*Q]``.

        Returns:
            ``(values, confounder, query_confounder)``: ``int64`` values
            ``[N*K + N*Q, len(NUISANCES)]`` (support rows first), :meth:`confounder_of` and
            :meth:`query_confounder_of`.
        """
        if self.conflict:
            support, query = self._conflict(index)
            return draw_conflict_nuisances(rng, y_spt, y_qry, support, query), support, query
        confounder = self.confounder_of(index)
        labels = np.concatenate([y_spt, y_qry])
        return draw_nuisances(rng, labels, confounder, self.rho), confounder, None

    def task_generator(self, index: int) -> np.random.Generator:
        """The generator of task ``index``'s classes, images and nuisances.

        Args:
            index: A checked task index.

        Returns:
            A generator that depends only on ``(seed, mode, index)``.
        """
        return task_rng(self.seed, SPLITS.index(self.mode), TASK_STREAM, index)

    @abc.abstractmethod
    def episode(self, index: int) -> ConfoundedEpisode:
        """Make task ``index`` with everything that made it (see :class:`ConfoundedEpisode`)."""

    def task(self, index: int) -> Task:
        """Make task ``index``: images ``[N*K, 3, S, S]`` in ``[0, 1]`` and labels ``[N*K]``.

        Args:
            index: The task index.

        Returns:
            ``(x_spt, y_spt, x_qry, y_qry)``.
        """
        return self.episode(index).tensors()

    def __repr__(self) -> str:
        conflict = f", eval_confounding={self.eval_confounding!r}" if self.conflict else ""
        return (
            f"{type(self).__name__}(mode={self.mode!r}, n_way={self.n_way}, "
            f"k_shot={self.k_shot}, k_query={self.k_query}, rho={self.rho}, "
            f"confounder={self.confounder!r}, image_size={self.image_size}, "
            f"batchsz={self.batchsz}, meta_batch_size={self.meta_batch_size}, "
            f"seed={self.seed}{conflict}{self._extra_repr()})"
        )

    def _extra_repr(self) -> str:
        """More ``, key=value`` fields of the subclass for ``repr`` (none by default)."""
        return ""
