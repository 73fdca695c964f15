"""Data-parallel meta-training over processes, on ``torch.distributed`` (NCCL or gloo).

Each process takes an equal, contiguous share of every meta-batch's tasks, runs their inner
loops, and the meta-gradients are averaged once per meta-batch; MetaCRL's causal step sees the
environments of the whole meta-batch on every process. The updates equal one process's up to
rounding: in float64 the runs stay equal, in float32 the rounding differences grow over the
iterations and the runs drift apart. Launch ``metacrl train`` with ``torchrun``; see the
*Multi-GPU and multi-node* page of the documentation.
"""

from metacrl.distributed.collectives import (
    all_gather_objects,
    all_gather_tasks,
    broadcast_object,
    mean_floats,
)
from metacrl.distributed.context import DistributedContext
from metacrl.distributed.env import LaunchInfo, launch_info
from metacrl.distributed.evaluation import gather_episodes
from metacrl.distributed.gradients import average_gradients
from metacrl.distributed.launch import free_port, spawn_local
from metacrl.distributed.sharding import check_meta_batch, shard_bounds

__all__ = [
    "DistributedContext",
    "LaunchInfo",
    "all_gather_objects",
    "all_gather_tasks",
    "average_gradients",
    "broadcast_object",
    "check_meta_batch",
    "free_port",
    "gather_episodes",
    "launch_info",
    "mean_floats",
    "shard_bounds",
    "spawn_local",
]
