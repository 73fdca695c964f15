"""Average the meta-gradients of all processes: one flattened all-reduce per meta-batch."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["average_gradients", "average_tensors"]


def average_gradients(parameters: Iterable[Tensor], world_size: int) -> int:
    """Replace every parameter's ``.grad`` by its mean over the ``world_size`` processes.

    Gradients are flattened into one bucket per (device, dtype), all-reduced with ``SUM`` and
    divided by ``world_size``, then copied back. Parameters whose ``.grad`` is ``None`` are left
    alone (so an optimiser keeps skipping them); every process must have gradients on the same
    parameters, which holds since all run the same code on equal shares. With each process's
    loss the mean over its ``B / N`` tasks, the result is the gradient of the mean over all
    ``B`` tasks (up to summation order). A single process (``world_size == 1``) returns at once.

    Args:
        parameters: The learner's parameters (θ, and ``Xi``/``f_gr`` for MetaCRL).
        world_size: The number of processes.

    Returns:
        The number of gradient entries averaged (0 for a single process).

    Example:
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> (2 * w).sum().backward()
        >>> average_gradients([w], world_size=1), w.grad.tolist()    # nothing to average
        (0, [2.0, 2.0, 2.0])
    """
    if world_size <= 1:
        return 0
    return average_tensors([p.grad for p in parameters if p.grad is not None], world_size)


def average_tensors(tensors: Iterable[Tensor], world_size: int) -> int:
    """Replace each tensor, in place, by its mean over the processes (one flat bucket per dtype).

    Every process must pass tensors of the same shapes, dtypes and devices, in the same order.

    Args:
        tensors: Floating tensors (gradients, or BatchNorm running statistics).
        world_size: The number of processes.

    Returns:
        The number of entries averaged (0 for a single process).

    Example:
        >>> t = torch.ones(2)
        >>> average_tensors([t], world_size=1), t.tolist()
        (0, [1.0, 1.0])
    """
    if world_size <= 1:
        return 0
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.device, t.dtype), []).append(t)
    count = 0
    with torch.no_grad():
        for group in buckets.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat /= world_size
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset : offset + n].view_as(t))
                offset += n
            count += offset
    return count
