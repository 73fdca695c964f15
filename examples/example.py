"""MAML on miniImageNet, 5-way 1-shot, Conv4 (dragen1860/MAML-Pytorch's example, on metacrl).

The settings of the MAML protocol (Finn et al., 2017): Conv4 with 32 filters at 84x84,
5 inner steps at 0.01 (10 at test), 15 queries per class, meta-batch 4, Adam 1e-3, 60,000
meta-iterations, accuracy as mean ± 95% CI over 600 test episodes. Add ``--metacrl`` to train
MAML + MetaCRL with the same seed and task stream.

    python examples/example.py --data-root /path/to/miniimagenet [--metacrl]

``--data-root`` holds ``images/*.jpg`` with ``train.csv``/``val.csv``/``test.csv``, or the
``mini-imagenet-cache-*.pkl`` files. The first run decodes the images once into a cache.
"""

from __future__ import annotations

import argparse

import torch

from metacrl import MAML, MetaCRLRegularizer
from metacrl.data import MiniImagenet, TaskLoader
from metacrl.learners import Learner
from metacrl.models import Conv4
from metacrl.train import evaluate_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--metacrl", action="store_true", help="add MetaCRL to MAML")
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--k-shot", type=int, default=1)
    parser.add_argument("--k-query", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=60_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    shape = dict(n_way=args.n_way, k_shot=args.k_shot, k_query=args.k_query)
    train = MiniImagenet(
        args.data_root,
        "train",
        batchsz=args.iterations * args.meta_batch,
        resize=args.image_size,
        seed=args.seed,
        **shape,
    )
    test = MiniImagenet(
        args.data_root, "test", batchsz=args.test_episodes, resize=args.image_size, seed=1, **shape
    )

    model = Conv4(hidden=32, n_way=args.n_way, image_size=args.image_size)
    learner: Learner = MAML(model, inner_lr=0.01, inner_steps=5, test_inner_steps=10)
    if args.metacrl:
        reg = MetaCRLRegularizer(feature_dim=model.feature_dim, num_factors=model.feature_dim)
        learner = reg.wrap(learner)
    learner.to(device)
    meta_opt = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def test_accuracy() -> str:
        loader = TaskLoader(test, batch_size=args.meta_batch, num_workers=args.workers)
        result = evaluate_episodes(learner, loader)
        return f"{100 * result.mean:.2f} ± {100 * result.ci95:.2f} ({result.episodes} episodes)"

    loader = TaskLoader(train, batch_size=args.meta_batch, num_workers=args.workers)
    for step, (x_spt, y_spt, x_qry, y_qry) in enumerate(loader, start=1):
        out = learner.meta_step(x_spt, y_spt, x_qry, y_qry)
        meta_opt.zero_grad()
        out.loss.backward()
        meta_opt.step()  # one meta-update per meta-batch
        if step % 100 == 0:
            print(f"step {step}: query loss {out.query_loss:.3f}, accuracy {out.accuracy:.3f}")
        if step % args.eval_every == 0 or step == args.iterations:
            print(f"step {step}: test accuracy {test_accuracy()}")


if __name__ == "__main__":
    main()
