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
    """A file is not a metacrl checkpoint, or does not match the run that loads it.

    A ``ValueError``; the command line prints it on one line and exits with code 2.

    Example:
        >>> try:
        ...     load_checkpoint("/nonexistent/checkpoint.pt")
        ... except CheckpointError as err:
        ...     print(err)
        checkpoint not found: /nonexistent/checkpoint.pt
    """


def atomic_save(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    A reader sees the previous file or the complete new one, never a partial one; an
    interrupted save leaves no temporary file behind. Missing parent folders are created.

    Args:
        obj: What to save; a ``"format"`` entry is added.
        path: The destination; replaced atomically.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     atomic_save({"step": 3, "w": torch.ones(2)}, f"{d}/run/checkpoint.pt")
        ...     load_checkpoint(f"{d}/run/checkpoint.pt")["step"]
        3
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

    Checkpoints are full pickles (``weights_only=False``): only load files you trust.

    Args:
        path: The checkpoint file.
        map_location: Where to put its tensors (default ``"cpu"``), as in ``torch.load``.

    Returns:
        The saved dictionary, with its ``"format"`` entry.

    Raises:
        CheckpointError: If the file is missing or is not a metacrl checkpoint.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save({"step": 3}, f"{d}/other.pt")        # not written by atomic_save
        ...     load_checkpoint(f"{d}/other.pt")
        Traceback (most recent call last):
          ...
        metacrl.train.checkpoint.CheckpointError: .../other.pt is not a metacrl checkpoint
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
    """Return the global random states that training draws from (torch CPU and CUDA).

    Returns:
        ``{"torch": ...}``, plus ``"cuda"`` when CUDA is available; restore with
        :func:`set_rng_state`.

    Example:
        >>> state = rng_state()
        >>> a = torch.rand(1)
        >>> set_rng_state(state)
        >>> bool(torch.equal(a, torch.rand(1)))
        True
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved.

    Args:
        state: The dictionary returned by :func:`rng_state` (CUDA states are restored only when
            CUDA is available).

    Example:
        >>> set_rng_state(rng_state())   # a no-op round trip
    """
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
