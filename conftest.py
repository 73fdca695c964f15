"""The set-up every docstring example in ``src/metacrl`` shares (pytest's ``doctest_namespace``).

Each example may use, without importing them: ``torch``, ``nn``, the public learners and
``MetaCRLRegularizer``, ``FeatureHead``, and a fresh, seeded tiny problem:

* ``model``: ``FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8)``;
* ``x``, ``y``: a meta-batch of 2 tasks, 3-way 2-shot, inputs ``[2, 6, 4]`` and labels
  ``[2, 6]`` (used as both support and query sets).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import metacrl
from metacrl.models import FeatureHead


@pytest.fixture(autouse=True)
def _doctest_setup(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any]) -> None:
    if type(request.node).__name__ != "DoctestItem":
        return
    torch.manual_seed(0)
    doctest_namespace.update(
        torch=torch,
        nn=nn,
        MAML=metacrl.MAML,
        ANIL=metacrl.ANIL,
        MetaSGD=metacrl.MetaSGD,
        ProtoNet=metacrl.ProtoNet,
        MetaCRLRegularizer=metacrl.MetaCRLRegularizer,
        FeatureHead=FeatureHead,
        model=FeatureHead(nn.Linear(4, 8), nn.Linear(8, 3), feature_dim=8),
        x=torch.randn(2, 6, 4),
        y=torch.arange(3).repeat(2).expand(2, 6),
    )
