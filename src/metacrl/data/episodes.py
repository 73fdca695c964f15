"""N-way K-shot episodes drawn from a pool of labelled images, with labels remapped per task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Episode", "class_major_labels", "sample_episode"]


@dataclass(frozen=True)
class Episode:
    """Which images make one task, and their task labels.

    Examples are ordered class-major: the ``k_shot`` support images of label 0, then those of
    label 1, and so on (likewise for the query set).

    Attributes:
        classes: The task's classes ``[n_way]`` (indices into the dataset's class list); label
            ``j`` of the task is class ``classes[j]``. Their order is random per task.
        support: Image rows of the support set ``[n_way * k_shot]``.
        query: Image rows of the query set ``[n_way * k_query]``.
        y_spt: Support labels ``[n_way * k_shot]`` in ``0..n_way-1``.
        y_qry: Query labels ``[n_way * k_query]``.

    Example:
        >>> import tempfile
        >>> from metacrl.data import MiniImagenet, write_fake_miniimagenet
        >>> with tempfile.TemporaryDirectory() as d:
        ...     root = write_fake_miniimagenet(d, (3, 1, 1), images_per_class=3, image_size=8)
        ...     ds = MiniImagenet(root, n_way=3, k_shot=1, k_query=2, batchsz=2, resize=8,
        ...                       progress=False)
        ...     ep = ds.episode(0)
        >>> ep.y_spt.tolist(), ep.y_qry.tolist(), sorted(ep.classes.tolist())
        ([0, 1, 2], [0, 0, 1, 1, 2, 2], [0, 1, 2])
    """

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray
    y_spt: np.ndarray
    y_qry: np.ndarray


def class_major_labels(n_way: int, per_class: int) -> np.ndarray:
    """Return the labels ``0,..,0, 1,..,1, ...`` (``per_class`` of each) as ``int64``.

    Args:
        n_way: The number of classes.
        per_class: Examples per class.

    Returns:
        An array of ``n_way * per_class`` labels.

    Example:
        >>> class_major_labels(3, 2).tolist()
        [0, 0, 1, 1, 2, 2]
    """
    return np.repeat(np.arange(n_way, dtype=np.int64), per_class)


def sample_episode(
    rng: np.random.Generator,
    class_rows: Sequence[np.ndarray],
    n_way: int,
    k_shot: int,
    k_query: int,
) -> Episode:
    """Draw one episode: ``n_way`` distinct classes in random order, distinct images per class.

    Each chosen class contributes ``k_shot + k_query`` distinct images, the first ``k_shot`` to
    the support set and the rest to the query set, so support and query never share an image.

    Args:
        rng: The task's generator.
        class_rows: For each class, the rows of its images (each at least
            ``k_shot + k_query`` long; the caller checks this).
        n_way: Classes per task.
        k_shot: Support images per class.
        k_query: Query images per class.

    Returns:
        The :class:`Episode`.

    Example:
        >>> rows = [np.arange(4) + 4 * c for c in range(3)]
        >>> ep = sample_episode(np.random.default_rng(0), rows, n_way=2, k_shot=1, k_query=2)
        >>> ep.y_spt.tolist(), ep.y_qry.tolist()
        ([0, 1], [0, 0, 1, 1])
        >>> bool(np.all(ep.support // 4 == ep.classes))
        True
    """
    classes = rng.choice(len(class_rows), size=n_way, replace=False)
    per_class = k_shot + k_query
    picks = np.stack(
        [
            class_rows[c][rng.choice(len(class_rows[c]), size=per_class, replace=False)]
            for c in classes
        ]
    )
    return Episode(
        classes=classes.astype(np.int64),
        support=picks[:, :k_shot].reshape(-1).astype(np.int64),
        query=picks[:, k_shot:].reshape(-1).astype(np.int64),
        y_spt=class_major_labels(n_way, k_shot),
        y_qry=class_major_labels(n_way, k_query),
    )
