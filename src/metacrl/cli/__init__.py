"""The ``metacrl`` command line: ``metacrl train`` and ``metacrl eval``."""

from metacrl.cli.config import ConfigError, TrainConfig, load_config
from metacrl.cli.main import build_parser, main

__all__ = ["ConfigError", "TrainConfig", "build_parser", "load_config", "main"]
