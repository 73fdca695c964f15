"""Task confounders: a nuisance attribute tied to the label through a label-to-value mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metacrl.data.shapes_nuisance import NUISANCES, NUM_VALUES, nuisance_index

__all__ = [
    "CONFOUNDERS",
    "Confounder",
    "check_conflict_ways",
    "draw_conflict",
    "draw_conflict_nuisances",
    "draw_confounder",
    "draw_nuisances",
]

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


def check_conflict_ways(n_way: int) -> int:
    """Return ``n_way`` if conflict tasks can have that many labels (2 to ``NUM_VALUES``).

    A conflict moves every label's value to another label's value, so it needs two labels at
    least, and distinct values for all of them.

    Args:
        n_way: The number of labels.

    Returns:
        ``n_way``.

    Raises:
        ValueError: If ``n_way < 2`` or ``n_way > NUM_VALUES``.

    Example:
        >>> check_conflict_ways(5)
        5
        >>> check_conflict_ways(1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: conflict tasks need n_way >= 2 (each label's query value is another ...
    """
    if n_way < 2:
        raise ValueError(
            "conflict tasks need n_way >= 2 (each label's query value is another label's "
            f"support value), got n_way={n_way}"
        )
    if n_way > NUM_VALUES:
        raise ValueError(
            f"conflict tasks map labels to distinct values of a nuisance, of which there are "
            f"{NUM_VALUES}; use n_way <= {NUM_VALUES}, got n_way={n_way}"
        )
    return n_way


def draw_conflict(rng: np.random.Generator, n_way: int) -> tuple[Confounder, Confounder]:
    """Draw a conflict: a nuisance tied by one mapping in the support set, another in the query.

    The attribute is drawn uniformly and the support mapping as by :func:`draw_confounder`;
    the query mapping gives label ``j`` the support value of label ``sigma(j)``, for a uniform
    random derangement ``sigma`` (no label keeps its own). So the query set shows the support
    set's values, each on the wrong label: a learner that reads the nuisance off the support
    set predicts a wrong label for every query.

    Args:
        rng: The task's generator.
        n_way: The number of labels (2 to ``NUM_VALUES``).

    Returns:
        ``(support, query)``: two :class:`Confounder` of the same attribute.

    Raises:
        ValueError: If ``n_way`` is out of range (see :func:`check_conflict_ways`).

    Example:
        >>> support, query = draw_conflict(np.random.default_rng(0), 4)
        >>> support.attribute == query.attribute, sorted(support.mapping) == sorted(query.mapping)
        (True, True)
        >>> any(s == q for s, q in zip(support.mapping, query.mapping, strict=True))
        False
    """
    check_conflict_ways(n_way)
    support = draw_confounder(rng, n_way, None)
    while True:  # a uniform derangement by rejection (about e draws)
        sigma = rng.permutation(n_way)
        if not np.any(sigma == np.arange(n_way)):
            break
    query = Confounder(support.attribute, tuple(support.mapping[int(j)] for j in sigma))
    return support, query


def draw_conflict_nuisances(
    rng: np.random.Generator,
    y_spt: np.ndarray,
    y_qry: np.ndarray,
    support: Confounder,
    query: Confounder,
) -> np.ndarray:
    """Draw the nuisance values of a conflict task: support and query tied by their mappings.

    Every support example takes ``support.mapping[label]`` and every query example
    ``query.mapping[label]`` for the tied attribute (a tie probability of 1); the other
    nuisances are uniform. The generator is used exactly as by :func:`draw_nuisances` without
    a confounder, so everything else drawn from it afterwards is the same as in the neutral
    task of that generator.

    Args:
        rng: The task's generator.
        y_spt: Support labels ``[N*K]``.
        y_qry: Query labels ``[N*Q]``.
        support: The support set's tie.
        query: The query set's tie (the same attribute).

    Returns:
        ``int64`` values ``[N*K + N*Q, len(NUISANCES)]``, support rows first.

    Raises:
        ValueError: If the two ties name different attributes.

    Example:
        >>> s, q = Confounder("texture", (3, 5)), Confounder("texture", (5, 3))
        >>> v = draw_conflict_nuisances(np.random.default_rng(0), np.array([0, 1]),
        ...                             np.array([0, 0, 1]), s, q)
        >>> v[:, 2].tolist()
        [3, 5, 5, 5, 3]
    """
    if support.attribute != query.attribute:
        raise ValueError(
            f"a conflict ties one nuisance, got {support.attribute!r} in the support set and "
            f"{query.attribute!r} in the query set"
        )
    y_spt = np.asarray(y_spt, dtype=np.int64)
    y_qry = np.asarray(y_qry, dtype=np.int64)
    values = draw_nuisances(rng, np.concatenate([y_spt, y_qry]), None, rho=0.0)
    column = nuisance_index(support.attribute)
    values[: len(y_spt), column] = np.asarray(support.mapping, dtype=np.int64)[y_spt]
    values[len(y_spt) :, column] = np.asarray(query.mapping, dtype=np.int64)[y_qry]
    return values
