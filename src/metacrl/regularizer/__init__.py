"""MetaCRL: the factor matrix, the gates and their losses (``reg.wrap`` adds them to learners)."""

from metacrl.regularizer.causal import CausalTerms, Environment, HeadTask
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.penalties import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)
from metacrl.regularizer.regularizer import MetaCRLRegularizer

__all__ = [
    "CausalTerms",
    "Environment",
    "HeadTask",
    "MetaCRLRegularizer",
    "TaskFactors",
    "gate_loss",
    "irm_penalty",
    "orthogonality_loss",
    "spectral_norm_estimate",
    "vrex_penalty",
]
