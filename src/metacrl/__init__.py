"""metacrl: MetaCRL, a plug-and-play causal representation learner for meta-learning.

MetaCRL is the method of "Hacking Task Confounder in Meta-Learning" (IJCAI 2024); this package
adds it to MAML, ANIL, Meta-SGD, ProtoNet and users' own ``higher`` or ``torch.func`` loops.

Example:
    >>> from metacrl import MAML, MetaCRLRegularizer
"""

from metacrl.errors import NonFiniteLossError
from metacrl.learners import (
    ANIL,
    MAML,
    EvalOutput,
    MetaCRLLearner,
    MetaSGD,
    MetaStepOutput,
    ProtoNet,
)
from metacrl.models.gated import GatedModel
from metacrl.regularizer import MetaCRLRegularizer, TaskFactors

__version__ = "0.1.0.dev0"

__all__ = [
    "ANIL",
    "MAML",
    "EvalOutput",
    "GatedModel",
    "MetaCRLLearner",
    "MetaCRLRegularizer",
    "MetaSGD",
    "MetaStepOutput",
    "NonFiniteLossError",
    "ProtoNet",
    "TaskFactors",
    "__version__",
]
