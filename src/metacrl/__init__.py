"""metacrl: MetaCRL, a plug-and-play causal representation learner for meta-learning.

MetaCRL is the method of "Hacking Task Confounder in Meta-Learning" (IJCAI 2024); this package
adds it to MAML, ANIL, Meta-SGD, ProtoNet and users' own ``higher`` or ``torch.func`` loops.

Example:
    >>> from metacrl import MAML, MetaCRLRegularizer
    >>> reg = MetaCRLRegularizer(feature_dim=model.feature_dim, num_factors=8)
    >>> learner = reg.wrap(MAML(model, inner_lr=0.1, inner_steps=1))
    >>> learner.meta_step(x, y, x, y).loss.requires_grad
    True
"""

from metacrl.errors import NonFiniteLossError
from metacrl.learners import ANIL, MAML, EvalOutput, MetaSGD, MetaStepOutput, ProtoNet
from metacrl.regularizer import GatedModel, MetaCRLLearner, MetaCRLRegularizer, TaskFactors

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
