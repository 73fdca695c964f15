"""Checkpoints written atomically and read without running code from the file.

A crash never leaves a half-written checkpoint, and reading one only rebuilds tensors and plain
values (``torch.load(weights_only=True)``): a file that asks for anything else is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from metacrl.data.atomic import atomic_path

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
    interrupted save leaves no temporary file behind. Missing parent folders are created. The
    file gets the mode the umask gives new files (:func:`~metacrl.data.atomic.atomic_path`).

    Args:
        obj: What to save: tensors and plain values (dicts, lists, tuples, strings, numbers,
            ``None``), which is what :func:`load_checkpoint` reads back; a ``"format"`` entry
            is added.
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
    with atomic_path(target) as tmp:
        torch.save({"format": FORMAT, **obj}, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`atomic_save`, without running code from it.

    The file is read with ``torch.load(weights_only=True)``: only tensors and plain values are
    rebuilt, so a crafted file cannot run code; one that holds other objects is refused.

    Args:
        path: The checkpoint file.
        map_location: Where to put its tensors (default ``"cpu"``), as in ``torch.load``.

    Returns:
        The saved dictionary, with its ``"format"`` entry.

    Raises:
        CheckpointError: If the file is missing, truncated or corrupt, holds objects other
            than tensors and plain values, or is not a metacrl checkpoint (the file is named,
            on one line).

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
        obj = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused(err)
        if refused is None:  # a damaged pickle
            raise CheckpointError(_damaged(file, err)) from err
        raise CheckpointError(
            f"{file} is not a metacrl checkpoint: it asks for objects other than tensors and "
            f"plain values, which are never loaded ({refused})"
        ) from err
    except Exception as err:  # a damaged file fails in many ways
        raise CheckpointError(_damaged(file, err)) from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a metacrl checkpoint")
    return obj


def _refused(err: pickle.UnpicklingError) -> str | None:
    """What ``weights_only`` refused to load, or ``None`` if ``err`` is not such a refusal."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Weights only load failed"):
        return None
    detail = [line for line in lines[1:] if "GLOBAL" in line or "Unsupported" in line]
    return detail[0] if detail else "an object of an unknown type"


def _damaged(file: Path, err: BaseException) -> str:
    """The one-line message for a file that cannot be read as a checkpoint at all."""
    text = " ".join(str(err).split()) or type(err).__name__
    return (
        f"{file} is not a readable checkpoint: it is truncated or corrupt "
        f"({file.stat().st_size} bytes; {text.split('. ')[0]})"
    )


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
