"""The training job behind ``metacrl train``: checkpoints, metrics, evaluation, plots."""

from metacrl.train.checkpoint import CheckpointError, atomic_save, load_checkpoint
from metacrl.train.evaluate import Evaluation, evaluate_episodes
from metacrl.train.interrupt import StopRequest, TrainingInterrupted
from metacrl.train.metrics import MetricsLog
from metacrl.train.trainer import ArmResult, Trainer

__all__ = [
    "ArmResult",
    "CheckpointError",
    "Evaluation",
    "MetricsLog",
    "StopRequest",
    "Trainer",
    "TrainingInterrupted",
    "atomic_save",
    "evaluate_episodes",
    "load_checkpoint",
]
