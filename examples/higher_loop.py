"""MetaCRL inside your own inner loop written on `higher` (second-order MAML by hand).

Three lines change in a usual higher MAML loop:

1. ``net = reg.wrap(model)``: the module to patch; its ``parameters()`` include ``Xi``/``f_gr``.
2. ``task = reg.task(model.features(x_spt))`` per task, and ``fnet(x, task=task)`` in the loop.
3. ``loss = mean(query_losses) + reg.penalty(query_losses)`` as the outer loss.

    python examples/higher_loop.py [--iterations 100]
"""

from __future__ import annotations

import argparse

import higher
import torch
import torch.nn.functional as F
from torch import nn

from metacrl import MetaCRLRegularizer
from metacrl.models import FeatureHead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()

    torch.manual_seed(0)
    in_dim, n_way, k_shot, k_query = 16, 5, 1, 15
    model = FeatureHead(
        nn.Sequential(nn.Linear(in_dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()),
        nn.Linear(64, n_way),
        feature_dim=64,
    )
    reg = MetaCRLRegularizer(feature_dim=64, num_factors=64, invariance="vrex")
    net = reg.wrap(model)  # (1)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.1)  # the lower level adapts θ only
    meta_opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # θ, Xi and f_gr

    centers = torch.randn(40, in_dim) * 1.5
    y_spt, y_qry = torch.arange(n_way).repeat(k_shot), torch.arange(n_way).repeat(k_query)

    def sample_task():
        classes = torch.randperm(40)[:n_way]
        x_spt = centers[classes[y_spt]] + 0.8 * torch.randn(len(y_spt), in_dim)
        x_qry = centers[classes[y_qry]] + 0.8 * torch.randn(len(y_qry), in_dim)
        return x_spt, x_qry

    for it in range(args.iterations):
        meta_opt.zero_grad()
        query_losses, correct = [], 0.0
        for _ in range(4):  # a meta-batch of 4 tasks
            x_spt, x_qry = sample_task()
            task = reg.task(model.features(x_spt))  # (2)
            with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, opt):
                for _ in range(3):
                    opt.step(F.cross_entropy(fnet(x_spt, task=task), y_spt))
                logits = fnet(x_qry, task=task)
                query_losses.append(F.cross_entropy(logits, y_qry))
                correct += (logits.argmax(-1) == y_qry).float().mean().item()
        loss = torch.stack(query_losses).mean() + reg.penalty(query_losses)  # (3)
        loss.backward()
        meta_opt.step()
        if it % 20 == 0 or it == args.iterations - 1:
            print(
                f"iteration {it:4d}  outer loss {loss.item():.3f}  query accuracy {correct / 4:.2f}"
            )


if __name__ == "__main__":
    main()
