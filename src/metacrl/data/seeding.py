"""Seeded generators: every task is a pure function of ``(seed, index)``.

A task's random numbers come from its own :class:`numpy.random.Generator`, derived from the
dataset seed and the task's keys with :class:`numpy.random.SeedSequence`. So any worker can make
any task, in any order, and the result never depends on how many workers there are.
"""

from __future__ import annotations

import numpy as np

from metacrl.validation import check_int

__all__ = ["check_seed", "task_rng"]


def check_seed(seed: object) -> int:
    """Return ``seed`` if it is a non-negative integer.

    Args:
        seed: The dataset seed.

    Returns:
        ``seed`` as an ``int``.

    Raises:
        TypeError: If ``seed`` is not an integer.
        ValueError: If it is negative.

    Example:
        >>> check_seed(3)
        3
    """
    return check_int("seed", seed, minimum=0)


def task_rng(seed: int, *keys: int) -> np.random.Generator:
    """Return the generator of one task (or batch, or class bank) identified by ``keys``.

    Different key tuples give statistically independent streams; the same tuple always gives the
    same stream.

    Args:
        seed: The dataset seed (a non-negative integer).
        *keys: Non-negative integers naming the stream, e.g. a split tag and a task index.

    Returns:
        A fresh :class:`numpy.random.Generator`.

    Example:
        >>> float(task_rng(0, 5).random()) == float(task_rng(0, 5).random())
        True
    """
    return np.random.default_rng([seed, *keys])
