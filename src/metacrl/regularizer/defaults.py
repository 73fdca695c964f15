"""MetaCRL's default settings: one home for the class, ``metacrl train`` and the docs."""

from __future__ import annotations

from dataclasses import dataclass, fields

from metacrl.typing import FactorBasis, HeadInput, Invariance, Schedule

__all__ = ["DEFAULTS", "MetaCRLDefaults"]


@dataclass(frozen=True)
class MetaCRLDefaults:
    """The default value of every MetaCRL setting.

    :class:`~metacrl.MetaCRLRegularizer` takes its argument defaults from :data:`DEFAULTS`,
    ``metacrl train`` its option defaults, and the settings table of the docs is checked
    against it; so the three cannot disagree. The arguments are documented on
    :class:`~metacrl.MetaCRLRegularizer`.

    Example:
        >>> DEFAULTS.invariance, DEFAULTS.mode, DEFAULTS.num_factors
        ('vrex', 'alternating', None)
        >>> MetaCRLRegularizer(feature_dim=8).invariance == DEFAULTS.invariance
        True
    """

    num_factors: int | None = None
    """``None``: as many factors as features (``num_factors = feature_dim``)."""
    hidden_dim: int = 64
    lambda_orth: float = 0.0
    lambda_gate: float = 0.1
    lambda_inv: float = 1.0
    invariance: Invariance = "vrex"
    mode: Schedule = "alternating"
    crl_steps: int = 5
    xi_lr: float = 0.04
    """A tenth of the paper's public code (0.4), chosen by a validation sweep over four settings."""
    gr_lr: float = 0.01
    replay: int = 3
    head_input: HeadInput = "features"
    gate_init: float = 0.9
    max_grad_norm: float | None = 1.0
    refresh_replay: bool = False
    use_gates: bool = True
    basis: FactorBasis = "normalized"
    env_queries: int | None = 10
    """At most 10 query examples of a task in the causal objective (``None``: all of them)."""

    def as_dict(self) -> dict[str, object]:
        """The defaults by argument name, in the class's argument order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULTS = MetaCRLDefaults()
"""The defaults the class, the command line and the docs use."""
