"""Task confounders: a nuisance attribute tied to the label through a label-to-value mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacrl.data.shapes_nuisance import NUISANCES, NUM_VALUES, nuisance_index

__all__ = ["CONFOUNDERS", "Confounder", "draw_confounder", "draw_nuisances"]

CONFOUNDERS = ("switch", "fixed", "task")
"""How the confounder is chosen: per meta-batch at random, per meta-batch always the same
attribute, or per task."""


@dataclass(frozen=True)
class Confounder:
    """A spurious label-nuisance tie.

    Attributes:
        attribute: The tied nuisance (one of ``NUISANCES``).
        mapping: ``mapping[label]`` is the value the label's examples take (with probability
            ``rho``); the values are distinct.

    Example:
        >>> from metacrl.data import ConfoundedShapes
        >>> c = ConfoundedShapes("train", batchsz=4, meta_batch_size=4).confounder_of(0)
        >>> c.attribute in ("foreground", "background", "texture"), len(c.mapping)
        (True, 5)
    """

    attribute: str
    mapping: tuple[int, ...]


def draw_confounder(rng: np.random.Generator, n_way: int, attribute: str | None) -> Confounder:
    """Draw a confounder: the attribute (unless given) and an injective label-to-value mapping.

    Args:
        rng: The generator of the meta-batch (or task) the confounder belongs to.
        n_way: The number of labels (at most ``NUM_VALUES``).
        attribute: The nuisance to tie, or ``None`` to draw one uniformly.

    Returns:
        The :class:`Confounder`.

    Raises:
        ValueError: If ``n_way > NUM_VALUES`` or ``attribute`` is unknown.

    Example:
        >>> c = draw_confounder(np.random.default_rng(0), 5, "background")
        >>> c.attribute, len(set(c.mapping))
        ('background', 5)
    """
    if n_way > NUM_VALUES:
        raise ValueError(
            f"n_way={n_way} labels cannot map to distinct values of a nuisance with only "
            f"{NUM_VALUES} values"
        )
    if attribute is None:
        attribute = NUISANCES[int(rng.integers(len(NUISANCES)))]
    else:
        nuisance_index(attribute)
    mapping = rng.choice(NUM_VALUES, size=n_way, replace=False)
    return Confounder(attribute, tuple(int(v) for v in mapping))


def draw_nuisances(
    rng: np.random.Generator,
    labels: np.ndarray,
    confounder: Confounder | None,
    rho: float,
) -> np.ndarray:
    """Draw every example's nuisance values, tying one to the label if there is a confounder.

    All nuisances are uniform over their values; with a confounder, each example independently
    (with probability ``rho``) takes ``mapping[label]`` for the confounded attribute instead. An
    untied example can still hit the mapped value by chance, so the fraction of examples showing
    it is ``rho + (1 - rho) / NUM_VALUES``.

    Args:
        rng: The task's generator.
        labels: The examples' labels ``[M]``.
        confounder: The confounder, or ``None`` (all nuisances independent of the label).
        rho: The tie probability.

    Returns:
        ``int64`` values ``[M, len(NUISANCES)]``, columns in ``NUISANCES`` order.

    Example:
        >>> c = Confounder("texture", (3, 5))
        >>> v = draw_nuisances(np.random.default_rng(0), np.array([0, 1, 0]), c, rho=1.0)
        >>> v[:, 2].tolist()
        [3, 5, 3]
    """
    labels = np.asarray(labels, dtype=np.int64)
    values = rng.integers(0, NUM_VALUES, size=(len(labels), len(NUISANCES)), dtype=np.int64)
    tied = rng.random(len(labels)) < rho
    if confounder is not None:
        column = nuisance_index(confounder.attribute)
        mapped = np.asarray(confounder.mapping, dtype=np.int64)[labels]
        values[tied, column] = mapped[tied]
    return values
