"""Reading dragen1860/MAML-Pytorch's split files: ``root/{mode}.csv``, header ``filename,label``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CsvSplit", "read_split_csv"]


@dataclass(frozen=True)
class CsvSplit:
    """The images of one split as listed by its CSV file.

    Attributes:
        csv_path: The CSV file.
        filenames: Image filenames (relative to ``root/images``), in file order.
        labels: The class name of each image (e.g. ``n01532829``).
        lines: The CSV line number of each image, for error messages.

    Example:
        >>> split = CsvSplit(Path("train.csv"), ["a.jpg", "b.jpg"], ["n01", "n02"], [2, 3])
        >>> dict(zip(split.filenames, split.labels))
        {'a.jpg': 'n01', 'b.jpg': 'n02'}
    """

    csv_path: Path
    filenames: list[str]
    labels: list[str]
    lines: list[int]


def read_split_csv(csv_path: str | Path) -> CsvSplit:
    r"""Parse a split CSV: a ``filename,label`` header, then one row per image.

    Args:
        csv_path: The CSV file.

    Returns:
        The parsed :class:`CsvSplit`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the header is not ``filename,label``, a row does not have two non-empty
            fields, a filename is listed twice, or there are no rows (the file and line are
            named).

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "train.csv")
        ...     _ = open(p, "w").write("filename,label\na.jpg,n01\nb.jpg,n02\n")
        ...     read_split_csv(p).labels
        ['n01', 'n02']
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"split CSV not found: {csv_path}")
    filenames: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["filename", "label"]:
            raise ValueError(
                f"{csv_path}: the first line must be the header 'filename,label', got "
                f"{','.join(header) if header is not None else 'an empty file'!r}"
            )
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(
                    f"{csv_path}, line {line}: expected 'filename,label', got {','.join(row)!r}"
                )
            name, label = row[0].strip(), row[1].strip()
            if name in seen:
                raise ValueError(
                    f"{csv_path}, line {line}: image {name!r} is already listed on line "
                    f"{seen[name]}"
                )
            seen[name] = line
            filenames.append(name)
            labels.append(label)
            lines.append(line)
    if not filenames:
        raise ValueError(f"{csv_path} lists no images (only a header)")
    return CsvSplit(csv_path, filenames, labels, lines)
