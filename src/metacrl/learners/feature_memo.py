"""A memo of backbone outputs, so that one forward pass can serve two consumers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import Tensor

__all__ = ["FeatureMemo"]


def _key(x: Tensor) -> tuple[object, ...]:
    """Identify a view of a meta-batch (the same task's inputs, whatever the view object)."""
    return (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype, x.device)


class FeatureMemo:
    """Features computed once per input tensor, served by :meth:`features` while active.

    A learner whose inner loop leaves the backbone at θ (ANIL, ProtoNet) computes every task's
    features once; MetaCRL takes them (detached) as its environments, and the meta-step takes
    the same tensors (with their graph) instead of running the backbone again.

    Args:
        backbone: The feature extractor, called on a miss.

    Example:
        >>> memo = FeatureMemo(model.features)
        >>> x0 = x[0]
        >>> with memo.serving([(x0, torch.zeros(6, 8))]):
        ...     hit = memo.features(x0)
        >>> float(hit.abs().sum()), memo.features(x0).shape    # outside the block: computed
        (0.0, torch.Size([6, 8]))
    """

    def __init__(self, backbone: Callable[[Tensor], Tensor]) -> None:
        self.backbone = backbone
        self._served: dict[tuple[object, ...], Tensor] | None = None

    def features(self, x: Tensor) -> Tensor:
        """Return the served features of ``x``, or ``backbone(x)``.

        Args:
            x: Inputs ``[n, ...]`` (the same tensor view that was served).

        Returns:
            The features ``[n, feature_dim]``.
        """
        if self._served is not None:
            hit = self._served.get(_key(x))
            if hit is not None:
                return hit
        return self.backbone(x)

    @contextmanager
    def serving(self, computed: Iterable[tuple[Tensor, Tensor]]) -> Iterator[None]:
        """Serve the given features of each input inside the block.

        Args:
            computed: ``(inputs, features)`` pairs.

        Yields:
            Nothing; the memo is cleared when the block ends.
        """
        self._served = {_key(x): f for x, f in computed}
        try:
            yield
        finally:
            self._served = None
