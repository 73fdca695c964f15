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
        path: The ``.jsonl`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """All records, in order (an unfinished last line is ignored)."""
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
        """Append one record and flush it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def truncate(self, iteration: int) -> None:
        """Keep only the records of iterations up to ``iteration`` (atomically)."""
        kept = [r for r in self.read() if int(r.get("iteration", 0)) <= iteration]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)

    def write_csv(self, path: str | Path) -> None:
        """Write the records as CSV (one column per key seen)."""
        records = self.read()
        columns: list[str] = []
        for record in records:
            columns += [k for k in record if k not in columns]
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(records)
