"""Per-task factor gates: what the head of one task sees."""

from __future__ import annotations

from torch import Tensor

from metacrl.regularizer.module import MetaCRLModule

__all__ = ["TaskFactors"]


class TaskFactors:
    r"""The gates :math:`w_t` of one task and the feature transform they define.

    Created by :meth:`MetaCRLRegularizer.task` from a task's support features, or empty
    (``gates=None``) and filled by :meth:`prepare`: the learners compute the gates once per task
    from the support features at the meta-parameters, before the inner loop, and hold them fixed
    during adaptation (gradients reach θ, ``Xi`` and ``f_gr`` through the query loss).

    Args:
        regularizer: The regularizer that owns ``Xi`` and ``f_gr``.
        gates: The task's gates ``[num_factors]``, or ``None`` (the default) to compute them
            lazily with :meth:`prepare`.
        frozen: Use ``Xi`` and ``f_gr`` as constants (no gradient reaches them), as in the
            lower level and the θ-update of the alternating schedule (default: ``False``).

    Attributes:
        last_output: The head's output of the last forward made with these factors (set by
            :class:`~metacrl.GatedModel`); ``reg.penalty`` uses it for the IRM penalty.

    Example:
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4)
        >>> task = reg.task(torch.randn(5, 8))
        >>> task.gates.shape, task.transform(torch.randn(3, 8)).shape
        (torch.Size([4]), torch.Size([3, 8]))
    """

    def __init__(
        self,
        regularizer: MetaCRLModule,
        gates: Tensor | None = None,
        *,
        frozen: bool = False,
    ) -> None:
        self.regularizer = regularizer
        self.frozen = frozen
        self._gates = gates
        self.last_output: Tensor | None = None

    @property
    def state(self) -> Tensor:
        """The gates (the :class:`~metacrl.typing.HeadTransform` state); see :attr:`gates`."""
        return self.gates

    def with_state(self, state: Tensor) -> TaskFactors:
        """The same factors with gates ``state`` (e.g. one task's slice of a batch's gates).

        Args:
            state: Gates ``[..., num_factors]``.

        Returns:
            New factors of the same regularizer, frozen alike.
        """
        return TaskFactors(self.regularizer, state, frozen=self.frozen)

    @property
    def gates(self) -> Tensor:
        """The task's gates ``[num_factors]``.

        Raises:
            RuntimeError: If they were neither given nor computed by :meth:`prepare`.
        """
        if self._gates is None:
            raise RuntimeError("the task's gates are not computed yet: call prepare() first")
        return self._gates

    def prepare(self, support_features: Tensor) -> None:
        """Compute the gates from the task's support features, unless already set.

        Called by the learners once per task, before the inner loop; later calls keep the
        first gates (the support features passed then are ignored).

        Args:
            support_features: The task's support features ``[n_support, feature_dim]``.

        Raises:
            TypeError: If the features' dtype or device differ from the regularizer's.
            ValueError: If the features are not ``[..., n, feature_dim]``.

        Example:
            >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4)
            >>> task = TaskFactors(reg, frozen=True)
            >>> task.prepare(torch.randn(5, 8))
            >>> first = task.gates
            >>> task.prepare(torch.randn(5, 8))        # already set: unchanged
            >>> task.gates is first, tuple(first.shape), first.requires_grad
            (True, (4,), False)
        """
        if self._gates is None:
            self._gates = self.regularizer.gates(support_features, frozen=self.frozen)

    def transform(self, features: Tensor) -> Tensor:
        """Map features ``[n, feature_dim]`` to what the head sees (gated factors).

        Args:
            features: Features ``[..., n, feature_dim]`` of this task's examples.

        Returns:
            ``Xi (w ⊙ Xi^T g)`` per example, ``[..., n, feature_dim]`` (the regularizer's
            ``head_input="features"``), or ``w ⊙ Xi^T g``, ``[..., n, num_factors]``
            (``head_input="factors"``).

        Raises:
            RuntimeError: If the gates are not computed yet (call :meth:`prepare`).
            TypeError: If the features' dtype or device differ from the regularizer's.
            ValueError: If the features are not ``[..., n, feature_dim]``.

        Example:
            >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4, head_input="factors")
            >>> closed = TaskFactors(reg, torch.zeros(4))       # every gate shut
            >>> closed.transform(torch.randn(3, 8)).abs().sum().item()
            0.0
            >>> TaskFactors(reg).transform(torch.randn(3, 8))
            Traceback (most recent call last):
                ...
            RuntimeError: the task's gates are not computed yet: call prepare() first
        """
        return self.regularizer.transform(features, self.gates, frozen=self.frozen)
