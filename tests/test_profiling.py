"""MetaCRL's profiler ranges: each part of the added work is labelled where it runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import profile

from metacrl import ANIL, MAML, MetaCRLRegularizer
from metacrl.models import FeatureHead
from metacrl.profiling import CAUSAL_OBJECTIVE_RANGE, CAUSAL_STEP_RANGE, TASK_FEATURES_RANGE


def _ranges(learner_cls: type, mode: str) -> dict[str, int]:
    torch.manual_seed(0)
    model = FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8)
    reg = MetaCRLRegularizer(feature_dim=8, crl_steps=2, mode=mode)  # type: ignore[arg-type]
    learner = reg.wrap(learner_cls(model, inner_lr=0.1, inner_steps=1))
    x, y = torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6)
    with profile() as prof:
        learner.meta_step(x, y, x, y).loss.backward()
    names = (TASK_FEATURES_RANGE, CAUSAL_STEP_RANGE, CAUSAL_OBJECTIVE_RANGE)
    return {e.key: e.count for e in prof.key_averages() if e.key in names}


@pytest.mark.parametrize(
    ("learner_cls", "mode", "expected"),
    [
        # MAML's inner loop moves the backbone: the environments need a pass of their own
        (MAML, "alternating", {TASK_FEATURES_RANGE: 1, CAUSAL_STEP_RANGE: 1}),
        (MAML, "joint", {TASK_FEATURES_RANGE: 1, CAUSAL_OBJECTIVE_RANGE: 1}),
        # ANIL's backbone stays at θ: the meta-step's own pass serves the environments
        (ANIL, "alternating", {CAUSAL_STEP_RANGE: 1}),
    ],
)
def test_each_part_of_metacrls_work_is_one_labelled_range(learner_cls, mode, expected):
    assert _ranges(learner_cls, mode) == expected
