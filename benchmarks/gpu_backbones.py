"""Time one second-order MAML meta-step of each backbone; print step time and peak memory.

Meant for a GPU (fp32, bf16 autocast, channels_last), it also runs on a CPU:

    python benchmarks/gpu_backbones.py                     # cuda when present, else cpu
    python benchmarks/gpu_backbones.py --device cpu --quick  # a smoke run in seconds

Setting: 5-way 1-shot, 15 queries per class, 5 inner steps at 0.01, second order, meta-batch 4
(2 for ResNet-12), 84x84 inputs (the MAML protocol, Finn et al., 2017). Each row is the median of
``--repeats`` timed steps after ``--warmup`` untimed ones, synchronised on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from contextlib import nullcontext

import torch
from timing import time_meta_steps
from torch import nn

from metacrl import MAML
from metacrl.models import Conv4, ResNet12


def meta_batch(tasks: int, size: int, device: torch.device, n_way: int = 5, k_query: int = 15):
    x_spt = torch.randn(tasks, n_way, 3, size, size, device=device)
    x_qry = torch.randn(tasks, n_way * k_query, 3, size, size, device=device)
    y_spt = torch.arange(n_way, device=device).expand(tasks, -1)
    y_qry = torch.arange(n_way, device=device).repeat(k_query).expand(tasks, -1)
    return x_spt, y_spt, x_qry, y_qry


def time_step(
    make: Callable[[], nn.Module],
    device: torch.device,
    tasks: int,
    size: int,
    inner_steps: int,
    bf16: bool,
    channels_last: bool,
    warmup: int,
    repeats: int,
) -> tuple[float, float]:
    torch.manual_seed(0)
    model = make().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    learner = MAML(model, inner_lr=0.01, inner_steps=inner_steps)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    batch = meta_batch(tasks, size, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = time_meta_steps(
        learner, batch, opt, autocast, device, warmup, repeats, require_finite=True
    )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="32x32, 1 inner step, 1 repeat")
    parser.add_argument(
        "--backbones",
        nargs="+",
        default=["Conv4-32", "Conv4-64", "ResNet-12"],
        help="which to time",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    size, inner, warmup, repeats = (
        (32, 1, 0, 1) if args.quick else (84, 5, args.warmup, args.repeats)
    )

    backbones = {
        "Conv4-32": (lambda: Conv4(hidden=32, image_size=size), 4),
        "Conv4-64": (lambda: Conv4(hidden=64, image_size=size), 4),
        "ResNet-12": (lambda: ResNet12(image_size=size), 2),
    }
    variants = [("fp32", False, False), ("bf16 autocast", True, False)]
    if device.type == "cuda":
        variants.append(("bf16 + channels_last", True, True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}; torch {torch.__version__}; {size}x{size}, 5-way 1-shot, "
        f"15 queries, {inner} inner steps, second order"
    )
    print(f"{'backbone':<10} {'tasks':>5} {'variant':<22} {'step (s)':>9} {'peak MiB':>9}")
    for backbone in args.backbones:
        make, tasks = backbones[backbone]
        for variant, bf16, channels_last in variants:
            seconds, peak = time_step(
                make, device, tasks, size, inner, bf16, channels_last, warmup, repeats
            )
            print(f"{backbone:<10} {tasks:>5} {variant:<22} {seconds:>9.3f} {peak:>9.0f}")


if __name__ == "__main__":
    main()
