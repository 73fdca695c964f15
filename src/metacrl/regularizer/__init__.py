"""MetaCRL, the plug-in: the factor matrix ``Xi``, the gates ``f_gr``, their losses and ``wrap``.

This layer sits on top of what it plugs into (:mod:`metacrl.models`, :mod:`metacrl.learners`):
``reg.wrap(learner)`` returns a :class:`MetaCRLLearner` that talks to the learner through
:class:`~metacrl.learners.PluggableLearner`; ``reg.wrap(model)`` returns a :class:`GatedModel`
for a user's own ``higher`` or ``torch.func`` loop.
"""

from metacrl.regularizer.causal import CausalTerms
from metacrl.regularizer.causal_step import causal_step
from metacrl.regularizer.defaults import DEFAULTS, MetaCRLDefaults
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.gated import GatedModel
from metacrl.regularizer.learner import MetaCRLLearner
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.penalties import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)
from metacrl.regularizer.regularizer import MetaCRLRegularizer
from metacrl.regularizer.user_loop import OpenTasks

__all__ = [
    "DEFAULTS",
    "CausalTerms",
    "GatedModel",
    "MetaCRLDefaults",
    "MetaCRLLearner",
    "MetaCRLModule",
    "MetaCRLRegularizer",
    "OpenTasks",
    "TaskFactors",
    "causal_step",
    "gate_loss",
    "irm_penalty",
    "orthogonality_loss",
    "spectral_norm_estimate",
    "vrex_penalty",
]
