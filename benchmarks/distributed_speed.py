"""Time per meta-iteration: 1 process vs N gloo processes sharing each meta-batch (CPU).

Runs the training step of ``metacrl train`` (meta-step on this process's share of the tasks,
backward, gradient all-reduce, Adam step, MetaCRL state broadcast, metrics all-reduce) for
MAML and MAML + MetaCRL, first in 1 process, then in each of ``--world-sizes`` processes started
on this machine as ``torchrun`` would (gloo backend, ``--threads`` torch threads each), side by
side in one run. The global meta-batch is the same for every row, so every row computes the
same updates; time per iteration includes making the tasks (each process makes only its own).

    python benchmarks/distributed_speed.py                    # Conv4-32, 5-way 1-shot, 32x32
    python benchmarks/distributed_speed.py --quick            # a smoke run in seconds

On a machine with other jobs the processes compete for cores: the speed-up is only meaningful
with at least ``max(world sizes) x threads`` idle cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from metacrl.cli.build import build_dataset, build_learner, build_model
from metacrl.cli.config import TrainConfig
from metacrl.data import TaskLoader
from metacrl.distributed import DistributedContext, spawn_local

CPU = torch.device("cpu")


def job(settings: dict[str, Any], metacrl: bool, warmup: int, iters: int, out: str) -> None:
    """One process of a timed run; rank 0 writes the seconds per iteration to ``out``."""
    ctx = DistributedContext.from_env(CPU)
    try:
        cfg = TrainConfig(**settings).resolved()
        torch.manual_seed(cfg.seed)
        learner = build_learner(cfg, build_model(cfg), metacrl)
        ctx.attach(learner)
        params = [p for p in learner.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.meta_lr)
        shared = list(getattr(learner, "regularizer", torch.nn.Module()).parameters())
        data = build_dataset(cfg, "train", (warmup + iters) * cfg.meta_batch, cfg.seed)
        loader = TaskLoader(data, batch_size=cfg.meta_batch, shard=(ctx.rank, ctx.world_size))
        start = 0.0
        for i, batch in enumerate(loader):
            if i == warmup:
                ctx.barrier()
                start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out_ = learner.meta_step(*batch)
            out_.loss.backward()
            ctx.average_gradients(params)
            opt.step()
            ctx.broadcast_parameters(shared)
            ctx.average_buffers(learner)
            ctx.mean({**out_.summary(), "stop": 0.0})
        ctx.barrier()
        if ctx.is_main:
            Path(out).write_text(json.dumps((time.perf_counter() - start) / iters))
    finally:
        ctx.close()


def timed(settings: dict[str, Any], metacrl: bool, world: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "seconds.json")
        spawn_local(
            job,
            world,
            args=(settings, metacrl, args.warmup, args.iterations, out),
            threads=args.threads,
        )
        return float(json.loads(Path(out).read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--meta-batch", type=int, default=4, help="global meta-batch")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--inner-steps", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20, help="timed meta-iterations")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.image_size, args.ways, args.queries = 4, 16, 3, 2
        args.iterations, args.warmup, args.inner_steps = 2, 1, 1
    settings = dict(
        meta_batch=args.meta_batch,
        hidden=args.hidden,
        image_size=args.image_size,
        ways=args.ways,
        queries=args.queries,
        inner_steps=args.inner_steps,
    )
    print(
        f"CPU, gloo; {args.threads} torch thread(s) per process; Conv4-{args.hidden} at "
        f"{args.image_size}x{args.image_size}, {args.ways}-way 1-shot {args.queries}-query, "
        f"{args.inner_steps} inner steps, second order; global meta-batch {args.meta_batch}; "
        f"{args.iterations} timed iterations after {args.warmup} warm-up"
    )
    worlds = [1, *[w for w in args.world_sizes if w != 1]]
    head = " | ".join(f"{w} process{'es' * (w > 1)} (ms/it)" for w in worlds)
    print(f"\n| method | {head} | " + " | ".join(f"speed-up x{w}" for w in worlds[1:]) + " |")
    print("| --- " * (1 + 2 * len(worlds) - 1) + "|")
    for label, metacrl in (("MAML", False), ("MAML + MetaCRL", True)):
        seconds = [timed(settings, metacrl, w, args) for w in worlds]
        cells = [f"{1000 * s:.0f}" for s in seconds]
        ratios = [f"{seconds[0] / s:.2f}" for s in seconds[1:]]
        print(f"| {label} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
