"""The options of ``metacrl train``: argparse's arguments and the docs' table, from one source.

Every :class:`~metacrl.cli.TrainConfig` field is an option; its help text, type and default
come from the field (:func:`~metacrl.cli.config.option_help`,
:func:`~metacrl.cli.config.option_type`). :func:`add_train_options` adds them to a parser,
grouped in :data:`SECTIONS`; :func:`options_markdown` writes the same options as the tables of
``docs/cli.md`` (a test keeps that page in step).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import fields
from typing import NamedTuple

from metacrl.cli.config import (
    TrainConfig,
    describe_default,
    option_flag,
    option_help,
    option_type,
)

__all__ = [
    "RUN_OPTIONS",
    "SECTIONS",
    "RunOption",
    "Section",
    "add_train_options",
    "options_markdown",
]


class Section(NamedTuple):
    """A group of options: a heading in ``--help`` and a table in the docs.

    Attributes:
        title: The heading.
        first: The first setting of the group; it runs up to the next group's first.
        see: A Markdown link to more about the group, for the docs (default: none).

    Example:
        >>> SECTIONS[0]
        Section(title='What to train', first='dataset', see='')
    """

    title: str
    first: str
    see: str = ""


class RunOption(NamedTuple):
    """An option of ``metacrl train`` that is not a setting (nor a config-file key).

    Attributes:
        flag: The option, e.g. ``"--resume"``.
        metavar: Its argument's name, or ``""`` for a switch.
        help: What it does.

    Example:
        >>> [option.flag for option in RUN_OPTIONS]
        ['--config', '--resume', '--overwrite', '--no-progress']
    """

    flag: str
    metavar: str
    help: str


SECTIONS = (
    Section("What to train", "dataset"),
    Section("The tasks and the meta-learner", "ways"),
    Section("ConfoundedShapes", "rho", "[Data](data.md#confoundedshapes)"),
    Section("MetaCRL", "num_factors", "[The method](method.md)"),
    Section("Evaluation, machine and output", "val_every"),
)
"""The groups of options, in the order of the :class:`~metacrl.cli.TrainConfig` fields."""

RUN_OPTIONS = (
    RunOption("--config", "FILE", "a TOML file of settings, whose keys are the option names"),
    RunOption(
        "--resume",
        "",
        "continue the run in --out where it stopped (an --out without a checkpoint is an error)",
    ),
    RunOption(
        "--overwrite",
        "",
        "replace the run and results that --out holds (otherwise a new run refuses such a folder)",
    ),
    RunOption("--no-progress", "", "hide the progress bars (training, caching, resizing)"),
)
"""The options of the run itself, listed after the settings (in the last group)."""


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _sections() -> Iterator[tuple[Section, list[str]]]:
    """Each section with its settings, in field order."""
    names = list(_FIELDS)
    bounds = [names.index(section.first) for section in SECTIONS] + [len(names)]
    for section, lo, hi in zip(SECTIONS, bounds, bounds[1:], strict=False):
        yield section, names[lo:hi]


def _metavar(name: str) -> str:
    kind, choices, _ = option_type(name)
    if choices:
        return "{" + ",".join(choices) + "}"
    if kind is int:
        return "N"
    if kind is float:
        return "X"
    return str(_FIELDS[name].metadata["metavar"])


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Add every setting, then :data:`RUN_OPTIONS`, to ``parser``, grouped by :data:`SECTIONS`.

    Switches (``bool`` settings) take ``--name`` / ``--no-name``; numbers are parsed as ``int``
    or ``float`` as their field says. Give the parser ``argument_default=argparse.SUPPRESS`` to
    leave options out of the namespace unless they are given.

    Args:
        parser: The ``train`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
        >>> add_train_options(parser)
        >>> vars(parser.parse_args(["--ways", "3", "--rho", "0", "--no-gates"]))
        {'ways': 3, 'rho': 0.0, 'gates': False}
    """
    for section, names in _sections():
        group = parser.add_argument_group(section.title)
        for name in names:
            flag = option_flag(name)
            text = option_help(name).replace("%", "%%")
            kind = option_type(name).kind
            if kind is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
            elif kind in (int, float):
                group.add_argument(flag, type=kind, metavar=_metavar(name), help=text)
            else:
                group.add_argument(flag, metavar=_metavar(name), help=text)
        if section == SECTIONS[-1]:
            for option in RUN_OPTIONS:
                if option.metavar:
                    group.add_argument(option.flag, metavar=option.metavar, help=option.help)
                else:
                    group.add_argument(option.flag, action="store_true", help=option.help)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _row(name: str) -> str:
    kind, choices, _ = option_type(name)
    flag = option_flag(name)
    if kind is bool:
        option = f"`{flag}` / `--no-{flag[2:]}`"
    else:
        option = f"`{flag} {'NAME' if choices else _metavar(name)}`"
    default = describe_default(name)
    literal = _FIELDS[name].default is not None and kind in (bool, str)
    meaning = _sentence(str(_FIELDS[name].metadata["help"]))
    if choices:
        meaning += " One of " + ", ".join(f"`{c}`" for c in choices) + "."
    return f"| {option} | {f'`{default}`' if literal else default or '—'} | {meaning} |"


def options_markdown() -> str:
    """Return the options of ``metacrl train`` as Markdown tables, one per section.

    ``docs/cli.md`` holds this text between its ``<!-- options -->`` markers; print it to
    refresh that page after changing a setting:
    ``python -c "from metacrl.cli import options_markdown; print(options_markdown())"``.

    Returns:
        For each section, a bold heading and a table of option, default and meaning.

    Example:
        >>> text = options_markdown()
        >>> text.splitlines()[0]
        '**What to train**'
        >>> print(next(line for line in text.splitlines() if "--ways" in line))
        | `--ways N` | 5 | Classes per task (N-way). |
    """
    blocks = []
    for section, names in _sections():
        heading = f"**{section.title}**" + (f" (see {section.see})" if section.see else "")
        rows = ["| option | default | meaning |", "| --- | --- | --- |"]
        rows += [_row(name) for name in names]
        if section == SECTIONS[-1]:
            rows += [
                f"| `{o.flag}{' ' + o.metavar if o.metavar else ''}` | — | {_sentence(o.help)} |"
                for o in RUN_OPTIONS
            ]
        blocks.append("\n".join([heading, "", *rows]))
    return "\n\n".join(blocks) + "\n"
