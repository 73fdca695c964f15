"""Argument checks shared by every package: clear errors that name the bad value.

Each rule has its home here; the models, learners, MetaCRL, the data and the command line call
these functions rather than writing their own.

Example:
    >>> check_int("n_way", 5), check_float("inner_lr", 0.01, above=0)
    (5, 0.01)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = [
    "check_choice",
    "check_float",
    "check_index",
    "check_int",
    "check_probability",
    "check_range",
]

S = TypeVar("S", bound=str)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check (``bool`` is rejected).
        minimum: The smallest allowed value (default: ``1``).

    Returns:
        ``value`` as a plain ``int``.

    Raises:
        TypeError: If ``value`` is not an integer.
        ValueError: If ``value < minimum``.

    Example:
        >>> check_int("inner_steps", 0, minimum=0)
        0
        >>> check_int("n_way", 0)
        Traceback (most recent call last):
            ...
        ValueError: n_way must be an integer >= 1, got 0
    """
    out = _integer(value, f"{name} must be an integer >= {minimum}, got {value!r}")
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {out}")
    return int(out)


def check_float(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite number within the bound.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check (``bool`` is rejected).
        above: ``value`` must be strictly greater than this (default: no bound).
        at_least: ``value`` must be at least this (default: no bound).
        below: ``value`` must be strictly smaller than this (default: no bound).

    Returns:
        ``value`` as a plain ``float``.

    Raises:
        ValueError: If ``value`` is not a finite number within the bound.

    Example:
        >>> check_float("lambda_inv", 0, at_least=0)
        0.0
        >>> check_float("xi_lr", float("inf"), above=0)
        Traceback (most recent call last):
            ...
        ValueError: xi_lr must be a finite number > 0, got inf
    """
    bounds = [
        f"{op} {limit:g}"
        for op, limit in ((">", above), (">=", at_least), ("<", below))
        if limit is not None
    ]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (
            (above is None or number > above)
            and (at_least is None or number >= at_least)
            and (below is None or number < below)
        )
    if not ok:
        bound = "".join(" " + b for b in bounds[:1]) + "".join(" and " + b for b in bounds[1:])
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a number in ``[0, 1]``.

    Args:
        name: The argument's name, used in the error message.
        value: The number to check.

    Returns:
        ``value`` as a float.

    Raises:
        ValueError: If ``value`` is not a number in ``[0, 1]``.

    Example:
        >>> check_probability("rho", 0.9)
        0.9
    """
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= out <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return out


def check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """Return a finite ``(low, high)`` pair with ``low <= high``.

    Args:
        name: The argument's name, used in the error message.
        value: A pair of numbers.

    Returns:
        The pair as floats.

    Raises:
        ValueError: If ``value`` is not a finite pair with ``low <= high``.

    Example:
        >>> check_range("x_range", (-5, 5))
        (-5.0, 5.0)
    """
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be finite with low <= high, got {value!r}")
    return low, high


def check_choice(name: str, value: Any, choices: Sequence[S]) -> S:
    """Return ``value`` if it is one of ``choices`` (typed as the choices' ``Literal``).

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.
        choices: The allowed strings, e.g. ``typing.get_args(Backend)``.

    Returns:
        ``value``.

    Raises:
        ValueError: If ``value`` is not one of ``choices``.

    Example:
        >>> check_choice("mode", "val", ("train", "val", "test"))
        'val'
        >>> check_choice("backend", "jax", ("func", "higher"))
        Traceback (most recent call last):
            ...
        ValueError: backend must be one of 'func', 'higher', got 'jax'
    """
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value  # type: ignore[return-value]


def check_index(index: object, length: int) -> int:
    """Return a task index in ``0..length-1``; negative indices count from the end.

    Args:
        index: An integer index.
        length: The number of tasks.

    Returns:
        The non-negative index.

    Raises:
        TypeError: If ``index`` is not an integer.
        IndexError: If it is out of range.

    Example:
        >>> check_index(-1, 10)
        9
    """
    i = _integer(index, f"task index must be an integer, got {index!r}")
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"task index {index} out of range for a dataset of {length} tasks")
    return int(i)


def _integer(value: object, message: str) -> int:
    """``value`` as an ``int``, or ``TypeError(message)`` (``bool`` is not an integer here)."""
    if isinstance(value, bool):
        raise TypeError(message)
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(message) from None
