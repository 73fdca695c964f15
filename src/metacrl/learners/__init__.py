"""The reference meta-learners (MAML, ANIL, Meta-SGD, ProtoNet) and the interface they share.

:class:`Learner` is what training and evaluation code relies on; :class:`MetaLearner` is the
per-task loop of the reference learners, and :class:`PluggableLearner` the part of it that a
plug-in such as MetaCRL (:mod:`metacrl.regularizer`, one layer up) uses.
"""

from metacrl.learners.anil import ANIL
from metacrl.learners.capacity import CapacityControl, LinearMap
from metacrl.learners.features import TaskFeatures
from metacrl.learners.fit import fit, train_step
from metacrl.learners.inner_loop import inner_loop
from metacrl.learners.learner import Learner
from metacrl.learners.maml import MAML
from metacrl.learners.meta_batch import MetaBatch
from metacrl.learners.meta_learner import MetaLearner
from metacrl.learners.metasgd import MetaSGD
from metacrl.learners.outputs import EvalOutput, MetaStepOutput, confidence_interval
from metacrl.learners.protocol import PluggableLearner
from metacrl.learners.protonet import ProtoNet

__all__ = [
    "ANIL",
    "MAML",
    "CapacityControl",
    "EvalOutput",
    "Learner",
    "LinearMap",
    "MetaBatch",
    "MetaLearner",
    "MetaSGD",
    "MetaStepOutput",
    "PluggableLearner",
    "ProtoNet",
    "TaskFeatures",
    "confidence_interval",
    "fit",
    "inner_loop",
    "train_step",
]
