"""Write a benchmark's Markdown tables into a marked block of a docs page."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path


def update_block(page: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- {name}:begin -->`` and ``<!-- {name}:end -->``.

    Raises:
        SystemExit: If the page has no such block (nothing is written).
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = page.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{page} has no {begin} ... {end} block to replace")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    page.write_text(f"{head}{begin}\n{text}\n{end}{tail}")
    print(f"updated the {name} tables in {page}")


def print_or_update(report: Callable[[], None], page: Path | None, name: str) -> None:
    """Run ``report`` (which prints Markdown); print its text, or write it into ``page``'s
    ``name`` block when ``page`` is given."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        report()
    if page is None:
        print(buffer.getvalue(), end="")
    else:
        update_block(page, name, buffer.getvalue().strip("\n"))
