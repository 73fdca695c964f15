"""What MetaCRL costs: time per meta-iteration and peak memory, measured side by side.

    python benchmarks/cost.py              # all tables (about 35 minutes on a 2-core CPU)
    python benchmarks/cost.py --quick      # tiny sizes, a smoke run
    python benchmarks/cost.py --tables learners replay     # some of them

Tables (each row is the median of ``--repeats`` timed meta-steps after ``--warmup`` untimed ones,
at least ``replay`` with MetaCRL so that its replay is full; forward + backward + optimiser step):

1. ``learners``: each learner without MetaCRL, with MetaCRL at the library's defaults, and with
   the other environment size (``env_queries``): MAML's miniImageNet setting (Conv4-32, 84x84,
   5-way 1-shot, 15 queries, meta-batch 4, 5 inner steps at 0.01, second order);
   ``learners-32`` the same at 32x32, ``learners-mb8`` at meta-batch 8;
   ``profile``: where the added time goes, from :mod:`metacrl.profiling`'s ranges under
   ``torch.profiler`` (the extra backbone pass, the causal steps, and the rest: the gates
   inside the meta-step and their backward);
2. ``backends``: the inner-loop backends (func, higher, vmap) and first against second order;
3. ``overhead``: where MetaCRL's time goes: MAML with cheaper MetaCRL settings;
4. ``replay``: how MetaCRL's added time grows with the replayed meta-batches (MAML);
5. ``scaling``: how MAML's time grows with the meta-batch, the ways and the inner steps (32x32
   to keep it short on a CPU).

Times in tables 1-4 are measured round-robin in one process (one step of each row in turn), so
that the ratios compare rows under the same conditions. Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on the CPU each row runs once more in a fresh process and
the table shows its peak resident memory (``VmHWM``) above that of the same process before
the first meta-step (model, data and libraries loaded).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from timing import time_meta_steps

from metacrl import ANIL, MAML, MetaCRLRegularizer, MetaSGD, ProtoNet
from metacrl.learners import Learner
from metacrl.models import Conv4
from metacrl.profiling import CAUSAL_STEP_RANGE, TASK_FEATURES_RANGE
from metacrl.regularizer import DEFAULTS


@dataclass(frozen=True)
class Setting:
    learner: str = "maml"
    metacrl: bool = False
    backend: str = "func"
    first_order: bool = False
    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_batch: int = 4
    inner_steps: int = 5
    image_size: int = 84
    hidden: int = 32
    bf16: bool = False
    mode: str = DEFAULTS.mode  # MetaCRL settings: the library's defaults
    crl_steps: int = DEFAULTS.crl_steps
    replay: int = DEFAULTS.replay
    env_queries: int | None = DEFAULTS.env_queries


LEARNER_NAMES = ("maml", "anil", "metasgd", "protonet")
# The other choice of environment size, timed beside the default in the learners table.
OTHER_ENV_QUERIES = 10 if DEFAULTS.env_queries is None else None


def env_label(env_queries: int | None) -> str:
    return "all queries" if env_queries is None else f"{env_queries} queries"


def build(s: Setting, device: torch.device) -> tuple[Learner, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = Conv4(
        hidden=s.hidden,
        n_way=s.ways,
        image_size=s.image_size,
        track_running_stats=s.backend != "vmap",
    )
    learner: Learner
    if s.learner == "protonet":
        learner = ProtoNet(model)
    else:
        cls = {"maml": MAML, "anil": ANIL, "metasgd": MetaSGD}[s.learner]
        inner_lr = 0.1 if s.learner == "anil" else 0.01
        learner = cls(
            model,
            inner_lr=inner_lr,
            inner_steps=s.inner_steps,
            first_order=s.first_order,
            backend=s.backend,
        )
    if s.metacrl:
        reg = MetaCRLRegularizer(
            feature_dim=model.feature_dim,
            num_factors=model.feature_dim,
            mode=s.mode,  # type: ignore[arg-type]
            crl_steps=s.crl_steps,
            replay=s.replay,
            env_queries=s.env_queries,
        )
        learner = reg.wrap(learner)  # type: ignore[arg-type]
    learner.to(device)
    g = torch.Generator().manual_seed(0)
    size = (3, s.image_size, s.image_size)
    batch = (
        torch.randn(s.meta_batch, s.ways * s.shots, *size, generator=g),
        torch.arange(s.ways).repeat_interleave(s.shots).expand(s.meta_batch, -1).clone(),
        torch.randn(s.meta_batch, s.ways * s.queries, *size, generator=g),
        torch.arange(s.ways).repeat_interleave(s.queries).expand(s.meta_batch, -1).clone(),
    )
    return learner, tuple(t.to(device) for t in batch)


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh in a new program, unlike
    ``ru_maxrss``, which a child inherits from a large parent across ``exec``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def steady_warmup(s: Setting, warmup: int) -> int:
    """Warm-up steps so that timed MetaCRL steps see a full replay (``replay`` earlier batches)."""
    return max(warmup, s.replay) if s.metacrl else warmup


Prepared = tuple[
    Learner, tuple[torch.Tensor, ...], torch.optim.Optimizer, AbstractContextManager[object]
]


def prepare(s: Setting, device: torch.device) -> Prepared:
    """What a timed meta-step needs: the learner, its batch, an optimiser, an autocast context."""
    learner, batch = build(s, device)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    autocast: AbstractContextManager[object] = (
        torch.autocast(device.type, dtype=torch.bfloat16) if s.bf16 else nullcontext()
    )
    return learner, batch, opt, autocast


def measure(s: Setting, device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Seconds per meta-step (median) and peak memory in MiB."""
    learner, batch, opt, autocast = prepare(s, device)
    warmup = steady_warmup(s, warmup)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    times = time_meta_steps(learner, batch, opt, autocast, device, warmup, repeats)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = peak_rss_mib() - rss_before
    return {"seconds": statistics.median(times), "peak_mib": peak}


