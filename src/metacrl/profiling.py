"""Names of the profiler ranges MetaCRL opens, for reading its cost out of a profile.

MetaCRL labels the work it adds to a meta-step with :func:`torch.profiler.record_function`, so
a :mod:`torch.profiler` trace (or ``prof.key_averages()``) shows how much of a step each part
takes. Outside a profiler the labels cost next to nothing.

Example:
    >>> from torch.profiler import profile
    >>> learner = MetaCRLRegularizer(feature_dim=8, crl_steps=1).wrap(MAML(model))
    >>> with profile() as prof:
    ...     learner.meta_step(x, y, x, y).loss.backward()
    >>> names = {event.key for event in prof.key_averages()}
    >>> TASK_FEATURES_RANGE in names, CAUSAL_STEP_RANGE in names
    (True, True)
"""

from __future__ import annotations

__all__ = ["CAUSAL_OBJECTIVE_RANGE", "CAUSAL_STEP_RANGE", "TASK_FEATURES_RANGE"]

TASK_FEATURES_RANGE = "metacrl.task_features"
"""A backbone pass of its own that gives the environments their features (without gradient):
MAML's and Meta-SGD's environments, and replayed batches with ``refresh_replay``."""

CAUSAL_STEP_RANGE = "metacrl.causal_step"
"""The ``crl_steps`` causal steps on ``Xi`` and ``f_gr`` (alternating schedule)."""

CAUSAL_OBJECTIVE_RANGE = "metacrl.causal_objective"
"""The causal objective added to θ's loss (joint schedule; its backward is not inside)."""
