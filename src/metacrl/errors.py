"""Exceptions raised by metacrl."""

from __future__ import annotations

__all__ = ["NonFiniteLossError"]


class NonFiniteLossError(ValueError):
    """A meta-loss or MetaCRL objective became NaN or infinite.

    Raised instead of letting NaN reach the optimiser, with the task and the term that failed.
    Usual causes: an inner or meta learning rate that is too large, or inputs that are not
    normalised.
    """
