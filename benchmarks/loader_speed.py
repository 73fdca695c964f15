"""Episodes per second: the cached MiniImagenet loader vs decoding JPEGs on every access.

Builds, in a temporary folder, a fake miniImageNet in dragen1860/MAML-Pytorch's layout (random
JPEGs of real ImageNet photo size, 500x375 by default, and ``train.csv``), then measures side by
side in one run:

* ``decode per access``: the approach of dragen1860/MAML-Pytorch's loader: open, decode and
  resize every image of an episode each time it is drawn (``MiniImagenet(..., cache=False)``);
* ``cached``: the images decoded and resized once into a uint8 cache (built once, timed
  separately), then memory-mapped (``MiniImagenet(..., cache=True)``);
* ``ConfoundedShapes``: procedural episodes, rendered from scratch on every access.

Every row makes 5-way 1-shot 15-query episodes (80 images) in the main process, one after
the other (no workers); ``--workers`` adds a TaskLoader row with that many worker processes.

    python benchmarks/loader_speed.py                 # 20 classes x 60 JPEGs at 500x375
    python benchmarks/loader_speed.py --quick         # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from metacrl.data import ConfoundedShapes, MiniImagenet, TaskLoader, write_fake_miniimagenet


def per_episode(make: Callable[[int], object], episodes: int) -> float:
    """Seconds per episode over ``episodes`` calls, after one warm-up call."""
    make(0)
    start = time.perf_counter()
    for i in range(1, episodes + 1):
        make(i)
    return (time.perf_counter() - start) / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--resize", type=int, default=84)
    parser.add_argument("--episodes", type=int, default=300, help="timed episodes (cached)")
    parser.add_argument("--slow-episodes", type=int, default=20, help="timed, decode per access")
    parser.add_argument("--shape-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="also time a TaskLoader")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.classes, args.per_class, args.episodes, args.slow_episodes = 6, 16, 20, 3
        args.width, args.height = 160, 120
    n_way, k_shot, k_query = 5, 1, 15

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mini-imagenet"
        t0 = time.perf_counter()
        write_fake_miniimagenet(
            root, (args.classes, 1, 1), args.per_class, (args.width, args.height)
        )
        n_images = args.classes * args.per_class
        print(
            f"fake miniImageNet: {args.classes} classes x {args.per_class} JPEGs at "
            f"{args.width}x{args.height} (written in {time.perf_counter() - t0:.1f} s), "
            f"resize {args.resize}, {n_way}-way {k_shot}-shot {k_query}-query "
            f"({n_way * (k_shot + k_query)} images per episode)"
        )
        common = dict(
            n_way=n_way, k_shot=k_shot, k_query=k_query, batchsz=10**6, resize=args.resize
        )
        slow = MiniImagenet(root, "train", cache=False, **common)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        fast = MiniImagenet(root, "train", cache=True, progress=False, **common)  # type: ignore[arg-type]
        build = time.perf_counter() - t0
        t_slow = per_episode(slow.__getitem__, args.slow_episodes)
        t_fast = per_episode(fast.__getitem__, args.episodes)

        shapes = ConfoundedShapes(
            "train", n_way, k_shot, k_query, image_size=args.shape_size, batchsz=10**6
        )
        t_shapes = per_episode(shapes.__getitem__, args.episodes)

        rows = [
            ("MiniImagenet, decode per access (cache=False)", t_slow),
            ("MiniImagenet, cached (uint8 memmap)", t_fast),
            (f"ConfoundedShapes {args.shape_size}x{args.shape_size}", t_shapes),
        ]
        if args.workers > 0:
            batches = max(4, args.episodes // 4)
            loader = TaskLoader(fast, batch_size=4, num_workers=args.workers, num_batches=batches)
            t0 = time.perf_counter()
            for _ in loader:
                pass
            rows.append(
                (
                    f"MiniImagenet cached, TaskLoader {args.workers} workers (incl. start)",
                    (time.perf_counter() - t0) / (4 * batches),
                ),
            )

        print(f"cache build (one-off): {build:.1f} s for {n_images} images")
        print()
        print(f"| {'loader':<58} | {'episodes/s':>10} | {'ms/episode':>10} | {'vs decode':>9} |")
        print(f"|{'-' * 60}|{'-' * 11}:|{'-' * 11}:|{'-' * 10}:|")
        for name, sec in rows:
            print(
                f"| {name:<58} | {1 / sec:>10.1f} | {1000 * sec:>10.2f} | {t_slow / sec:>8.1f}x |"
            )
        print()
        ratio = t_slow / t_fast
        verdict = "meets" if ratio >= 10 else "MISSES"
        print(f"cached / decode-per-access speed ratio: {ratio:.1f}x ({verdict} the 10x target)")
        print(f"ConfoundedShapes: {1000 * t_shapes:.2f} ms per task")


if __name__ == "__main__":
    main()
