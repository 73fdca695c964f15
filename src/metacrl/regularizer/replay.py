"""The replay: earlier meta-batches kept as extra environments of MetaCRL's upper level."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from metacrl.learners import MetaBatch, TaskFeatures

__all__ = ["Replay"]


class Replay:
    """The last ``size`` meta-batches, as environments for the causal step and the penalty.

    Each entry is a meta-batch's environments (features as computed when the batch was
    current) or, for ``refresh_replay=True``, the (detached) meta-batch itself, whose features
    are recomputed whenever the environments are asked for. :class:`~metacrl.MetaCRLLearner`
    and :class:`~metacrl.GatedModel` (a user's own loop) keep one each, and save it with
    their ``state_dict`` through :meth:`state` and :meth:`load`.

    Args:
        size: How many meta-batches to keep (the regularizer's ``replay``; 0 keeps none).

    Example:
        >>> replay = Replay(2)
        >>> env = TaskFeatures(torch.zeros(5, 8), torch.zeros(5, dtype=torch.long),
        ...                    torch.zeros(3, 8), torch.zeros(3, dtype=torch.long))
        >>> for _ in range(3):
        ...     replay.remember([env, env])
        >>> len(replay), len(replay.environments())
        (2, 4)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: deque[list[TaskFeatures] | MetaBatch] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, item: list[TaskFeatures] | MetaBatch) -> None:
        """Keep a meta-batch's environments (or the batch itself), dropping the oldest.

        Args:
            item: The environments of the meta-batch that was just current, or the detached
                meta-batch (``refresh_replay=True``).
        """
        if self.size > 0:
            self._items.append(item)

    def environments(
        self, refresh: Callable[[MetaBatch], list[TaskFeatures]] | None = None
    ) -> list[TaskFeatures]:
        """The replayed meta-batches' tasks, oldest first, as the next causal step sees them.

        Args:
            refresh: Computes a stored meta-batch's environments with the current backbone
                (needed when batches rather than environments were remembered).

        Returns:
            The tasks' features.

        Raises:
            ValueError: If a meta-batch is stored and ``refresh`` is ``None``.
        """
        envs: list[TaskFeatures] = []
        for item in self._items:
            if isinstance(item, MetaBatch):
                if refresh is None:
                    raise ValueError("a replayed meta-batch needs refresh= to compute its features")
                envs.extend(refresh(item))
            else:
                envs.extend(item)
        return envs

    def state(self) -> list[tuple[str, Any]]:
        """The stored meta-batches as plain tensors and tuples, oldest first.

        Returns:
            ``("environments", [(support features, y_spt, query features, y_qry), ...])`` per
            meta-batch kept as environments, ``("batch", (x_spt, y_spt, x_qry, y_qry,
            num_labels))`` per meta-batch kept whole.
        """
        entries: list[tuple[str, Any]] = []
        for item in self._items:
            if isinstance(item, MetaBatch):
                entries.append(
                    ("batch", (item.x_spt, item.y_spt, item.x_qry, item.y_qry, item.num_labels))
                )
            else:
                entries.append(
                    (
                        "environments",
                        [(e.support_features, e.y_spt, e.query_features, e.y_qry) for e in item],
                    )
                )
        return entries

    def load(self, entries: list[tuple[str, Any]]) -> None:
        """Replace the stored meta-batches by those of :meth:`state` (beyond ``size``: the newest).

        Args:
            entries: What :meth:`state` returned.
        """
        self._items.clear()
        for kind, value in entries:
            if kind == "batch":
                self.remember(MetaBatch(*value))
            else:
                self.remember([TaskFeatures(*env) for env in value])
