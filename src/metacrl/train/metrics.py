"""Metrics logs: one JSON line per record, a CSV copy, and truncation on resume."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog"]


class MetricsLog:
    """An append-only JSONL log of training and validation records.

    Each record has ``kind`` (``"train"`` or ``"val"``) and ``iteration``. Records are flushed as
    they are written, so an interrupted run keeps them; on resume, records after the
    checkpoint's iteration are dropped (:meth:`truncate`), so the log matches the state.

    Args:
        path: The ``.jsonl`` file (created, with its folder, by the first :meth:`append`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = MetricsLog(f"{d}/metrics.jsonl")
        ...     for it in (1, 2, 3):
        ...         log.append({"kind": "train", "iteration": it, "query_loss": 1.0 / it})
        ...     log.truncate(2)                       # resuming from iteration 2
        ...     [r["iteration"] for r in log.read()]
        [1, 2]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """All records, in order (an unfinished last line is ignored).

        Returns:
            The records as dictionaries; an empty list if the file does not exist yet. Reading
            stops at the first line that is not valid JSON (an interrupted write).

        Example:
            >>> import tempfile
            >>> tmp = tempfile.TemporaryDirectory()
            >>> log = MetricsLog(f"{tmp.name}/metrics.jsonl")
            >>> log.read()
            []
            >>> log.append({"kind": "val", "iteration": 5, "accuracy": 0.5})
            >>> log.read()
            [{'kind': 'val', 'iteration': 5, 'accuracy': 0.5}]
            >>> tmp.cleanup()
        """
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to disk.

        Args:
            record: A JSON-serialisable dictionary, usually with ``kind`` and ``iteration``.

        Raises:
            TypeError: If ``record`` is not JSON-serialisable (nothing is written then).

        Example:
            >>> import tempfile
            >>> tmp = tempfile.TemporaryDirectory()
            >>> log = MetricsLog(f"{tmp.name}/metrics.jsonl")
            >>> log.append({"kind": "train", "iteration": 1, "query_loss": 0.25})
            >>> log.path.read_text().splitlines()
            ['{"kind": "train", "iteration": 1, "query_loss": 0.25}']
            >>> tmp.cleanup()
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def truncate(self, iteration: int) -> None:
        """Keep only the records of iterations up to ``iteration`` (atomically).

        Records without an ``iteration`` count as iteration 0 and are kept. The file is
        created (empty) if it does not exist.

        Args:
            iteration: The last iteration to keep (the checkpoint's, on resume).

        Example:
            >>> import tempfile
            >>> tmp = tempfile.TemporaryDirectory()
            >>> log = MetricsLog(f"{tmp.name}/metrics.jsonl")
            >>> for it in (1, 2, 3):
            ...     log.append({"kind": "train", "iteration": it})
            >>> log.truncate(1)
            >>> log.read()
            [{'kind': 'train', 'iteration': 1}]
            >>> tmp.cleanup()
        """
        kept = [r for r in self.read() if int(r.get("iteration", 0)) <= iteration]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)

    def write_csv(self, path: str | Path) -> None:
        """Write the records as CSV (one column per key seen).

        Args:
            path: The ``.csv`` file to write (replaced).

        Example:
            >>> import tempfile
            >>> tmp = tempfile.TemporaryDirectory()
            >>> log = MetricsLog(f"{tmp.name}/metrics.jsonl")
            >>> log.append({"kind": "train", "iteration": 1, "query_loss": 0.5})
            >>> log.append({"kind": "val", "iteration": 1, "accuracy": 0.75})
            >>> log.write_csv(f"{tmp.name}/metrics.csv")
            >>> rows = Path(f"{tmp.name}/metrics.csv").read_text().splitlines()
            >>> [row.split(",") for row in rows]  # doctest: +NORMALIZE_WHITESPACE
            [['kind', 'iteration', 'query_loss', 'accuracy'], ['train', '1', '0.5', ''],
             ['val', '1', '', '0.75']]
            >>> tmp.cleanup()
        """
        records = self.read()
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
