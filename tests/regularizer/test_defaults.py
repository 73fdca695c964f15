"""One set of MetaCRL defaults: the class, ``metacrl train`` and the docs' settings table."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from metacrl import MetaCRLRegularizer
from metacrl.cli import TrainConfig
from metacrl.regularizer import DEFAULTS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugging-in.md"
CLI_NAMES = {"gates": "use_gates"}  # TrainConfig field -> argument, where they differ


def test_the_class_takes_every_default_from_defaults():
    signature = inspect.signature(MetaCRLRegularizer.__init__).parameters
    arguments = {n: p.default for n, p in signature.items() if n not in ("self", "feature_dim")}
    assert arguments == DEFAULTS.as_dict()
    reg = MetaCRLRegularizer(feature_dim=12)
    assert reg.num_factors == 12 and reg.invariance == DEFAULTS.invariance


def test_metacrl_train_uses_the_same_defaults():
    shared = 0
    for field in dataclasses.fields(TrainConfig):
        name = CLI_NAMES.get(field.name, field.name)
        if name in DEFAULTS.as_dict():
            assert field.default == getattr(DEFAULTS, name), field.name
            shared += 1
    assert shared >= 10


def test_the_settings_table_of_the_docs_shows_the_defaults():
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| ([^|]+) \|", DOCS.read_text(), re.MULTILINE)
    shown: dict[str, str] = {}
    for first, second, default in rows:
        values = [v.strip() for v in default.split(",")]
        for name, value in zip([n for n in (first, second) if n], values, strict=True):
            shown[name] = value.strip("`")
    for name, value in DEFAULTS.as_dict().items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert float(shown[name]) == value, name  # 1e-3 and 0.001 alike
        else:
            expected = f'"{value}"' if isinstance(value, str) else str(value)
            assert shown[name] == expected, name
