"""The few collectives a training run needs beyond the gradients, each a no-op alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_objects", "all_gather_tasks", "broadcast_object", "mean_floats"]


def all_gather_tasks(tensors: Sequence[Tensor], world_size: int) -> list[Tensor]:
    """Concatenate, along the task axis (dim 0) and in rank order, each tensor of every process.

    Rank ``r`` holds tasks ``[r B/N, (r+1) B/N)`` of a meta-batch, so the result holds the
    whole meta-batch in its original order. Every process must pass tensors of the same shapes
    and dtypes (equal shares of one meta-batch do).

    Args:
        tensors: Per-task tensors ``[T_local, ...]``, on the process's device.
        world_size: The number of processes.

    Returns:
        ``[T_local * world_size, ...]`` tensors (the inputs themselves for one process).

    Example:
        >>> [t.shape for t in all_gather_tasks([torch.zeros(2, 5)], world_size=1)]
        [torch.Size([2, 5])]
    """
    if world_size <= 1:
        return list(tensors)
    gathered = []
    for t in tensors:
        t = t.detach().contiguous()
        parts = [torch.empty_like(t) for _ in range(world_size)]
        dist.all_gather(parts, t)
        gathered.append(torch.cat(parts))
    return gathered


def mean_floats(
    values: dict[str, float], world_size: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Average a dictionary of scalars over the processes (one all-reduce, in float64).

    Every process must pass the same keys in the same order.

    Args:
        values: The scalars of this process.
        world_size: The number of processes.
        device: Where the communication buffer lives (the GPU with NCCL).

    Returns:
        The means, under the same keys (``values`` itself for one process).

    Example:
        >>> mean_floats({"loss": 0.5, "accuracy": 0.75}, world_size=1)
        {'loss': 0.5, 'accuracy': 0.75}
    """
    if world_size <= 1:
        return values
    buffer = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    buffer /= world_size
    return dict(zip(values, buffer.tolist(), strict=True))


def all_gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Return every process's ``obj`` (picklable), in rank order.

    Args:
        obj: This process's object.
        world_size: The number of processes.

    Returns:
        ``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` for one process).

    Example:
        >>> all_gather_objects({"scores": [0.5]}, world_size=1)
        [{'scores': [0.5]}]
    """
    if world_size <= 1:
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, world_size: int, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every process (the others' argument is ignored).

    Used to share what only rank 0 reads from disk (a checkpoint), so the other processes need
    not see rank 0's file system.

    Args:
        obj: The object on rank ``src`` (anything, e.g. ``None``, elsewhere).
        world_size: The number of processes.
        src: The sending rank (default: ``0``).

    Returns:
        Rank ``src``'s object (``obj`` itself for one process).

    Example:
        >>> broadcast_object("checkpoint", world_size=1)
        'checkpoint'
    """
    if world_size <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
