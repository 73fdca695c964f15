"""Which tasks of a meta-batch each process takes."""

from __future__ import annotations

__all__ = ["check_meta_batch", "shard_bounds"]


def check_meta_batch(meta_batch: int, world_size: int) -> int:
    """Return the tasks per process of a global meta-batch; raise if it does not split evenly.

    Equal shares are what makes ``N`` processes with ``meta_batch / N`` tasks each give the
    same meta-gradient as one process with ``meta_batch`` tasks (the mean of equal-size means
    is the mean), up to rounding: equal in float64, while in float32 the differences grow over
    the iterations of a run.

    Args:
        meta_batch: The global meta-batch ``B`` (``--meta-batch``).
        world_size: The number of processes ``N``.

    Returns:
        ``B // N``.

    Raises:
        ValueError: If ``B`` is not a multiple of ``N``.

    Example:
        >>> check_meta_batch(8, 2)
        4
        >>> check_meta_batch(3, 2)
        Traceback (most recent call last):
            ...
        ValueError: --meta-batch 3 does not split over 2 processes: ...
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if meta_batch % world_size:
        raise ValueError(
            f"--meta-batch {meta_batch} does not split over {world_size} processes: each "
            f"process takes meta_batch / world_size tasks of every meta-batch, so use a "
            f"multiple of {world_size} (e.g. {world_size * max(1, meta_batch // world_size)})"
        )
    return meta_batch // world_size


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Return the slice ``[start, stop)`` of ``size`` items that process ``rank`` takes.

    Shares are contiguous and in rank order, so concatenating them in rank order gives back
    the whole; they differ in length by at most one (equal when ``world_size`` divides
    ``size``), and some are empty when ``size < world_size``.

    Args:
        size: The number of items (tasks of one meta-batch).
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: The number of processes.

    Returns:
        ``(rank * size // world_size, (rank + 1) * size // world_size)``.

    Example:
        >>> [shard_bounds(4, r, 2) for r in range(2)]
        [(0, 2), (2, 4)]
        >>> [shard_bounds(3, r, 2) for r in range(2)]
        [(0, 1), (1, 3)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in 0..{world_size - 1}, got {rank}")
    return rank * size // world_size, (rank + 1) * size // world_size
