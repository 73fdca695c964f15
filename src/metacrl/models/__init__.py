"""Backbones that follow the metacrl model contract (``features``, ``head``, ``feature_dim``)."""

from metacrl.models.contract import FeatureHead, check_model
from metacrl.models.gated import GatedModel

__all__ = ["FeatureHead", "GatedModel", "check_model"]
