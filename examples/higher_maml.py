"""Your own higher MAML loop, with and without MetaCRL, on ConfoundedShapes.

The loop is written as in higher's MAML example (``examples/maml-omniglot.py`` of the
``higher`` project): an ``nn.Sequential`` conv net, ``higher.innerloop_ctx``, one task at a
time. The lines marked ``# MetaCRL`` are all it takes to add the whole method (the alternating
schedule, the causal steps, the replay of earlier meta-batches); without ``--metacrl`` they
are skipped and the loop is plain MAML. Both arms start from the same weights and see the same
tasks; ``docs/plugging-in.md`` walks through the changed lines.

    python examples/higher_maml.py [--iterations 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import higher
import torch
import torch.nn.functional as F
from torch import nn

from metacrl import MetaCRLRegularizer
from metacrl.data import ConfoundedShapes, TaskLoader
from metacrl.models import FeatureHead


def conv_net(n_way: int) -> FeatureHead:
    """higher's example network (BatchNorm on batch statistics), split into features and head."""
    blocks = []
    for c_in in (3, 64, 64):
        blocks += [
            nn.Conv2d(c_in, 64, 3),
            nn.BatchNorm2d(64, momentum=1, affine=True),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        ]
    features = nn.Sequential(*blocks, nn.Flatten())  # 32x32 inputs: 64 x 2 x 2 = 256 features
    return FeatureHead(features, nn.Linear(256, n_way), feature_dim=256)


def train(model, net, reg, loader, meta_opt, iterations, inner_steps, inner_lr):
    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)  # the inner loop adapts θ only
    for it, (x_spt, y_spt, x_qry, y_qry) in enumerate(loader):
        if reg is not None:
            crl = net.meta_batch(x_spt, y_spt, x_qry, y_qry)  # MetaCRL: the causal steps
        qry_losses, qry_accs = [], []
        for i in range(x_spt.shape[0]):
            task = {} if reg is None else {"task": crl.task(i)}  # MetaCRL: the task's gates
            with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (
                fnet,
                diffopt,
            ):
                for _ in range(inner_steps):
                    spt_loss = F.cross_entropy(fnet(x_spt[i], **task), y_spt[i])
                    diffopt.step(spt_loss)
                qry_logits = fnet(x_qry[i], **task)
                qry_losses.append(F.cross_entropy(qry_logits, y_qry[i]))
                qry_accs.append((qry_logits.argmax(dim=1) == y_qry[i]).float().mean().item())
        meta_opt.zero_grad()
        mean = torch.stack(qry_losses).mean
        loss = mean() if reg is None else crl.outer_loss(qry_losses)  # MetaCRL: θ's loss
        loss.backward()
        meta_opt.step()
        if it % 50 == 0 or it == iterations - 1:
            print(f"  iteration {it:4d}  query loss {loss.item():.3f}  query accuracy "
                  f"{sum(qry_accs) / len(qry_accs):.3f}")  # fmt: skip


def test(model, net, reg, loader, inner_steps, inner_lr):
    inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
    accs = []
    for x_spt, y_spt, x_qry, y_qry in loader:
        for i in range(x_spt.shape[0]):
            task = {} if reg is None else {"task": net.test_task(x_spt[i])}  # MetaCRL
            with higher.innerloop_ctx(net, inner_opt, track_higher_grads=False) as (fnet, diffopt):
                for _ in range(inner_steps):
                    diffopt.step(F.cross_entropy(fnet(x_spt[i], **task), y_spt[i]))
                with torch.no_grad():
                    qry_logits = fnet(x_qry[i], **task)
                accs.append((qry_logits.argmax(dim=1) == y_qry[i]).float().mean().item())
    mean = sum(accs) / len(accs)
    sd = (sum((a - mean) ** 2 for a in accs) / max(len(accs) - 1, 1)) ** 0.5
    return 100 * mean, 100 * 1.96 * sd / len(accs) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="meta-iterations per arm")
    parser.add_argument("--test-tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_way, k_shot, k_query, meta_batch, inner_steps, inner_lr = 5, 1, 15, 4, 3, 0.1

    rows = []
    for arm in ("MAML (your higher loop)", "+ MetaCRL"):
        torch.manual_seed(args.seed)
        model = conv_net(n_way)
        net, reg = model, None
        if arm == "+ MetaCRL":
            reg = MetaCRLRegularizer(feature_dim=model.feature_dim)  # MetaCRL
            net = reg.wrap(model, head_lr=inner_lr, head_steps=inner_steps)  # MetaCRL
        meta_opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # θ (and Xi, f_gr)
        shape = dict(n_way=n_way, k_shot=k_shot, k_query=k_query)
        train_set = ConfoundedShapes("train", batchsz=args.iterations * meta_batch, **shape)
        test_set = ConfoundedShapes("test", batchsz=args.test_tasks, seed=1, **shape)
        print(arm)
        start = time.perf_counter()
        train(
            model, net, reg, TaskLoader(train_set, batch_size=meta_batch), meta_opt,
            args.iterations, inner_steps, inner_lr,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        acc, ci = test(model, net, reg, TaskLoader(test_set, batch_size=10), inner_steps, inner_lr)
        rows.append((arm, acc, ci, seconds))

    print(f"\nConfoundedShapes 5-way {k_shot}-shot, {args.iterations} iterations, seed {args.seed}")
    print("| loop | test accuracy (%) | train time (s) |\n| --- | --- | --- |")
    for arm, acc, ci, seconds in rows:
        print(f"| {arm} | {acc:.2f} ± {ci:.2f} ({args.test_tasks} tasks) | {seconds:.0f} |")


if __name__ == "__main__":
    main()
