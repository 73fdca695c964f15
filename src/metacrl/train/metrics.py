"""Metrics logs: one JSON line per record, a CSV copy, and truncation on resume."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from metacrl.data.atomic import write_bytes_atomic

__all__ = ["LogTrim", "MetricsLog", "TornRecordWarning"]


class TornRecordWarning(UserWarning):
    """A line of a metrics log is not a whole record (a write interrupted by a crash or kill).

    :meth:`MetricsLog.read` skips such lines and warns with this category, naming the file and
    the lines.

    Example:
        >>> issubclass(TornRecordWarning, UserWarning)
        True
    """


class LogTrim(NamedTuple):
    """What :meth:`MetricsLog.truncate` removed.

    Attributes:
        records: Whole records after the kept iteration.
        torn: Lines that were not whole records (interrupted writes), by line number.

    Example:
        >>> LogTrim(3, [7])
        LogTrim(records=3, torn=[7])
    """

    records: int
    torn: list[int]


class MetricsLog:
    """An append-only JSONL log of training and validation records.

    Each record has ``kind`` (``"train"`` or ``"val"``) and ``iteration``. Records are flushed as
    they are written, so an interrupted run keeps them; a run that starts or resumes cuts the
    log back to its own iteration first (:meth:`truncate`), so the log always matches the state
    and never mixes in the records of a run that died. A line torn by a crash is skipped and
    reported (:class:`TornRecordWarning`); it never hides the records after it.

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
        LogTrim(records=1, torn=[])
        [1, 2]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _scan(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The whole records, and the numbers of the lines that are not whole records."""
        if not self.path.exists():
            return [], []
        records: list[dict[str, Any]] = []
        torn: list[int] = []
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                torn.append(number)
        return records, torn

    def read(self) -> list[dict[str, Any]]:
        """All whole records, in order; a torn line is skipped and reported.

        Returns:
            The records as dictionaries; an empty list if the file does not exist yet. A line
            that is not a whole JSON record (a write cut short by a crash) is left out with a
            :class:`TornRecordWarning` that names the file and the line; the records after it
            are still read.

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
        records, torn = self._scan()
        if torn:
            warnings.warn(
                f"{self.path}: skipped line(s) {', '.join(map(str, torn))}, which are not whole "
                "records (a write interrupted by a crash)",
                TornRecordWarning,
                stacklevel=2,
            )
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to disk.

        A file that does not end with a newline (a torn last line) gets one first, so the new
        record is never glued to it.

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
        line = json.dumps(record) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as handle:
            if handle.tell() > 0:
                handle.seek(-1, io.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()

    def truncate(self, iteration: int) -> LogTrim:
        """Keep only the whole records of iterations up to ``iteration`` (atomically).

        Records without an ``iteration`` count as iteration 0 and are kept; torn lines are
        dropped. The file is created (empty) if it does not exist. A run starting afresh
        truncates to 0, which empties a log left by a run that died before its first checkpoint.

        Args:
            iteration: The last iteration to keep (the checkpoint's, on resume; 0 for a new run).

        Returns:
            What was removed: the number of records, and the torn lines.

        Example:
            >>> import tempfile
            >>> tmp = tempfile.TemporaryDirectory()
            >>> log = MetricsLog(f"{tmp.name}/metrics.jsonl")
            >>> for it in (1, 2, 3):
            ...     log.append({"kind": "train", "iteration": it})
            >>> log.truncate(1)
            LogTrim(records=2, torn=[])
            >>> log.read()
            [{'kind': 'train', 'iteration': 1}]
            >>> tmp.cleanup()
        """
        records, torn = self._scan()
        kept = [r for r in records if int(r.get("iteration", 0)) <= iteration]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return LogTrim(len(records) - len(kept), torn)

    def write_csv(self, path: str | Path) -> None:
        """Write the records as CSV (one column per key seen), atomically.

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
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
        write_bytes_atomic(Path(path), text.getvalue().encode("utf-8"))
