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

    Learners build them with :meth:`MetaLearner.environments
    <metacrl.learners.MetaLearner.environments>`; the causal objective gates their features
    with ``Xi`` and ``f_gr`` and solves them with the learner's ``head_task``.

    Example:
        >>> import torch
        >>> from metacrl import MetaCRLRegularizer
        >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4)
        >>> y = torch.arange(2).repeat(3)
        >>> env = Environment(torch.randn(6, 8), y, torch.randn(6, 8), y)
        >>> def head_task(h_spt, y_spt, h_qry, loss_fn):  # a fixed linear read-out
        ...     return h_qry[..., :2]
        >>> loss_fn = torch.nn.functional.cross_entropy
        >>> terms = reg.causal_objective([env, env], head_task, loss_fn)
        >>> tuple(terms.gates.shape)
        (2, 4)
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

    Example:
        >>> import torch
        >>> terms = CausalTerms(total=torch.tensor(1.5), task=torch.tensor(1.0),
        ...                     invariance=torch.tensor(0.25), disentanglement=torch.tensor(0.25),
        ...                     gates=torch.tensor([[0.9, 0.1], [0.7, 0.3]]))
        >>> terms.metrics()["crl/gates_open"]
        0.5
    """

    total: Tensor
    task: Tensor
    invariance: Tensor
    disentanglement: Tensor
    gates: Tensor

    def metrics(self) -> dict[str, float]:
        """Return the terms as floats under ``crl/*`` keys for logging.

        Returns:
            ``crl/task``, ``crl/invariance`` and ``crl/disentanglement`` (the terms, detached),
            ``crl/gate_mean`` (the mean gate) and ``crl/gates_open`` (the fraction of gates
            above 0.5). ``total`` is not included.

        Example:
            >>> import torch
            >>> t = torch.tensor(0.5)
            >>> m = CausalTerms(t, t, t, t, torch.tensor([[1.0, 0.0, 1.0, 1.0]])).metrics()
            >>> sorted(m)
            ['crl/disentanglement', 'crl/gate_mean', 'crl/gates_open', 'crl/invariance', 'crl/task']
            >>> m["crl/task"], m["crl/gate_mean"], m["crl/gates_open"]
            (0.5, 0.75, 0.75)
        """
        return {
            "crl/task": float(self.task.detach()),
            "crl/invariance": float(self.invariance.detach()),
            "crl/disentanglement": float(self.disentanglement.detach()),
            "crl/gate_mean": float(self.gates.detach().mean()),
            "crl/gates_open": float((self.gates > 0.5).float().mean()),
        }
