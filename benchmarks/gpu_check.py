"""GPU check for the evidence tables: timings on CUDA and a few hundred miniImageNet-sized steps.

    python benchmarks/gpu_check.py              # on a CUDA machine: well under 5 minutes
    python benchmarks/gpu_check.py --quick      # tiny sizes; also runs on a CPU (smoke test)

Prints, for the card it runs on:

1. the cost tables of ``benchmarks/cost.py`` (each learner with and without MetaCRL; the
   ``func``, ``higher`` and ``vmap`` backends, first and second order), on CUDA;
2. ``--iterations`` meta-iterations (default 300) of MAML and MAML + MetaCRL on random data of
   miniImageNet's size (Conv4-32, 84x84, 5-way 1-shot, 15 queries, meta-batch 4, 5 inner steps,
   second order), with the ``func`` backend and with ``vmap`` (tasks batched, TaskBatchNorm):
   iterations per second, peak memory and whether every loss stayed finite.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # noqa: E402


def long_run(s: cost.Setting, device: torch.device, iterations: int) -> list[str]:
    learner, batch = cost.build(s, device)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    finite = True
    start = time.perf_counter()
    for _ in range(iterations):
        opt.zero_grad(set_to_none=True)
        out = learner.meta_step(*batch)
        out.loss.backward()
        opt.step()
        finite &= bool(torch.isfinite(out.loss.detach()))
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    name = f"{s.learner}{' + MetaCRL' if s.metacrl else ''}, {s.backend}"
    return [name, str(iterations), f"{iterations / seconds:.2f}", f"{peak:.0f}", str(finite)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke test)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cost.ISOLATE = False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    base = cost.Setting()
    iterations = args.iterations
    warmup, repeats = 2, 5
    if args.quick:
        base = cost.Setting(image_size=16, hidden=4, queries=2, inner_steps=1)
        iterations, warmup, repeats = 3, 0, 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}\n", flush=True)
    print(cost.learner_table(base, device, warmup, repeats), "\n", flush=True)
    print(cost.backend_table(base, device, warmup, repeats), "\n", flush=True)
    rows = []
    for backend in ("func", "vmap"):
        for crl in (False, True):
            rows.append(long_run(replace(base, backend=backend, metacrl=crl), device, iterations))
            print(f"  done: {rows[-1][0]}", flush=True)
    print(
        cost.table(
            f"{iterations} meta-iterations on random data ({base.image_size}x{base.image_size}, "
            f"{base.ways}-way {base.shots}-shot, meta-batch {base.meta_batch}, "
            f"{base.inner_steps} inner steps, second order)",
            ["run", "iterations", "it/s", "peak MiB", "finite"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
