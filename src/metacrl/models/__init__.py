"""Backbones that follow the metacrl model contract (``features``, ``head``, ``feature_dim``)."""

from metacrl.models.contract import FeatureHead, check_model
from metacrl.models.conv4 import Conv4
from metacrl.models.dropblock import DropBlock
from metacrl.models.mlp import MLP
from metacrl.models.norm import TaskBatchNorm
from metacrl.models.resnet12 import ResNet12
from metacrl.models.task_model import TaskModel

__all__ = [
    "MLP",
    "Conv4",
    "DropBlock",
    "FeatureHead",
    "ResNet12",
    "TaskBatchNorm",
    "TaskModel",
    "check_model",
]
