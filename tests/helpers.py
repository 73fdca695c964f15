"""Shared test helpers: tiny models, seeded synthetic few-shot problems, learners to break.

Import them with ``from helpers import ...`` (``tests/`` is on ``sys.path`` through pytest's
``pythonpath`` setting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from metacrl import ANIL, MAML, MetaSGD, ProtoNet
from metacrl.models import FeatureHead


def tiny_model(
    in_dim: int = 3, feature_dim: int = 5, n_out: int = 3, dtype: torch.dtype = torch.float64
) -> FeatureHead:
    """A smooth (tanh) two-layer net, small enough for finite differences."""
    return FeatureHead(
        nn.Sequential(nn.Linear(in_dim, feature_dim), nn.Tanh()),
        nn.Linear(feature_dim, n_out),
        feature_dim=feature_dim,
    ).to(dtype)


def random_batch(
    tasks: int = 2,
    n_way: int = 3,
    k_shot: int = 2,
    k_query: int = 3,
    in_dim: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random inputs with balanced labels 0..n_way-1 in every support and query set."""
    g = torch.Generator().manual_seed(seed)
    x_spt = torch.randn(tasks, n_way * k_shot, in_dim, generator=g, dtype=dtype)
    x_qry = torch.randn(tasks, n_way * k_query, in_dim, generator=g, dtype=dtype)
    y_spt = torch.arange(n_way).repeat(k_shot).expand(tasks, -1).clone()
    y_qry = torch.arange(n_way).repeat(k_query).expand(tasks, -1).clone()
    return x_spt, y_spt, x_qry, y_qry


class ClusterTasks:
    """A seeded few-shot classification problem: Gaussian clusters of ``num_classes`` classes.

    Each task draws ``n_way`` of the classes and relabels them 0..n_way-1 at random, so only a
    learner that adapts per task can score above chance; meta-training makes adaptation fast.
    """

    def __init__(
        self,
        num_classes: int = 12,
        in_dim: int = 8,
        n_way: int = 3,
        k_shot: int = 2,
        k_query: int = 5,
        noise: float = 0.6,
        seed: int = 0,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.centers = torch.randn(num_classes, in_dim, generator=g) * 1.5
        self.n_way, self.k_shot, self.k_query, self.noise = n_way, k_shot, k_query, noise
        self.in_dim = in_dim

    def batch(
        self, tasks: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        xs, ys, xq, yq = [], [], [], []
        for _ in range(tasks):
            classes = torch.randperm(len(self.centers), generator=generator)[: self.n_way]
            y_s = torch.arange(self.n_way).repeat(self.k_shot)
            y_q = torch.arange(self.n_way).repeat(self.k_query)
            for y, xl, yl in ((y_s, xs, ys), (y_q, xq, yq)):
                noise = torch.randn(len(y), self.in_dim, generator=generator) * self.noise
                xl.append(self.centers[classes[y]] + noise)
                yl.append(y)
        return torch.stack(xs), torch.stack(ys), torch.stack(xq), torch.stack(yq)

    def stream(self, tasks: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self.batch(tasks, g)


def cluster_model(in_dim: int = 8, feature_dim: int = 16, n_way: int = 3) -> FeatureHead:
    return FeatureHead(
        nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Linear(32, feature_dim), nn.ReLU()),
        nn.Linear(feature_dim, n_way),
        feature_dim=feature_dim,
    )


def _few_shot_batch(sample, n_way=3, tasks=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_spt = torch.randn(tasks, n_way, *sample, generator=g)
    x_qry = torch.randn(tasks, 2 * n_way, *sample, generator=g)
    y_spt = torch.arange(n_way).expand(tasks, -1).clone()
    y_qry = torch.arange(n_way).repeat(2).expand(tasks, -1).clone()
    return x_spt, y_spt, x_qry, y_qry


# ====================================================================== learners to break
GRADIENT_LEARNERS = [MAML, ANIL, MetaSGD]
ALL_LEARNERS = [*GRADIENT_LEARNERS, ProtoNet]
FEATURE_DIM = 5


def _name(value: object) -> str | None:
    return getattr(value, "__name__", None)


def make(cls: type, model: nn.Module | None = None, **kwargs):
    """A learner of class ``cls`` on ``model`` (default: the tiny float64 model), one inner step."""
    model = tiny_model() if model is None else model
    if cls is ProtoNet:
        return ProtoNet(model)
    kwargs.setdefault("inner_lr", 0.1)
    kwargs.setdefault("inner_steps", 1)
    return cls(model, **kwargs)


def linear_model(n_out: int = 3) -> FeatureHead:
    """Unbounded (no tanh) features, so a huge inner step overflows."""
    return FeatureHead(
        nn.Linear(3, FEATURE_DIM), nn.Linear(FEATURE_DIM, n_out), feature_dim=FEATURE_DIM
    ).double()


def nan_model(part: str) -> FeatureHead:
    """The tiny model with NaN biases in ``features`` or ``head``."""
    model = tiny_model()
    layer = model.features[0] if part == "features" else model.head
    with torch.no_grad():
        layer.bias.fill_(float("nan"))
    return model


def with_label(y: torch.Tensor, value: int, task: int = 0, index: int = 0) -> torch.Tensor:
    y = y.clone()
    y[task, index] = value
    return y


LABEL_TOO_LARGE = r"labels must lie in 0\.\.n_way-1 with n_way=3 \(the model's outputs\), .*label 5"


def write_clipart(root: Path, classes: int = 10, per_class: int = 4, size: int = 12) -> Path:
    """``classes`` folders (nested like the real package) of RGBA drawings on transparency."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"group{c % 3}" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            rgba = np.zeros((size, size + 3, 4), dtype=np.uint8)  # transparent, not square
            ink = rng.random((size, size + 3)) < 0.3 + 0.05 * c  # class-dependent density
            rgba[ink] = (20 * c % 255, 0, 0, 255)
            Image.fromarray(rgba, "RGBA").save(folder / f"{i:02d}.png")
    return root
