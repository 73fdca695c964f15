"""Per-task factor gates: what the head of one task sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from metacrl.regularizer.regularizer import MetaCRLRegularizer

__all__ = ["TaskFactors"]


class TaskFactors:
    r"""The gates :math:`w_t` of one task and the feature transform they define.

    Created by :meth:`MetaCRLRegularizer.task` from a task's support features, or empty
    (``gates=None``) and filled by :meth:`prepare`: the learners compute the gates once per task
    from the support features at the meta-parameters, before the inner loop, and hold them fixed
    during adaptation (gradients reach θ, ``Xi`` and ``f_gr`` through the query loss).

    Args:
        regularizer: The regularizer that owns ``Xi`` and ``f_gr``.
        gates: The task's gates ``[num_factors]``, or ``None`` to compute them lazily.
        frozen: Use ``Xi`` and ``f_gr`` as constants (no gradient reaches them), as in the
            lower level and the θ-update of the alternating schedule.

    Attributes:
        last_output: The head's output of the last forward made with these factors (set by
            :class:`~metacrl.models.GatedModel`); ``reg.penalty`` uses it for the IRM penalty.

    Example:
        >>> import torch
        >>> from metacrl import MetaCRLRegularizer
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4)
        >>> task = reg.task(torch.randn(5, 8))
        >>> task.gates.shape, task.transform(torch.randn(3, 8)).shape
        (torch.Size([4]), torch.Size([3, 8]))
    """

    def __init__(
        self,
        regularizer: MetaCRLRegularizer,
        gates: Tensor | None = None,
        *,
        frozen: bool = False,
    ) -> None:
        self.regularizer = regularizer
        self.frozen = frozen
        self._gates = gates
        self.last_output: Tensor | None = None

    @property
    def gates(self) -> Tensor:
        """The task's gates ``[num_factors]``."""
        if self._gates is None:
            raise RuntimeError("the task's gates are not computed yet: call prepare() first")
        return self._gates

    def prepare(self, support_features: Tensor) -> None:
        """Compute the gates from the task's support features, unless already set."""
        if self._gates is None:
            self._gates = self.regularizer.gates(support_features, frozen=self.frozen)

    def transform(self, features: Tensor) -> Tensor:
        """Map features ``[n, feature_dim]`` to what the head sees (gated factors)."""
        return self.regularizer.transform(features, self.gates, frozen=self.frozen)
