"""The ``--out`` folder of ``metacrl train``: its layout, what it holds, and what a run may do.

``--out`` holds one run of each arm (``base/`` without MetaCRL, ``metacrl/`` with it) and the
results of the whole command: ``results.md``, ``results.json`` and ``curves.png``.
:meth:`RunFolder.problem` is the one home of the rules that keep one run from replacing
another's results: a new run needs a folder without results (or ``--overwrite``), and
``--resume`` needs a checkpoint to continue.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metacrl.data.atomic import write_bytes_atomic

__all__ = ["ARM_FOLDERS", "ARM_RESULTS", "RESULT_FILES", "RUN_FILES", "RunFolder"]

ARM_FOLDERS = {False: "base", True: "metacrl"}
"""The folder of each arm under ``--out``, keyed by whether it uses MetaCRL."""
RESULT_FILES = ("results.md", "results.json", "curves.png")
"""The results of the whole command, at the top of ``--out``."""
ARM_RESULTS = ("checkpoint.pt", "best.pt", "result.json")
"""The files of an arm's folder that hold a run's results (a new run refuses to replace them)."""
RUN_FILES = (*ARM_RESULTS, "metrics.jsonl", "metrics.csv", "config.json")
"""Every file a :class:`~metacrl.train.Trainer` writes in an arm's folder."""


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


class RunFolder:
    """The ``--out`` folder of ``metacrl train``.

    Args:
        path: The folder (``--out``); it need not exist yet.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     folder = RunFolder(f"{d}/run")
        ...     folder.arm(True).name, folder.problem([False, True], resume=False) is None
        ('metacrl', True)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def arm(self, metacrl: bool) -> Path:
        """Return the folder of one arm.

        Args:
            metacrl: The arm with MetaCRL (``metacrl/``) or without it (``base/``).

        Returns:
            ``--out/metacrl`` or ``--out/base``.
        """
        return self.path / ARM_FOLDERS[metacrl]

    def checkpoints(self) -> list[bool]:
        """Return the arms (``metacrl`` flags) whose folder holds a ``checkpoint.pt``.

        Returns:
            ``False`` (``base/``) and/or ``True`` (``metacrl/``), in that order.
        """
        return [arm for arm in ARM_FOLDERS if (self.arm(arm) / "checkpoint.pt").is_file()]

    def results(self) -> list[Path]:
        """Return the files that hold results of a run: what a new run must not replace.

        Returns:
            The existing ``results.md``, ``results.json``, ``curves.png`` and each arm's
            ``checkpoint.pt``, ``best.pt`` and ``result.json``. A ``metrics.jsonl`` without a
            checkpoint is not one: it is the log of a run that died before saving anything,
            which a new run starts over.
        """
        files = [self.path / name for name in RESULT_FILES]
        files += [self.arm(arm) / name for arm in ARM_FOLDERS for name in ARM_RESULTS]
        return [file for file in files if file.exists()]

    def _place_problem(self, arms: Iterable[bool]) -> str | None:
        """Why ``--out`` cannot be a folder this run writes in, or ``None``."""
        for folder in (self.path, *(self.arm(arm) for arm in arms)):
            if folder.exists() and not folder.is_dir():
                return f"--out {self.path}: {folder} is a file, not a folder"
        ancestor = _existing_ancestor(self.path)
        if not ancestor.is_dir():
            return f"--out {self.path}: {ancestor} is a file, not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"--out {self.path}: cannot write in {ancestor} (permission denied)"
        return None

    def problem(self, arms: Sequence[bool], *, resume: bool, overwrite: bool = False) -> str | None:
        """Return why a run of ``arms`` may not use this folder, or ``None`` if it may.

        The rules: ``--out`` must be (or become) a folder; a new run refuses a folder that
        holds results (:meth:`results`) unless ``overwrite``; ``resume`` needs a checkpoint of
        at least one arm and no checkpoint of an arm this run does not train (its row would
        vanish from the results).

        Args:
            arms: The arms of the run (``metacrl`` flags, :meth:`TrainConfig.arms
                <metacrl.cli.TrainConfig.arms>`).
            resume: ``--resume`` was given.
            overwrite: ``--overwrite`` was given.

        Returns:
            A one-line message for ``metacrl: error:``, or ``None``.

        Example:
            >>> import tempfile
            >>> with tempfile.TemporaryDirectory() as d:
            ...     print(RunFolder(f"{d}/typo").problem([False, True], resume=True))
            nothing to resume in .../typo: it holds no checkpoint.pt ...
        """
        if resume and overwrite:
            return "--resume and --overwrite exclude each other: continue the run, or replace it"
        place = self._place_problem(arms)
        if place is not None:
            return place
        if overwrite:
            return None
        if resume:
            saved = self.checkpoints()
            if not saved:
                return (
                    f"nothing to resume in {self.path}: it holds no checkpoint.pt (in base/ or "
                    "metacrl/); check --out, or leave out --resume to start the run"
                )
            others = [ARM_FOLDERS[arm] + "/" for arm in saved if arm not in arms]
            if others:
                return (
                    f"{self.path} also holds the run {', '.join(others)}, which these settings "
                    "do not train, so its results would be lost: resume with the settings of "
                    "that run, use --overwrite to replace it, or choose another --out"
                )
            return None
        held = self.results()
        if held:
            names = ", ".join(str(file.relative_to(self.path)) for file in held)
            return (
                f"{self.path} already holds results ({names}): pass --resume to continue its "
                "run, --overwrite to replace it, or choose another --out"
            )
        return None

    def clear(self) -> list[Path]:
        """Delete what a run writes here (for ``--overwrite``); other files are left alone.

        Returns:
            The files deleted: :data:`RESULT_FILES` and each arm's :data:`RUN_FILES` (an arm's
            folder left empty is removed too).
        """
        files = [self.path / name for name in RESULT_FILES]
        files += [self.arm(arm) / name for arm in ARM_FOLDERS for name in RUN_FILES]
        removed = [file for file in files if file.is_file()]
        for file in removed:
            file.unlink()
        for arm in ARM_FOLDERS:
            if self.arm(arm).is_dir() and not any(self.arm(arm).iterdir()):
                self.arm(arm).rmdir()
        return removed

    def write_results(self, table: str, summary: Mapping[str, Any]) -> tuple[Path, Path]:
        """Write ``results.md`` and ``results.json``, each atomically.

        Args:
            table: The Markdown table.
            summary: What ``results.json`` holds (the configuration and the rows).

        Returns:
            The two files.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        markdown, data = self.path / "results.md", self.path / "results.json"
        write_bytes_atomic(markdown, (table + "\n").encode("utf-8"))
        write_bytes_atomic(data, json.dumps(summary, indent=2).encode("utf-8"))
        return markdown, data
