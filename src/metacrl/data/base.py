"""The contract shared by every task dataset of :mod:`metacrl.data`."""

from __future__ import annotations

import abc

from torch import Tensor
from torch.utils.data import Dataset

from metacrl.data.seeding import check_seed
from metacrl.validation import check_index, check_int

__all__ = ["Task", "TaskDataset"]

Task = tuple[Tensor, Tensor, Tensor, Tensor]
"""One task ``(x_spt, y_spt, x_qry, y_qry)`` without the task axis."""


class TaskDataset(Dataset[Task], abc.ABC):
    """A map-style dataset of few-shot tasks (episodes), usable by :mod:`torch.utils.data`.

    ``len(ds)`` is the number of tasks (``batchsz``, as in dragen1860/MAML-Pytorch) and
    ``ds[i]`` returns task ``i`` as ``(x_spt, y_spt, x_qry, y_qry)`` without the task axis. Task
    ``i`` is a pure function of ``(seed, i)``: the same index always gives the same task,
    whichever process asks, so loading with any number of workers yields the same stream. Stack
    tasks into meta-batches ``[T, ...]`` with :class:`~metacrl.data.TaskLoader`.

    Args:
        batchsz: The number of tasks.
        seed: The seed of the task stream (a non-negative integer).

    Raises:
        TypeError: If ``batchsz`` or ``seed`` is not an integer.
        ValueError: If ``batchsz < 1`` or ``seed < 0``.

    Example:
        A subclass only says how task ``index`` is made, from its own seeded generator:

        >>> from metacrl.data import TaskLoader
        >>> from metacrl.data.seeding import task_rng
        >>> class Shifts(TaskDataset):
        ...     def task(self, index):
        ...         shift = float(task_rng(self.seed, index).normal())
        ...         x = torch.linspace(-1, 1, 8).unsqueeze(-1)
        ...         return x[:4], x[:4] + shift, x[4:], x[4:] + shift
        >>> ds = Shifts(batchsz=6, seed=0)
        >>> bool(torch.equal(ds[2][1], ds[2][1])), len(TaskLoader(ds, batch_size=3))
        (True, 2)
    """

    def __init__(self, batchsz: int, seed: int) -> None:
        self.batchsz = check_int("batchsz", batchsz)
        self.seed = check_seed(seed)

    def __len__(self) -> int:
        return self.batchsz

    def __getitem__(self, index: int) -> Task:
        return self.task(check_index(index, self.batchsz))

    @abc.abstractmethod
    def task(self, index: int) -> Task:
        """Make task ``index`` (already checked to lie in ``0..len-1``).

        Args:
            index: The task index.

        Returns:
            ``(x_spt, y_spt, x_qry, y_qry)`` without the task axis.

        Example:
            ``ds[i]`` checks the index (negative ones count from the end), then calls it:

            >>> from metacrl.data import Sinusoid
            >>> ds = Sinusoid(batchsz=3)
            >>> all(torch.equal(a, b) for a, b in zip(ds[-1], ds.task(2), strict=True))
            True
        """
