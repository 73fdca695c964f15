"""Meta-batches: validation of the ``[T, N*K, ...]`` tensors every learner takes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from metacrl.learners.features import spread
from metacrl.typing import Problem

__all__ = ["MetaBatch", "as_meta_batch"]

_NAMES = ("x_spt", "y_spt", "x_qry", "y_qry")


@dataclass(frozen=True)
class MetaBatch:
    """A validated meta-batch of ``T`` tasks.

    Attributes:
        x_spt: Support inputs, ``[T, n_support, *sample_shape]``.
        y_spt: Support targets, ``[T, n_support]`` (class indices) or
            ``[T, n_support, *target_shape]`` (regression).
        x_qry: Query inputs, ``[T, n_query, *sample_shape]``.
        y_qry: Query targets, shaped like ``y_spt`` with ``n_query`` examples.
        num_labels: For classification, ``1 + the largest label``; 0 for regression (the
            default).

    Build it with :func:`as_meta_batch` (or a learner's ``as_batch``), which checks the shapes
    and dtypes; the constructor itself checks nothing.

    Example:
        >>> b = MetaBatch(torch.zeros(3, 5, 2), torch.zeros(3, 5, dtype=torch.long),
        ...               torch.zeros(3, 7, 2), torch.ones(3, 7, dtype=torch.long), num_labels=2)
        >>> b.num_tasks
        3
        >>> [tuple(t.shape) for t in b.task(0)]
        [(5, 2), (5,), (7, 2), (7,)]
    """

    x_spt: Tensor
    y_spt: Tensor
    x_qry: Tensor
    y_qry: Tensor
    num_labels: int = 0

    @property
    def num_tasks(self) -> int:
        """The number of tasks ``T``."""
        return int(self.x_spt.shape[0])

    def task(self, t: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return task ``t`` as ``(x_spt, y_spt, x_qry, y_qry)`` without the task axis.

        Args:
            t: The task's index along the first axis (negative indices count from the end).

        Returns:
            Views of the four tensors at index ``t``.

        Raises:
            IndexError: If ``t`` is out of range.

        Example:
            >>> b = MetaBatch(torch.randn(2, 4, 3), torch.zeros(2, 4, dtype=torch.long),
            ...               torch.randn(2, 6, 3), torch.zeros(2, 6, dtype=torch.long), 1)
            >>> x_spt, y_spt, x_qry, y_qry = b.task(1)
            >>> tuple(x_spt.shape), tuple(y_qry.shape)
            ((4, 3), (6,))
        """
        return self.x_spt[t], self.y_spt[t], self.x_qry[t], self.y_qry[t]

    def with_queries(self, count: int) -> MetaBatch:
        """Return the batch with ``count`` query examples per task, spread over the query set.

        The examples kept are those of :func:`~metacrl.learners.features.spread` (evenly
        spaced, so a class-ordered query set keeps every class when ``count`` is a multiple of
        the ways). MetaCRL's ``env_queries`` uses it to make its environments cheaper.

        Args:
            count: Query examples to keep per task, ``1 <= count <= n_query``.

        Returns:
            A new :class:`MetaBatch` sharing the support tensors.

        Raises:
            ValueError: If ``count`` is out of range.

        Example:
            >>> b = MetaBatch(torch.randn(1, 3, 2), torch.arange(3)[None], torch.randn(1, 6, 2),
            ...               torch.arange(3).repeat_interleave(2)[None], num_labels=3)
            >>> b.with_queries(3).y_qry.tolist()
            [[0, 1, 2]]
        """
        index = spread(int(self.x_qry.shape[1]), count)
        return MetaBatch(
            self.x_spt, self.y_spt, self.x_qry[:, index], self.y_qry[:, index], self.num_labels
        )

    def detach(self) -> MetaBatch:
        """Return a copy whose tensors carry no autograd history.

        Returns:
            A new :class:`MetaBatch` of detached tensors (sharing storage with these) and the
            same ``num_labels``.

        Example:
            >>> x = torch.randn(1, 2, 3, requires_grad=True)
            >>> y = torch.zeros(1, 2, dtype=torch.long)
            >>> MetaBatch(x * 2, y, x * 2, y, 1).detach().x_spt.requires_grad
            False
        """
        return MetaBatch(
            self.x_spt.detach(),
            self.y_spt.detach(),
            self.x_qry.detach(),
            self.y_qry.detach(),
            self.num_labels,
        )


def as_meta_batch(
    x_spt: Tensor,
    y_spt: Tensor,
    x_qry: Tensor,
    y_qry: Tensor,
    *,
    problem: Problem,
    device: torch.device,
    dtype: torch.dtype,
) -> MetaBatch:
    """Check a meta-batch and move it to the learner's device and dtype.

    Args:
        x_spt: Support inputs ``[T, n_support, ...]``.
        y_spt: Support targets ``[T, n_support]`` (classification) or ``[T, n_support, ...]``.
        x_qry: Query inputs ``[T, n_query, ...]`` with the same sample shape as ``x_spt``.
        y_qry: Query targets.
        problem: ``"classification"`` (integer labels) or ``"regression"`` (float targets).
        device: Where the learner's parameters live; inputs are moved there.
        dtype: The learner's floating dtype; floating inputs are cast to it.

    Returns:
        The validated :class:`MetaBatch`.

    Raises:
        TypeError: If an argument is not a tensor or has the wrong dtype.
        ValueError: If shapes disagree, inputs are not finite, or labels are negative.

    Example:
        >>> b = as_meta_batch(torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long),
        ...                   torch.zeros(2, 10, 3), torch.zeros(2, 10, dtype=torch.long),
        ...                   problem="classification", device=torch.device("cpu"),
        ...                   dtype=torch.float32)
        >>> b.num_tasks, b.num_labels
        (2, 1)
    """
    tensors = (x_spt, y_spt, x_qry, y_qry)
    for name, t in zip(_NAMES, tensors, strict=True):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, x in (("x_spt", x_spt), ("x_qry", x_qry)):
        if x.dim() < 3:
            raise ValueError(
                f"{name} must be shaped [tasks, examples, *sample_shape] (at least 3 dims), "
                f"got shape {tuple(x.shape)}; add a task axis with .unsqueeze(0) for one task"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{name} must be a floating-point tensor, got {x.dtype}; convert images with "
                ".float() (and scale to [0, 1]) before meta_step"
            )
    for name, y in (("y_spt", y_spt), ("y_qry", y_qry)):
        if y.dim() < 2:
            raise ValueError(
                f"{name} must be shaped [tasks, examples, ...] (at least 2 dims), got shape "
                f"{tuple(y.shape)}"
            )
    if x_spt.shape[2:] != x_qry.shape[2:]:
        raise ValueError(
            f"support and query examples differ in shape: x_spt {tuple(x_spt.shape[2:])} vs "
            f"x_qry {tuple(x_qry.shape[2:])}"
        )
    if (
        x_spt.shape[0] != x_qry.shape[0]
        or y_spt.shape[0] != x_spt.shape[0]
        or (y_qry.shape[0] != x_spt.shape[0])
    ):
        sizes = ", ".join(f"{n}={int(t.shape[0])}" for n, t in zip(_NAMES, tensors, strict=True))
        raise ValueError(f"the number of tasks (first axis) differs: {sizes}")
    for xn, yn, x, y in (("x_spt", "y_spt", x_spt, y_spt), ("x_qry", "y_qry", x_qry, y_qry)):
        if y.shape[1] != x.shape[1]:
            raise ValueError(
                f"{yn} must hold one target per example of {xn}: {xn} is {tuple(x.shape)}, "
                f"{yn} is {tuple(y.shape)}"
            )

    num_labels = 0
    if problem == "classification":
        for name, y in (("y_spt", y_spt), ("y_qry", y_qry)):
            if y.dim() != 2:
                raise ValueError(
                    f"{name} must be class indices shaped [tasks, examples], got shape "
                    f"{tuple(y.shape)}"
                )
            if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
                raise TypeError(
                    f"{name} must hold integer class indices (torch.long), got {y.dtype}; "
                    "for regression targets use loss='mse'"
                )
        y_spt, y_qry = y_spt.long(), y_qry.long()
        lo = int(torch.minimum(y_spt.min(), y_qry.min()))
        if lo < 0:
            raise ValueError(f"labels must lie in 0..n_way-1, found label {lo}")
        num_labels = 1 + int(torch.maximum(y_spt.max(), y_qry.max()))
    else:
        for name, y in (("y_spt", y_spt), ("y_qry", y_qry)):
            if not y.is_floating_point():
                raise TypeError(f"{name} must be floating-point regression targets, got {y.dtype}")
        if y_spt.shape[2:] != y_qry.shape[2:]:
            raise ValueError(
                f"support and query targets differ in shape: y_spt {tuple(y_spt.shape[2:])} vs "
                f"y_qry {tuple(y_qry.shape[2:])}"
            )
        y_spt, y_qry = y_spt.to(device=device, dtype=dtype), y_qry.to(device=device, dtype=dtype)

    x_spt = x_spt.to(device=device, dtype=dtype)
    x_qry = x_qry.to(device=device, dtype=dtype)
    for name, t in (("x_spt", x_spt), ("x_qry", x_qry)) + (
        (("y_spt", y_spt), ("y_qry", y_qry)) if problem == "regression" else ()
    ):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf values")
    return MetaBatch(x_spt, y_spt.to(device), x_qry, y_qry.to(device), num_labels)