def measure_isolated(
    s: Setting, device: torch.device, warmup: int, repeats: int
) -> dict[str, float]:
    """On the CPU, measure in a fresh process so that peak RSS belongs to this setting alone."""
    if device.type == "cuda":
        return measure(s, device, warmup, repeats)
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import cost; "
        "print(json.dumps(cost.measure(cost.Setting(**json.loads(sys.argv[2])), "
        "cost.torch.device('cpu'), int(sys.argv[3]), int(sys.argv[4]))))"
    )
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", code, here, json.dumps(asdict(s)), str(warmup), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def learner_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    """Each learner plain, with MetaCRL at the defaults, and with the other environment size."""
    names = LEARNER_NAMES
    arms = ({"metacrl": False}, {"metacrl": True},
            {"metacrl": True, "env_queries": OTHER_ENV_QUERIES})  # fmt: skip
    settings = [replace(base, learner=n, **arm) for n in names for arm in arms]
    seconds, peaks = time_and_memory(settings, device, warmup, repeats)
    rows = []
    for i, name in enumerate(names):
        (plain, crl, other) = seconds[3 * i : 3 * i + 3]
        (plain_mib, crl_mib, other_mib) = peaks[3 * i : 3 * i + 3]
        rows.append([
            name,
            f"{plain:.3f}",
            f"{crl:.3f}",
            f"{crl / plain:.2f}x",
            f"{other / plain:.2f}x",
            f"{plain_mib:.0f}",
            f"{crl_mib:.0f}",
            f"{crl_mib / max(plain_mib, 1e-9):.2f}x",
            f"{other_mib / max(plain_mib, 1e-9):.2f}x",
        ])  # fmt: skip
    default, other = env_label(base.env_queries), env_label(OTHER_ENV_QUERIES)
    header = ["learner", "s/step", "+MetaCRL s/step", "time ratio",
              f"time ratio, environments of {other}", "peak MiB", "+MetaCRL peak MiB",
              "memory ratio", f"memory ratio, {other}"]  # fmt: skip
    return table(
        f"Each learner with and without MetaCRL ({base.image_size}x{base.image_size}, "
        f"{base.ways}-way {base.shots}-shot, meta-batch {base.meta_batch}, "
        f"{base.inner_steps} inner steps; MetaCRL at the defaults: environments of {default})",
        header,
        rows,
    )


def backend_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    variants = [
        ("func, second order", {}),
        ("higher, second order", {"backend": "higher"}),
        ("vmap, second order (TaskBatchNorm)", {"backend": "vmap"}),
        ("func, first order", {"first_order": True}),
        ("func, second order, + MetaCRL", {"metacrl": True}),
        ("vmap, second order, + MetaCRL", {"backend": "vmap", "metacrl": True}),
    ]
    settings = [replace(base, **change) for _, change in variants]
    seconds, peaks = time_and_memory(settings, device, warmup, repeats)
    rows = [
        [name, f"{t:.3f}", f"{t / seconds[0]:.2f}x", f"{mib:.0f}"]
        for (name, _), t, mib in zip(variants, seconds, peaks, strict=True)
    ]
    return table(
        f"MAML backends and orders ({base.image_size}x{base.image_size}, meta-batch "
        f"{base.meta_batch}, {base.inner_steps} inner steps)",
        ["variant", "s/step", "vs func second order", "peak MiB"],
        rows,
    )


def interleaved_seconds(
    settings: list[Setting], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Median seconds per meta-step of each setting, timed round-robin in this process.

    Every setting takes one step in turn, so all rows see the same machine (a busy moment
    slows one step of each, not one row); rows in separate processes differ by up to 15%.
    """
    runs = [prepare(s, device) for s in settings]
    warmup = max(steady_warmup(s, warmup) for s in settings)
    return round_robin_seconds(runs, device, warmup, repeats)


