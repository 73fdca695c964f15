"""Where the settings of a run come from: the defaults, a TOML config file, the command line."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metacrl.cli.config import ConfigError, TrainConfig, check_values, config_keys

__all__ = ["load_config", "make_config"]


def load_config(path: str | Path) -> dict[str, Any]:
    r"""Read a TOML config file; every key must be a :class:`TrainConfig` field.

    Keys may use dashes or underscores (``inner-lr`` or ``inner_lr``). Each value is checked
    here (:func:`~metacrl.cli.config.check_values`); how they go together is checked by
    :meth:`TrainConfig.resolved`.

    Args:
        path: The TOML file.

    Returns:
        The settings it makes, keyed by field name (underscores).

    Raises:
        ConfigError: If the file is missing, is not valid TOML, sets an unknown key, or gives
            a value of the wrong type or out of range.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "run.toml")
        ...     _ = open(path, "w").write('learner = "protonet"\ninner-steps = 5\n')
        ...     load_config(path)
        {'learner': 'protonet', 'inner_steps': 5}
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    try:
        raw = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {file} is not valid TOML: {err}") from err
    known = config_keys()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(
                f"config file {file}: unknown key {key!r} (known keys: {', '.join(sorted(known))})"
            )
        values[name] = value
    return check_values(values, f"config file {file}: ")


def make_config(options: Mapping[str, Any]) -> TrainConfig:
    """Return the resolved settings: the defaults, then the config file, then the options.

    Args:
        options: The parsed ``metacrl train`` options (those left out are absent); its
            ``"config"`` entry, if any, names the TOML file.

    Returns:
        The resolved configuration.

    Raises:
        ConfigError: If the file or a value is bad (see :func:`load_config` and
            :meth:`TrainConfig.resolved`).

    Example:
        >>> make_config({"learner": "anil", "resume": True}).inner_lr
        0.1
    """
    values: dict[str, Any] = {}
    if "config" in options:
        values.update(load_config(options["config"]))
    values.update({k: v for k, v in options.items() if k in config_keys()})
    return TrainConfig(**values).resolved()
