"""One task's features at the meta-parameters: what MetaCRL uses as an environment."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["TaskFeatures"]


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
