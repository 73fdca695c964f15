"""The terms of the causal (invariance) objective."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["CausalTerms"]


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
