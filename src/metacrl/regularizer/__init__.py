"""MetaCRL, the plug-in: the factor matrix ``Xi``, the gates ``f_gr``, their losses and ``wrap``.

This layer sits on top of what it plugs into (:mod:`metacrl.models`, :mod:`metacrl.learners`):
``reg.wrap(learner)`` returns a :class:`MetaCRLLearner` that talks to the learner through
:class:`~metacrl.learners.PluggableLearner`; ``reg.wrap(model)`` returns a :class:`GatedModel`
for a user's own ``higher`` or ``torch.func`` loop, whose :meth:`GatedModel.meta_batch` gives
that loop the same upper level (:class:`UpperLevel`, with its :class:`Replay`).
"""

from metacrl.regularizer.causal import CausalTerms
from metacrl.regularizer.causal_step import causal_step
from metacrl.regularizer.defaults import DEFAULTS, MetaCRLDefaults
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.gated import GatedModel
from metacrl.regularizer.learner import MetaCRLLearner
from metacrl.regularizer.loop_batch import LoopBatch
from metacrl.regularizer.module import MetaCRLModule
from metacrl.regularizer.penalties import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)
from metacrl.regularizer.regularizer import LoopSettings, MetaCRLRegularizer
from metacrl.regularizer.replay import Replay
from metacrl.regularizer.upper_level import UpperLevel
from metacrl.regularizer.user_loop import OpenTasks

__all__ = [
    "DEFAULTS",
    "CausalTerms",
    "GatedModel",
    "LoopBatch",
    "LoopSettings",
    "MetaCRLDefaults",
    "MetaCRLLearner",
    "MetaCRLModule",
    "MetaCRLRegularizer",
    "OpenTasks",
    "Replay",
    "TaskFactors",
    "UpperLevel",
    "causal_step",
    "gate_loss",
    "irm_penalty",
    "orthogonality_loss",
    "spectral_norm_estimate",
    "vrex_penalty",
]
