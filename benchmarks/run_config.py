"""One rule for both evidence scripts: is a stored run still what its definition trains today?"""

from __future__ import annotations

from typing import Any

from metacrl.regularizer import DEFAULTS

__all__ = ["MACHINE_KEYS", "METACRL_KEYS", "STORED_RUNS_SETTINGS", "differing_settings"]

# Settings that may differ between machines, or only say where a run was stored.
MACHINE_KEYS = frozenset({"data_root", "out", "device", "workers"})
# MetaCRL's settings (TrainConfig names): they play no part in a run without MetaCRL.
METACRL_KEYS = frozenset(DEFAULTS.as_dict()) | {"gates"}
# MetaCRL settings in which the stored evidence and diagnostics runs differ from the library's
# defaults: environments of all queries (the default keeps 10) and the public code's step on Xi
# (the default is 0.04, chosen by diagnose.py's sweep). Both scripts train with them unless a
# run's own definition says otherwise, so that the stored runs stay what they train.
STORED_RUNS_SETTINGS: dict[str, Any] = {"env_queries": None, "xi_lr": 0.4}


def differing_settings(
    expected: dict[str, Any], stored: dict[str, Any], *, metacrl: bool
) -> list[str]:
    """The settings in which a stored run's configuration differs from today's definition.

    Keys an older record does not have (settings added since) are not compared, nor those of
    :data:`MACHINE_KEYS`, nor MetaCRL's for a run without MetaCRL. The reports refuse a run
    with any difference, so a change of defaults cannot leave a stale row.

    Args:
        expected: ``TrainConfig.as_dict()`` of the run as its script would train it now.
        stored: The configuration its JSON file recorded.
        metacrl: Whether the run trains MetaCRL.

    Returns:
        The differing setting names, sorted.
    """
    ignored = MACHINE_KEYS if metacrl else MACHINE_KEYS | METACRL_KEYS
    return sorted(
        k for k in expected if k in stored and k not in ignored and expected[k] != stored[k]
    )
