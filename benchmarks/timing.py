"""The timed meta-step loop shared by the benchmark scripts."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import torch

from metacrl.learners import Learner


def time_meta_steps(
    learner: Learner,
    batch: tuple[torch.Tensor, ...],
    opt: torch.optim.Optimizer,
    autocast: AbstractContextManager[object],
    device: torch.device,
    warmup: int,
    repeats: int,
    *,
    require_finite: bool = False,
) -> list[float]:
    """Seconds of each of ``repeats`` meta-steps (forward, backward, optimiser step) after
    ``warmup`` untimed ones; CUDA is synchronised around every step.

    Raises:
        RuntimeError: With ``require_finite``, if a meta-loss is NaN or infinite.
    """
    cuda = device.type == "cuda"
    times = []
    for i in range(warmup + repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            out = learner.meta_step(*batch)
        out.loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize(device)
        if require_finite and not torch.isfinite(out.loss):
            raise RuntimeError("non-finite meta-loss")
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times
