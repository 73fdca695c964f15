"""Meta-gradients against central finite differences in float64 (shared gradient-test helpers).

Used by ``learners/test_meta_gradients.py`` and ``regularizer/test_metacrl_gradients.py``.
"""

from __future__ import annotations

import torch

from metacrl import ANIL, MAML, MetaSGD, ProtoNet
from metacrl.learners import Learner

from helpers import tiny_model

EPS = 1e-6


def _grads(learner: Learner, batch) -> dict[str, torch.Tensor]:
    learner.zero_grad(set_to_none=True)
    learner.meta_step(*batch).loss.backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in learner.named_parameters()
    }


def _finite_differences(learner: Learner, batch, names=None) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in learner.named_parameters():
        if names is not None and name not in names:
            continue
        fd = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + EPS
            plus = learner.meta_step(*batch).loss.item()
            flat[i] = old - EPS
            minus = learner.meta_step(*batch).loss.item()
            flat[i] = old
            fd.view(-1)[i] = (plus - minus) / (2 * EPS)
        out[name] = fd
    return out


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


GRADIENT_LEARNERS = {
    "maml": lambda m, **kw: MAML(m, inner_lr=0.5, inner_steps=2, **kw),
    "anil": lambda m, **kw: ANIL(m, inner_lr=0.5, inner_steps=2, **kw),
    "metasgd": lambda m, **kw: MetaSGD(m, inner_lr=0.5, inner_steps=2, **kw),
}


def _learner(name: str, seed: int = 1, **kw) -> Learner:
    torch.manual_seed(seed)
    if name == "protonet":
        return ProtoNet(tiny_model())
    return GRADIENT_LEARNERS[name](tiny_model(), **kw)
