"""The process group of a run: rank, world size, device, and the collectives it uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from metacrl.distributed.collectives import (
    all_gather_objects,
    all_gather_tasks,
    broadcast_object,
    mean_floats,
)
from metacrl.distributed.env import launch_info
from metacrl.distributed.gradients import average_gradients, average_tensors
from metacrl.regularizer import MetaCRLLearner

__all__ = ["DistributedContext"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run, and its collectives.

    The default is a single process: every method is then a no-op that returns its input, and
    no process group exists. :meth:`from_env` joins the process group that ``torchrun`` set up.

    Attributes:
        rank: Global rank (0 writes files and prints).
        world_size: Number of processes.
        local_rank: Rank on this machine (the GPU index with NCCL).
        device: The device this process trains on.
        backend: ``"nccl"`` or ``"gloo"``, or ``None`` for a single process.

    Example:
        >>> ctx = DistributedContext()
        >>> ctx.is_main, ctx.distributed, ctx.mean({"loss": 1.5})
        (True, False, {'loss': 1.5})
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @classmethod
    def from_env(
        cls, device: torch.device, env: Mapping[str, str] | None = None
    ) -> DistributedContext:
        """Join the run that ``torchrun`` launched, or return a single-process context.

        With ``WORLD_SIZE > 1`` in the environment: a CUDA ``device`` becomes
        ``cuda:LOCAL_RANK`` with the NCCL backend, any other device keeps its place with gloo;
        then ``torch.distributed.init_process_group`` is called (``env://``: ``MASTER_ADDR``,
        ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``), unless a group already exists.

        Args:
            device: The device asked for (``--device``).
            env: The environment (default: ``os.environ``).

        Returns:
            The context.

        Raises:
            RuntimeError: If several processes are launched but ``torch.distributed`` is not
                available in this build of PyTorch.

        Example:
            >>> DistributedContext.from_env(torch.device("cpu"), env={}).world_size
            1
        """
        info = launch_info(env)
        if not info.distributed:
            return cls(device=device)
        if not dist.is_available():
            raise RuntimeError(
                f"WORLD_SIZE={info.world_size} but this PyTorch build has no torch.distributed"
            )
        if device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"
        else:
            backend = "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
        return cls(info.rank, info.world_size, info.local_rank, device, backend)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process gets here (nothing for a single process)."""
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Return rank 0's ``obj`` everywhere (see :func:`broadcast_object`)."""
        return broadcast_object(obj, self.world_size)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Return every process's ``obj`` in rank order (see :func:`all_gather_objects`)."""
        return all_gather_objects(obj, self.world_size)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalars over the processes (see :func:`mean_floats`)."""
        return mean_floats(values, self.world_size, self.device)

    def gather_tasks(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Concatenate per-task tensors of all processes (see :func:`all_gather_tasks`)."""
        return all_gather_tasks(tensors, self.world_size)

    def average_gradients(self, parameters: Iterable[Tensor]) -> int:
        """Average ``.grad`` over the processes (see :func:`average_gradients`)."""
        return average_gradients(parameters, self.world_size)

    def average_buffers(self, module: nn.Module) -> int:
        """Average ``module``'s floating buffers (BatchNorm running statistics) over processes.

        Running statistics serve only ``eval()`` mode; each process updates them on its own
        tasks, and averaging keeps them alike on every process (integer counters such as
        ``num_batches_tracked`` are left alone).

        Args:
            module: The learner.

        Returns:
            The number of entries averaged (0 for a single process).
        """
        if not self.distributed:
            return 0
        return average_tensors(
            [b for b in module.buffers() if b.is_floating_point()], self.world_size
        )

    def broadcast_parameters(self, parameters: Iterable[Tensor]) -> None:
        """Copy rank 0's values of ``parameters`` to every process, in one flat broadcast.

        Keeps state that every process computes alike (MetaCRL's ``Xi`` and ``f_gr`` after
        the causal step) bit-identical even where GPU kernels are not deterministic.

        Args:
            parameters: Tensors of the same shapes, dtypes and device on every process.
        """
        if not self.distributed:
            return
        params = list(parameters)
        if not params:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            dist.broadcast(flat, src=0)
            offset = 0
            for p in params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def attach(self, learner: nn.Module) -> None:
        """Let a MetaCRL learner see the environments of the whole meta-batch.

        Sets :attr:`MetaCRLLearner.task_gather <metacrl.MetaCRLLearner.task_gather>`
        to :meth:`gather_tasks` when there are several processes; other learners need
        nothing (their tasks are independent until the gradients are averaged).

        Args:
            learner: The learner, plain or wrapped.
        """
        if self.distributed and isinstance(learner, MetaCRLLearner):
            learner.task_gather = self.gather_tasks

    def close(self, *, wait: bool = True) -> None:
        """Leave the process group (if this context is part of one).

        Args:
            wait: First wait until every process gets here (default), so that no process tears
                its gloo connections down while another still works: that aborted a process at
                exit (SIGABRT). Pass ``False`` when leaving on an error, where the others may
                never arrive.
        """
        if self.distributed and dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()
