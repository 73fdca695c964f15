"""The training job behind ``metacrl train``: the trainer, checkpoints, metrics, evaluation.

:class:`Trainer` takes built objects (a learner, its task datasets and
:class:`TrainSettings`), so it runs from Python as well as from the command line.
"""

from metacrl.train.checkpoint import CheckpointError, atomic_save, load_checkpoint
from metacrl.train.evaluate import Evaluation, evaluate_episodes
from metacrl.train.interrupt import STOP_SIGNALS, StopRequest, TrainingInterrupted
from metacrl.train.metrics import LogTrim, MetricsLog, TornRecordWarning
from metacrl.train.result import ArmResult
from metacrl.train.settings import RESUMABLE_KEYS, TrainSettings, config_mismatch
from metacrl.train.trainer import Trainer

__all__ = [
    "RESUMABLE_KEYS",
    "STOP_SIGNALS",
    "ArmResult",
    "CheckpointError",
    "Evaluation",
    "LogTrim",
    "MetricsLog",
    "StopRequest",
    "TornRecordWarning",
    "TrainSettings",
    "Trainer",
    "TrainingInterrupted",
    "atomic_save",
    "config_mismatch",
    "evaluate_episodes",
    "load_checkpoint",
]
