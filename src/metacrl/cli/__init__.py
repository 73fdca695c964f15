"""The ``metacrl`` command line: ``metacrl train`` and ``metacrl eval``.

:class:`TrainConfig` holds the settings (and each one's help), :mod:`metacrl.cli.build` builds
the datasets, learner and :class:`~metacrl.train.Trainer` they describe, and :func:`main` runs
the commands.
"""

from metacrl.cli.config import ConfigError, TrainConfig
from metacrl.cli.main import build_parser, main
from metacrl.cli.options import options_markdown
from metacrl.cli.sources import load_config

__all__ = ["ConfigError", "TrainConfig", "build_parser", "load_config", "main", "options_markdown"]
