"""Environments and the terms of the causal (invariance) objective."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["CausalTerms", "Environment", "HeadTask"]

HeadTask = Callable[[Tensor, Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]], Tensor]
"""``head_task(support_inputs, support_targets, query_inputs, loss_fn) -> query_outputs``.

How a learner solves a batch of ``E`` tasks on top of given head inputs (``[E, n, k]``), with
the backbone frozen: MAML and ANIL adapt the head by their inner loop, Meta-SGD with its learned
step sizes, ProtoNet builds prototypes. Returns ``[E, n_query, ...]`` outputs. The causal step
differentiates through it with respect to ``Xi`` and ``f_gr``.
"""


@dataclass(frozen=True)
class Environment:
    """One task used as an environment of the invariance penalty: its features, not images.

    Attributes:
        support_features: ``[n_support, feature_dim]``, computed with θ frozen.
        y_spt: Support targets.
        query_features: ``[n_query, feature_dim]``.
        y_qry: Query targets.
    """

    support_features: Tensor
    y_spt: Tensor
    query_features: Tensor
    y_qry: Tensor


@dataclass
class CausalTerms:
    """The parts of the causal objective ``task + lambda_inv * invariance + disentanglement``.

    Attributes:
        total: The objective that the causal step minimises over ``Xi`` and ``f_gr``.
        task: The mean query loss over the environments.
        invariance: The invariance penalty (IRMv1 or V-REx), before ``lambda_inv``.
        disentanglement: ``L_dis`` (weights included).
        gates: The environments' gates ``[environments, num_factors]``.
    """

    total: Tensor
    task: Tensor
    invariance: Tensor
    disentanglement: Tensor
    gates: Tensor

    def metrics(self) -> dict[str, float]:
        """Return the terms as floats under ``crl/*`` keys for logging."""
        return {
            "crl/task": float(self.task.detach()),
            "crl/invariance": float(self.invariance.detach()),
            "crl/disentanglement": float(self.disentanglement.detach()),
            "crl/gate_mean": float(self.gates.detach().mean()),
            "crl/gates_open": float((self.gates > 0.5).float().mean()),
        }
