"""The model contract (``features``, ``head``, ``feature_dim``) and FeatureHead: clear errors.

Every ``pytest.raises`` matches the key words of the message, so a test fails if an error stops
saying what is wrong.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metacrl import MetaCRLRegularizer
from metacrl.models import FeatureHead

from helpers import ALL_LEARNERS, FEATURE_DIM, make

_MISSING = object()


class ContractModel(nn.Module):
    """A model whose ``features``/``head``/``feature_dim`` can be left out or replaced."""

    def __init__(self, features=_MISSING, head=_MISSING, feature_dim=_MISSING) -> None:
        super().__init__()
        parts = {
            "features": nn.Linear(3, FEATURE_DIM) if features is _MISSING else features,
            "head": nn.Linear(FEATURE_DIM, 3) if head is _MISSING else head,
            "feature_dim": FEATURE_DIM if feature_dim is _MISSING else feature_dim,
        }
        for attr, value in parts.items():
            if value is not None:
                setattr(self, attr, value)


# ====================================================================== the model contract
def _build_learner(cls):
    return lambda model: make(cls, model)


def _wrap(model):
    return MetaCRLRegularizer(FEATURE_DIM, num_factors=4).wrap(model)


CONSUMERS = [*(_build_learner(c) for c in ALL_LEARNERS), _wrap]
CONSUMER_IDS = [*(c.__name__ for c in ALL_LEARNERS), "reg.wrap"]


@pytest.mark.parametrize("consume", CONSUMERS, ids=CONSUMER_IDS)
@pytest.mark.parametrize(
    ("model", "error", "pattern"),
    [
        (
            ContractModel(features=None),
            TypeError,
            r"must expose `features` as an nn.Module \(missing\)",
        ),
        (ContractModel(head=None), TypeError, r"must expose `head` as an nn.Module \(missing\)"),
        (
            ContractModel(features=torch.tanh),
            TypeError,
            r"`features` as an nn.Module \(builtin_function",
        ),
        (ContractModel(head=torch.tanh), TypeError, r"`head` as an nn.Module \(builtin_function"),
        (ContractModel(feature_dim=None), TypeError, r"integer `feature_dim`.*got None"),
        (ContractModel(feature_dim=5.0), TypeError, r"integer `feature_dim`.*got 5\.0"),
        (ContractModel(feature_dim="5"), TypeError, r"integer `feature_dim`.*got '5'"),
        (ContractModel(feature_dim=True), TypeError, r"integer `feature_dim`.*got True"),
        (ContractModel(feature_dim=0), ValueError, r"model\.feature_dim must be positive, got 0"),
        (ContractModel(feature_dim=-4), ValueError, r"model\.feature_dim must be positive, got -4"),
        (object(), TypeError, r"model must be a torch\.nn\.Module, got object"),
        (lambda x: x, TypeError, r"model must be a torch\.nn\.Module, got function"),
        (nn.Linear(3, 3), TypeError, r"model \(Linear\) must expose `features`"),
    ],
    ids=[
        "no-features",
        "no-head",
        "features-fn",
        "head-fn",
        "no-feature_dim",
        "float-dim",
        "str-dim",
        "bool-dim",
        "zero-dim",
        "negative-dim",
        "object",
        "function",
        "plain-Linear",
    ],
)
def test_model_contract(consume, model, error, pattern):
    with pytest.raises(error, match=pattern):
        consume(model)


# ====================================================================== FeatureHead
@pytest.mark.parametrize(
    ("feature_dim", "error", "pattern"),
    [
        (0, ValueError, r"FeatureHead\.feature_dim must be positive, got 0"),
        (-1, ValueError, r"FeatureHead\.feature_dim must be positive, got -1"),
        (5.0, TypeError, r"integer `feature_dim`.*got 5\.0"),
        (None, TypeError, r"integer `feature_dim`.*got None"),
    ],
)
def test_feature_head_feature_dim(feature_dim, error, pattern):
    with pytest.raises(error, match=pattern):
        FeatureHead(nn.Linear(3, 5), nn.Linear(5, 3), feature_dim=feature_dim)


def test_feature_head_parts_must_be_modules():
    with pytest.raises(TypeError, match=r"`features` as an nn.Module"):
        FeatureHead(torch.tanh, nn.Linear(5, 3), feature_dim=5)
    with pytest.raises(TypeError, match=r"`head` as an nn.Module"):
        FeatureHead(nn.Linear(3, 5), torch.tanh, feature_dim=5)
