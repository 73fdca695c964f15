"""The code of the documentation runs as it stands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["plugging-in.md"])
def test_the_snippets_of_a_page_run_in_order(page, capsys):
    namespace: dict[str, object] = {}
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page}, python block {i}", "exec"), namespace)
    assert "crl/invariance" in capsys.readouterr().out  # the loops printed their terms
