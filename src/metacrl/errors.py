"""Exceptions raised by metacrl."""

from __future__ import annotations

__all__ = ["NonFiniteLossError"]


class NonFiniteLossError(ValueError):
    """A meta-loss or MetaCRL objective became NaN or infinite.

    Raised instead of letting NaN reach the optimiser, with the task and the term that failed.
    Usual causes: an inner or meta learning rate that is too large, or inputs that are not
    normalised. A subclass of ``ValueError``, so ``except ValueError`` catches it too. Raised by
    ``meta_step`` of every learner (a non-finite query loss) and by
    :meth:`MetaCRLRegularizer.causal_step <metacrl.MetaCRLRegularizer.causal_step>` (a
    non-finite causal objective).

    Example:
        An absurd inner step size makes the adapted model's query loss NaN:

        >>> model = FeatureHead(nn.Linear(1, 4), nn.Linear(4, 1), feature_dim=4)
        >>> maml = MAML(model, inner_lr=1e30, inner_steps=3, loss="mse")
        >>> x = torch.ones(1, 3, 1)
        >>> try:
        ...     maml.meta_step(x, x, x, x)
        ... except NonFiniteLossError as err:
        ...     print("non-finite query loss in task(s) [0]" in str(err))
        True
    """
