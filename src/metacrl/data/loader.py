"""TaskLoader: meta-batches ``[T, ...]`` from a task dataset, the same stream for any workers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from metacrl.data.base import Task
from metacrl.distributed.sharding import shard_bounds
from metacrl.validation import check_int

__all__ = ["SequentialTaskBatches", "TaskLoader", "stack_tasks"]


class _Tasks(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Task: ...


def stack_tasks(tasks: Sequence[Task]) -> Task:
    """Stack tasks into a meta-batch: each of the four tensors gains a leading task axis.

    Args:
        tasks: ``(x_spt, y_spt, x_qry, y_qry)`` tuples of equal shapes.

    Returns:
        ``(x_spt [T, ...], y_spt [T, ...], x_qry [T, ...], y_qry [T, ...])``.

    Example:
        >>> t = (torch.zeros(2, 1), torch.zeros(2), torch.zeros(3, 1), torch.zeros(3))
        >>> [tuple(x.shape) for x in stack_tasks([t, t])]
        [(2, 2, 1), (2, 2), (2, 3, 1), (2, 3)]
    """
    x_spt, y_spt, x_qry, y_qry = zip(*tasks, strict=True)
    return torch.stack(x_spt), torch.stack(y_spt), torch.stack(x_qry), torch.stack(y_qry)


class SequentialTaskBatches:
    """A batch sampler over consecutive task indices, from batch ``start`` to ``stop - 1``.

    Batch ``b`` is tasks ``b * batch_size`` to ``(b + 1) * batch_size - 1`` (the last one
    possibly shorter). With ``world_size > 1``, process ``rank`` takes only its contiguous
    share of each batch (:func:`~metacrl.distributed.shard_bounds`); batches whose share is
    empty are skipped.

    Args:
        num_tasks: The dataset's length.
        batch_size: Tasks per batch.
        start: The first batch.
        stop: One past the last batch.
        rank: This process's rank (default: ``0``).
        world_size: The number of processes sharing each batch (default: ``1``).

    Example:
        >>> list(SequentialTaskBatches(7, 3, start=1, stop=3))
        [[3, 4, 5], [6]]
        >>> list(SequentialTaskBatches(8, 4, start=0, stop=2, rank=1, world_size=2))
        [[2, 3], [6, 7]]
    """

    def __init__(
        self,
        num_tasks: int,
        batch_size: int,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_tasks, self.batch_size, self.start, self.stop = num_tasks, batch_size, start, stop
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start, self.stop):
            first = b * self.batch_size
            tasks = list(range(first, min(first + self.batch_size, self.num_tasks)))
            if self.world_size > 1:
                lo, hi = shard_bounds(len(tasks), self.rank, self.world_size)
                tasks = tasks[lo:hi]
            if tasks:
                yield tasks

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.stop - self.start
        return sum(1 for _ in self)


def _init_worker(worker_id: int) -> None:
    """Keep each worker on one thread: tasks are small, and workers x threads oversubscribe."""
    torch.set_num_threads(1)


class TaskLoader:
    """Iterate over a task dataset in meta-batches stacked to ``[T, ...]``.

    Batch ``b`` holds tasks ``b * batch_size`` to ``(b + 1) * batch_size - 1``, taken in order
    from batch ``start``, through :class:`torch.utils.data.DataLoader` (so tasks can be made in
    ``num_workers`` processes). Since each task is a pure function of its index, the stream is
    the same for any ``num_workers``, and ``start=k`` resumes exactly where a run that consumed
    ``k`` batches stopped. With ``num_batches=None`` the loader goes through the dataset once
    (a short last batch included, unless ``drop_last``); a dataset is cheap to make long (tasks
    are generated on demand), so set its ``batchsz`` to ``iterations * batch_size`` for a long
    run. Worker processes use one thread each.

    A dataset whose confounder is shared by a meta-batch (:class:`ConfoundedShapes` in training)
    says so with ``required_batch_size``; the loader's ``batch_size`` must match it.

    Args:
        dataset: A map-style dataset of tasks (``len`` and ``ds[i]`` -> 4 tensors).
        batch_size: Tasks per meta-batch ``T`` (default: ``4``).
        num_workers: Worker processes (0: make tasks in the main process; default: ``0``).
        start: The first batch to yield (to resume a run; default: ``0``).
        num_batches: How many batches to yield (default: up to the end of the dataset).
        pin_memory: Pin batches in page-locked memory (for fast copies to a GPU; default:
            ``False``).
        drop_last: Skip a last batch shorter than ``batch_size`` (default: ``False``).
        persistent_workers: Keep worker processes alive between passes over the loader (safe:
            the datasets are stateless; off by default since a training stream is iterated
            once).
        shard: ``(rank, world_size)``: yield only this process's contiguous share of every
            batch (data-parallel training, see :mod:`metacrl.distributed`); ``batch_size``,
            ``start`` and ``num_batches`` still count whole batches (default: ``(0, 1)``,
            everything).

    Raises:
        TypeError: If a count is not an integer.
        ValueError: If a count is out of range, ``num_batches`` runs past the dataset's end, or
            ``batch_size`` differs from the dataset's ``required_batch_size``.

    Example:
        >>> from metacrl.data import Sinusoid
        >>> loader = TaskLoader(Sinusoid(batchsz=12, k_shot=5, k_query=5), batch_size=4)
        >>> len(loader), [tuple(t.shape) for t in next(iter(loader))]
        (3, [(4, 5, 1), (4, 5, 1), (4, 5, 1), (4, 5, 1)])
    """

    def __init__(
        self,
        dataset: _Tasks,
        batch_size: int = 4,
        num_workers: int = 0,
        start: int = 0,
        num_batches: int | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        persistent_workers: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.dataset = dataset
        rank, world_size = shard
        self.world_size = check_int("world_size", world_size)
        self.rank = check_int("rank", rank, minimum=0)
        if self.rank >= self.world_size:
            raise ValueError(f"shard rank {self.rank} is out of range for {self.world_size}")
        self.batch_size = check_int("batch_size", batch_size)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.start = check_int("start", start, minimum=0)
        self.pin_memory = bool(pin_memory)
        self.drop_last = bool(drop_last)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        required = getattr(dataset, "required_batch_size", None)
        if required is not None and required != self.batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} differs from the dataset's meta_batch_size="
                f"{required}: its confounder is drawn per meta-batch of {required} tasks, so "
                f"loader batches would straddle confounder batches; use batch_size={required}"
            )
        num_tasks = len(dataset)
        rounding = math.floor if self.drop_last else math.ceil
        available = int(rounding(num_tasks / self.batch_size))
        if self.start > available:
            raise ValueError(
                f"start={self.start} is past the end: the dataset's {num_tasks} tasks make "
                f"{available} batches of {self.batch_size}"
            )
        if num_batches is None:
            self.num_batches = available - self.start
        else:
            self.num_batches = check_int("num_batches", num_batches, minimum=0)
            if self.start + self.num_batches > available:
                raise ValueError(
                    f"start={self.start} + num_batches={self.num_batches} needs "
                    f"{(self.start + self.num_batches) * self.batch_size} tasks but the dataset "
                    f"has {num_tasks} ({available} batches of {self.batch_size}); make it "
                    "longer (its batchsz)"
                )
        self._loader: DataLoader[Task] | None = None

    def _sampler(self) -> SequentialTaskBatches:
        return SequentialTaskBatches(
            len(self.dataset),
            self.batch_size,
            self.start,
            self.start + self.num_batches,
            self.rank,
            self.world_size,
        )

    def task_indices(self) -> list[int]:
        """Return the task indices this loader yields, in order.

        Returns:
            The indices of the tasks of every batch yielded, flattened.

        Example:
            >>> from metacrl.data import Sinusoid
            >>> TaskLoader(Sinusoid(batchsz=6), batch_size=3, shard=(0, 2)).task_indices()
            [0, 3]
        """
        return [i for batch in self._sampler() for i in batch]

    def _make_loader(self) -> DataLoader[Task]:
        sampler = self._sampler()
        dataset: Dataset[Task] = self.dataset  # type: ignore[assignment]
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=stack_tasks,
            pin_memory=self.pin_memory,
            worker_init_fn=_init_worker if self.num_workers > 0 else None,
            persistent_workers=self.persistent_workers,
        )

    def __iter__(self) -> Iterator[Task]:
        if self._loader is None or not self.persistent_workers:
            self._loader = self._make_loader()
        return iter(self._loader)

    def __len__(self) -> int:
        return self.num_batches if self.world_size == 1 else len(self._sampler())

    def __repr__(self) -> str:
        return (
            f"TaskLoader({self.dataset!r}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers}, start={self.start}, num_batches={self.num_batches})"
        )
