"""The reference meta-learners: MAML, ANIL, Meta-SGD and ProtoNet."""

from metacrl.learners.anil import ANIL
from metacrl.learners.base import Learner, MetaLearner
from metacrl.learners.batch import MetaBatch
from metacrl.learners.inner_loop import inner_loop
from metacrl.learners.maml import MAML
from metacrl.learners.metasgd import MetaSGD
from metacrl.learners.outputs import EvalOutput, MetaStepOutput, confidence_interval
from metacrl.learners.protonet import ProtoNet
from metacrl.learners.wrapped import MetaCRLLearner

__all__ = [
    "ANIL",
    "MAML",
    "EvalOutput",
    "Learner",
    "MetaBatch",
    "MetaCRLLearner",
    "MetaLearner",
    "MetaSGD",
    "MetaStepOutput",
    "ProtoNet",
    "confidence_interval",
    "inner_loop",
]
