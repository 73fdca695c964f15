"""Argument checks shared by the task datasets: clear errors that name the bad value."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

__all__ = ["check_choice", "check_index", "check_int", "check_probability", "check_range"]


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
        >>> check_int("n_way", 5)
        5
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {out}")
    return int(out)


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


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float if it lies in ``[0, 1]``.

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
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= out <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return out


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Args:
        name: The argument's name, used in the error message.
        value: The value to check.
        choices: The allowed strings.

    Returns:
        ``value``.

    Raises:
        ValueError: If ``value`` is not one of ``choices``.

    Example:
        >>> check_choice("mode", "val", ("train", "val", "test"))
        'val'
    """
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


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
    if isinstance(index, bool):
        raise TypeError(f"task index must be an integer, got {index!r}")
    try:
        i = operator.index(index)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"task index must be an integer, got {index!r}") from None
    if i < 0:
        i += length
    if not 0 <= i < length:
        raise IndexError(f"task index {index} out of range for a dataset of {length} tasks")
    return int(i)
