"""What ``torchrun`` tells a process through its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["LaunchInfo", "launch_info"]


@dataclass(frozen=True)
class LaunchInfo:
    """This process's place among the processes of a run.

    Attributes:
        rank: Global rank, ``0..world_size-1`` (``RANK``).
        world_size: Number of processes over all machines (``WORLD_SIZE``).
        local_rank: Rank on this machine, which picks the GPU (``LOCAL_RANK``).

    Example:
        >>> LaunchInfo(rank=1, world_size=4, local_rank=1).distributed
        True
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def launch_info(env: Mapping[str, str] | None = None) -> LaunchInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by ``torchrun``).

    A process started without them (or with ``WORLD_SIZE=1``) is a single-process run.

    Args:
        env: The environment (default: ``os.environ``).

    Returns:
        The launch information.

    Raises:
        ValueError: If a variable is not an integer or the rank is out of range.

    Example:
        >>> launch_info({})
        LaunchInfo(rank=0, world_size=1, local_rank=0)
        >>> launch_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
        LaunchInfo(rank=3, world_size=4, local_rank=1)
    """
    env = os.environ if env is None else env
    world_size = _int(env, "WORLD_SIZE", 1)
    if world_size <= 1:
        return LaunchInfo()
    rank = _int(env, "RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is out of range for WORLD_SIZE={world_size}")
    return LaunchInfo(rank, world_size, _int(env, "LOCAL_RANK", 0))
