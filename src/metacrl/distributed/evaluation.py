"""Put together the per-episode scores that the processes computed on their shares."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from metacrl.distributed.collectives import all_gather_objects

__all__ = ["gather_episodes"]


def gather_episodes(
    indices: Sequence[int], scores: Tensor, losses: Tensor, world_size: int
) -> tuple[Tensor, Tensor]:
    """Collect every process's episode scores and losses, in episode order.

    Validation and test episodes are split over the processes (shares may be unequal or
    empty); this puts them back together, sorted by episode index, so the mean and the
    confidence interval are those a single process would compute.

    Args:
        indices: The episode indices this process evaluated, in the order of ``scores``.
        scores: Their scores, ``[n_local]``.
        losses: Their query losses, ``[n_local]``.
        world_size: The number of processes.

    Returns:
        ``(scores, losses)`` of all episodes, ``[n_total]`` each, on the CPU.

    Example:
        >>> s, l = gather_episodes([1, 0], torch.tensor([0.2, 0.4]), torch.tensor([2.0, 1.0]), 1)
        >>> s.tolist(), l.tolist()
        ([0.4000000059604645, 0.20000000298023224], [1.0, 2.0])
    """
    if len(indices) != scores.numel() or scores.numel() != losses.numel():
        raise ValueError(
            f"{len(indices)} episode indices for {scores.numel()} scores and "
            f"{losses.numel()} losses"
        )
    local = (list(indices), scores.detach().cpu(), losses.detach().cpu())
    parts = all_gather_objects(local, world_size)
    order = [i for part in parts for i in part[0]]
    all_scores = torch.cat([part[1] for part in parts])
    all_losses = torch.cat([part[2] for part in parts])
    perm = torch.tensor(sorted(range(len(order)), key=order.__getitem__), dtype=torch.long)
    return all_scores[perm], all_losses[perm]
