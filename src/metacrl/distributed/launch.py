"""Start ``N`` local processes as ``torchrun`` would (for tests, benchmarks and notebooks)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
from torch.multiprocessing.spawn import spawn

__all__ = ["free_port", "spawn_local"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Returns:
        The port number.

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(
    local_rank: int,
    fn: Callable[..., Any],
    world_size: int,
    port: int,
    threads: int | None,
    args: tuple[Any, ...],
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    if threads is not None:
        torch.set_num_threads(threads)
    fn(*args)


def spawn_local(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple[Any, ...] = (),
    threads: int | None = None,
) -> None:
    """Run ``fn(*args)`` in ``world_size`` new processes on this machine and wait for them.

    Each process gets the environment ``torchrun --nproc_per_node world_size`` would give it
    (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``, a free
    ``MASTER_PORT``), so ``fn`` joins the group with
    :meth:`DistributedContext.from_env <metacrl.distributed.DistributedContext.from_env>`
    exactly as under ``torchrun``. ``fn`` must be importable (a module-level function), since
    processes are started with ``spawn``.

    Args:
        fn: The function each process runs.
        world_size: The number of processes (1: one process, no group).
        args: Positional arguments of ``fn`` (picklable).
        threads: ``torch.set_num_threads`` in each process (default: leave PyTorch's choice).

    Raises:
        torch.multiprocessing.ProcessRaisedException: If a process raises (with its trace).
    """
    port = free_port()
    spawn(  # type: ignore[no-untyped-call]
        _entry, args=(fn, world_size, port, threads, args), nprocs=world_size, join=True
    )
