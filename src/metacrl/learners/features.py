"""One task's features at the meta-parameters: what MetaCRL uses as an environment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TaskFeatures", "spread"]


def spread(total: int, count: int) -> Tensor:
    """``count`` evenly spaced indices of ``range(total)``: which query examples to keep.

    Index ``i`` is ``(i * total) // count``, so with query sets ordered by class (all examples
    of label 0, then label 1, ...) and ``count`` a multiple of the classes, every class keeps
    the same number of examples; with labels interleaved, likewise.

    Args:
        total: The number of examples.
        count: How many to keep, ``1 <= count <= total``.

    Returns:
        The indices, increasing (a ``torch.long`` tensor).

    Raises:
        ValueError: If ``count`` is out of range.

    Example:
        >>> spread(15, 5).tolist(), spread(4, 4).tolist()
        ([0, 3, 6, 9, 12], [0, 1, 2, 3])
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= total:
        raise ValueError(
            f"cannot keep {count!r} of {total} query examples: give an integer in 1..{total}"
        )
    return (torch.arange(count) * total) // count


@dataclass(frozen=True)
class TaskFeatures:
    """One task as features at the current θ (no images): support and query sets.

    :meth:`MetaLearner.task_features <metacrl.learners.MetaLearner.task_features>` computes them;
    MetaCRL's causal step uses each as an *environment* of the invariance penalty.

    Attributes:
        support_features: ``[n_support, feature_dim]``.
        y_spt: Support targets.
        query_features: ``[n_query, feature_dim]``.
        y_qry: Query targets.

    Example:
        >>> task = TaskFeatures(torch.randn(6, 8), y[0], torch.randn(6, 8), y[0])
        >>> task.support_features.shape
        torch.Size([6, 8])
    """

    support_features: Tensor
    y_spt: Tensor
    query_features: Tensor
    y_qry: Tensor

    def with_queries(self, count: int) -> TaskFeatures:
        """The task with ``count`` of its query examples (those :func:`spread` picks).

        Args:
            count: Query examples to keep, ``1 <= count <= n_query``.

        Returns:
            A new :class:`TaskFeatures` sharing the support set.

        Raises:
            ValueError: If ``count`` is out of range.
        """
        index = spread(int(self.query_features.shape[0]), count)
        return TaskFeatures(
            self.support_features, self.y_spt, self.query_features[index], self.y_qry[index]
        )
