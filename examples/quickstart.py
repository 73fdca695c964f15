"""Quickstart: meta-train MAML with and without MetaCRL on a synthetic few-shot problem.

Each task draws 5 of 40 Gaussian clusters (random relabelling per task); both learners see the
same task stream from the same seed and are evaluated on the same held-out tasks. This is a
smoke test of the whole pipeline that runs in well under a minute on a CPU, not a benchmark: the
confounded benchmark is ``metacrl.data.ConfoundedShapes``, which ``metacrl train`` runs.

    python examples/quickstart.py [--iterations 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

from metacrl import MAML, MetaCRLRegularizer
from metacrl.learners import Learner
from metacrl.models import FeatureHead


def cluster_tasks(
    num_tasks: int,
    generator: torch.Generator,
    centers: Tensor,
    n_way: int = 5,
    k_shot: int = 1,
    k_query: int = 15,
    noise: float = 0.8,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A meta-batch of n-way k-shot tasks over Gaussian clusters, labels 0..n_way-1 per task."""
    xs, xq = [], []
    for _ in range(num_tasks):
        classes = torch.randperm(len(centers), generator=generator)[:n_way]
        for k, store in ((k_shot, xs), (k_query, xq)):
            y = torch.arange(n_way).repeat(k)
            store.append(
                centers[classes[y]]
                + noise * torch.randn(len(y), centers.shape[1], generator=generator)
            )
    y_spt = torch.arange(n_way).repeat(k_shot).expand(num_tasks, -1)
    y_qry = torch.arange(n_way).repeat(k_query).expand(num_tasks, -1)
    return torch.stack(xs), y_spt, torch.stack(xq), y_qry


def make_model(in_dim: int, n_way: int) -> FeatureHead:
    features = nn.Sequential(nn.Linear(in_dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    return FeatureHead(features, nn.Linear(64, n_way), feature_dim=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="meta-iterations per learner")
    parser.add_argument("--test-tasks", type=int, default=200, help="held-out test tasks")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    args = parser.parse_args()

    in_dim, n_way = 16, 5
    centers = torch.randn(40, in_dim, generator=torch.Generator().manual_seed(1234)) * 1.5
    test = cluster_tasks(args.test_tasks, torch.Generator().manual_seed(999), centers, n_way)

    def stream():
        g = torch.Generator().manual_seed(args.seed)
        while True:
            yield cluster_tasks(4, g, centers, n_way)

    rows = []
    for name in ("MAML", "MAML + MetaCRL"):
        torch.manual_seed(args.seed)
        learner: Learner = MAML(make_model(in_dim, n_way), inner_lr=0.1, inner_steps=3)
        if name.endswith("MetaCRL"):
            learner = MetaCRLRegularizer(feature_dim=64, num_factors=64).wrap(learner)
        start = time.perf_counter()
        learner.fit(stream(), iterations=args.iterations, lr=1e-3, progress=True)
        seconds = time.perf_counter() - start
        result = learner.evaluate(*test)
        rows.append((name, 100 * (result.accuracy or 0.0), 100 * result.ci95, seconds))

    print(
        f"\n5-way 1-shot, {args.test_tasks} test tasks, {args.iterations} meta-iterations, "
        f"seed {args.seed}"
    )
    print(f"{'method':<16} {'accuracy (%)':>16} {'train time (s)':>15}")
    for name, acc, ci, seconds in rows:
        print(f"{name:<16} {acc:>8.1f} ± {ci:<5.1f} {seconds:>15.1f}")


if __name__ == "__main__":
    main()