def round_robin_seconds(
    runs: list[Prepared], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Median seconds per meta-step of prepared runs, one step of each in turn."""
    times: list[list[float]] = [[] for _ in runs]
    for round_ in range(warmup + repeats):
        for i, (learner, batch, opt, autocast) in enumerate(runs):
            seconds = time_meta_steps(learner, batch, opt, autocast, device, 0, 1)[0]
            if round_ >= warmup:
                times[i].append(seconds)
    return [statistics.median(t) for t in times]


def time_and_memory(
    settings: list[Setting], device: torch.device, warmup: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Seconds per step (interleaved) and peak MiB (one fresh process per setting on the CPU)."""
    seconds = interleaved_seconds(settings, device, warmup, repeats)
    return seconds, [measure_isolated(s, device, warmup, 1)["peak_mib"] for s in settings]


def overhead_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    """MAML with MetaCRL settings that cost less, timed interleaved in one process."""
    variants = [
        ("MAML without MetaCRL", {"metacrl": False}),
        (
            f"+ MetaCRL, defaults (alternating, 5 causal steps, replay 3, environments of "
            f"{env_label(base.env_queries)})",
            {},
        ),
        ("+ MetaCRL, 1 causal step", {"crl_steps": 1}),
        ("+ MetaCRL, replay 0", {"replay": 0}),
        ("+ MetaCRL, 1 causal step, replay 0", {"crl_steps": 1, "replay": 0}),
        ("+ MetaCRL, joint (no causal steps)", {"mode": "joint"}),
    ]
    per_class = min(5, base.queries)
    for queries in (None, per_class * base.ways):  # every query, and 5 a class
        if queries == base.env_queries or (queries or 0) >= base.queries * base.ways:
            continue  # the defaults' own size, or every query again
        where = "" if queries is None else f" ({per_class} a class)"
        variants.append((f"+ MetaCRL, environments of {env_label(queries)}{where}",
                         {"env_queries": queries}))  # fmt: skip
    settings = [replace(base, **{"metacrl": True, **change}) for _, change in variants]
    seconds = interleaved_seconds(settings, device, warmup, repeats)
    rows = [
        [name, f"{t:.3f}", f"{t / seconds[0]:.2f}x"]
        for (name, _), t in zip(variants, seconds, strict=True)
    ]
    return table(
        f"Where MetaCRL's time goes: MAML ({base.image_size}x{base.image_size}, "
        f"{base.ways}-way {base.shots}-shot, meta-batch {base.meta_batch})",
        ["variant", "s/step", "vs MAML"],
        rows,
    )


def profiled_ranges(run: Prepared, device: torch.device, repeats: int) -> dict[str, float]:
    """Seconds per meta-step inside MetaCRL's profiler ranges (:mod:`metacrl.profiling`), over
    ``repeats`` steps of a prepared, warmed-up run."""
    from torch.profiler import ProfilerActivity, profile

    learner, batch, opt, autocast = run
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        time_meta_steps(learner, batch, opt, autocast, device, 0, repeats)
    totals = {event.key: event.cpu_time_total for event in prof.key_averages()}
    return {name: totals.get(name, 0.0) / 1e6 / repeats
            for name in (TASK_FEATURES_RANGE, CAUSAL_STEP_RANGE)}  # fmt: skip


def profile_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    """Where MetaCRL's added time goes, per learner and environment size (CPU only)."""
    names = LEARNER_NAMES
    sizes = (base.env_queries, OTHER_ENV_QUERIES)
    settings = [replace(base, learner=n, metacrl=False) for n in names]
    settings += [
        replace(base, learner=n, metacrl=True, env_queries=q) for n in names for q in sizes
    ]
    runs = [prepare(s, device) for s in settings]  # timed, then the MetaCRL ones profiled
    warmup = max(steady_warmup(s, warmup) for s in settings)
    seconds = round_robin_seconds(runs, device, warmup, repeats)
    plain = dict(zip(names, seconds[: len(names)], strict=True))
    rows = []
    n = len(names)
    for s, run, t in zip(settings[n:], runs[n:], seconds[n:], strict=True):
        ranges = profiled_ranges(run, device, repeats)
        added = t - plain[s.learner]
        backbone, causal = ranges[TASK_FEATURES_RANGE], ranges[CAUSAL_STEP_RANGE]
        rows.append([
            s.learner, env_label(s.env_queries), f"{plain[s.learner]:.3f}", f"{t:.3f}",
            f"{added:.3f}", f"{backbone:.3f}", f"{causal:.3f}",
            f"{added - backbone - causal:.3f}",
        ])  # fmt: skip
    return table(
        f"Where MetaCRL's added time goes ({base.image_size}x{base.image_size}, "
        f"{base.ways}-way {base.shots}-shot, meta-batch {base.meta_batch})",
        [
            "learner",
            "environments",
            "s/step",
            "+MetaCRL s/step",
            "added",
            "extra backbone pass",
            "causal steps",
            "the rest",
        ],
        rows,
    )


def replay_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    """How MetaCRL's added time grows with the replayed meta-batches (MAML, interleaved)."""
    replays = (0, 1, 3, 6, 10)
    settings = [replace(base, metacrl=False)]
    settings += [replace(base, metacrl=True, replay=r) for r in replays]
    seconds = interleaved_seconds(settings, device, warmup, repeats)
    plain = seconds[0]
    rows = [["MAML without MetaCRL", "-", f"{plain:.3f}", "1.00x", "-"]]
    for r, t in zip(replays, seconds[1:], strict=True):
        rows.append(["+ MetaCRL", str(r), f"{t:.3f}", f"{t / plain:.2f}x", f"{t - plain:.3f}"])
    return table(
        f"How MetaCRL's added time grows with replay: MAML ({base.image_size}x"
        f"{base.image_size}, {base.ways}-way {base.shots}-shot, meta-batch {base.meta_batch}; "
        f"environments of {env_label(base.env_queries)})",
        ["variant", "replay", "s/step", "vs MAML", "added s/step"],
        rows,
    )


def scaling_table(base: Setting, device: torch.device, warmup: int, repeats: int) -> str:
    rows = []
    for label, field, values in (
        ("meta-batch", "meta_batch", (1, 2, 4, 8)),
        ("ways", "ways", (5, 10, 20)),
        ("inner steps", "inner_steps", (1, 3, 5, 10)),
    ):
        for value in values:
            for crl in (False, True):
                m = measure(replace(base, **{field: value}, metacrl=crl), device, warmup, repeats)
                rows.append([label, str(value), "yes" if crl else "no", f"{m['seconds']:.3f}"])
    return table(
        f"How MAML's time per step grows ({base.image_size}x{base.image_size}; others as in "
        f"the first table)",
        ["varied", "value", "MetaCRL", "s/step"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument(
        "--tables",
        nargs="+",
        default=["learners", "profile", "learners-32", "learners-mb8", "backends", "overhead",
                 "replay", "scaling"],
        help="which tables, in order (default: all)",
    )  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    warmup, repeats = (0, 1) if args.quick else (args.warmup, args.repeats)
    base = Setting(image_size=16, hidden=4, queries=2, inner_steps=1) if args.quick else Setting()
    small = replace(base, image_size=16 if args.quick else 32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, {torch.get_num_threads()} threads; torch {torch.__version__}\n")
    makers = {
        "learners": lambda: learner_table(base, device, warmup, repeats),
        "learners-32": lambda: learner_table(small, device, warmup, repeats),
        "learners-mb8": lambda: learner_table(replace(base, meta_batch=8), device, warmup, repeats),
        "replay": lambda: replay_table(base, device, warmup, repeats),
        "profile": lambda: profile_table(base, device, warmup, repeats),
        "backends": lambda: backend_table(base, device, warmup, repeats),
        "overhead": lambda: overhead_table(base, device, warmup, repeats),
        "scaling": lambda: scaling_table(small, device, warmup, repeats),
    }
    for key in args.tables:
        print(makers[key](), "\n", flush=True)


if __name__ == "__main__":
    main()
