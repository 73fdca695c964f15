"""A Griffe extension for the API reference: make the source's docstrings render cleanly.

Two things in the docstrings are meant for Sphinx or doctest, not for mkdocstrings:

* ``Example:`` headings. The Google style accepts ``Example:`` and ``Examples:``, but Griffe
  only parses the plural as an examples section (``>>>`` blocks shown as code). Under the
  singular, doctest prompts and outputs would be read as Markdown. The heading is renamed.
* Sphinx roles such as ``:class:`~metacrl.data.TaskLoader``` and ``:math:`w_t```. They are
  shown as inline code: the short name for ``~`` targets, the text for ``text <target>``, and
  the LaTeX source for ``:math:`` (the site has no math renderer, so that it builds offline).
* reST's ``text::`` before a literal block: the block is kept (Markdown shows an indented block
  as code), and the ``::`` becomes ``:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?[a-z]+:`([^`]+)`")
_LITERAL = re.compile(r"::\n(?=\s*\n)")


def _role_text(match: re.Match[str]) -> str:
    text = match.group(1)
    explicit = re.fullmatch(r"(.+?)\s*<[^>]+>", text)
    if explicit:
        text = explicit.group(1)
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


class CleanDocstrings(griffe.Extension):
    """Rename ``Example:`` headings and turn reST/Sphinx markup into Markdown in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring before it is parsed.

        Args:
            obj: The object just created by Griffe.
            **kwargs: Other arguments of the event (unused).
        """
        if obj.docstring is not None:
            value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
            value = _LITERAL.sub(":\n", value)  # reST "text::" before a literal block
            obj.docstring.value = _ROLE.sub(_role_text, value)
