"""Checkpoints written atomically: a crash never leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "rng_state", "set_rng_state"]

FORMAT = "metacrl-checkpoint-v1"


class CheckpointError(ValueError):
    """A file is not a metacrl checkpoint, or does not match the run that loads it."""


def atomic_save(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    Args:
        obj: What to save; a ``"format"`` entry is added.
        path: The destination; replaced atomically.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, **obj}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`.

    Raises:
        CheckpointError: If the file is missing or is not a metacrl checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    try:
        obj = torch.load(file, map_location=map_location, weights_only=False)
    except Exception as err:  # a pickle of anything can fail in many ways
        raise CheckpointError(f"{file} is not a readable checkpoint: {err}") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a metacrl checkpoint")
    return obj


def rng_state() -> dict[str, Any]:
    """The global random states that training draws from (torch CPU and CUDA)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
