"""Shared fixtures and the ``metacrl train`` test configuration; plain helpers are in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from metacrl.cli.config import TrainConfig

from helpers import ClusterTasks


def tiny_config(**changes: object) -> TrainConfig:
    """A resolved ``metacrl train`` configuration small enough for a test (Conv4-4 at 16x16)."""
    settings: dict[str, object] = dict(
        iterations=8,
        val_every=4,
        val_tasks=4,
        test_tasks=4,
        hidden=4,
        image_size=16,
        ways=3,
        queries=2,
        meta_batch=2,
    )
    settings.update(changes)
    return TrainConfig(**settings).resolved()  # type: ignore[arg-type]


@pytest.fixture
def clusters() -> ClusterTasks:
    return ClusterTasks()


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process's umask after a test that sets it."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)
