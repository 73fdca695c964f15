"""Xi and f_gr with their settings: the forward pieces and loss terms of MetaCRL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metacrl.learners import MetaBatch, TaskFeatures
from metacrl.regularizer.causal import CausalTerms
from metacrl.regularizer.defaults import DEFAULTS
from metacrl.regularizer.penalties import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)
from metacrl.typing import FactorBasis, HeadInput, HeadTask, Invariance, LossFn, Schedule
from metacrl.validation import check_choice, check_float, check_int

__all__ = ["MetaCRLModule"]


class MetaCRLModule(nn.Module):
    """``Xi``, ``f_gr`` and MetaCRL's settings: the forward pieces and the causal objective.

    The base of :class:`~metacrl.MetaCRLRegularizer`, which documents the arguments and adds
    the causal step, the user-loop calls and ``wrap``. Learners and loops reach ``Xi`` and
    ``f_gr`` through :meth:`gates`, :meth:`transform` and :meth:`causal_objective`.
    """

    def __init__(
        self,
        feature_dim: int,
        num_factors: int | None = DEFAULTS.num_factors,
        hidden_dim: int = DEFAULTS.hidden_dim,
        lambda_orth: float = DEFAULTS.lambda_orth,
        lambda_gate: float = DEFAULTS.lambda_gate,
        lambda_inv: float = DEFAULTS.lambda_inv,
        invariance: Invariance = DEFAULTS.invariance,
        mode: Schedule = DEFAULTS.mode,
        crl_steps: int = DEFAULTS.crl_steps,
        xi_lr: float = DEFAULTS.xi_lr,
        gr_lr: float = DEFAULTS.gr_lr,
        replay: int = DEFAULTS.replay,
        head_input: HeadInput = DEFAULTS.head_input,
        gate_init: float = DEFAULTS.gate_init,
        max_grad_norm: float | None = DEFAULTS.max_grad_norm,
        refresh_replay: bool = DEFAULTS.refresh_replay,
        use_gates: bool = DEFAULTS.use_gates,
        basis: FactorBasis = DEFAULTS.basis,
        env_queries: int | None = DEFAULTS.env_queries,
    ) -> None:
        super().__init__()
        self.feature_dim = check_int("feature_dim", feature_dim)
        self.num_factors = (
            self.feature_dim if num_factors is None else check_int("num_factors", num_factors)
        )
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.lambda_orth = check_float("lambda_orth", lambda_orth, at_least=0)
        self.lambda_gate = check_float("lambda_gate", lambda_gate, at_least=0)
        self.lambda_inv = check_float("lambda_inv", lambda_inv, at_least=0)
        self.invariance: Invariance = check_choice("invariance", invariance, get_args(Invariance))
        self.mode: Schedule = check_choice("mode", mode, get_args(Schedule))
        self.head_input: HeadInput = check_choice("head_input", head_input, get_args(HeadInput))
        self.basis: FactorBasis = check_choice("basis", basis, get_args(FactorBasis))
        if self.basis == "orthonormal" and self.num_factors > self.feature_dim:
            raise ValueError(
                f"basis='orthonormal' needs num_factors <= feature_dim (at most {feature_dim} "
                f"orthonormal directions in {feature_dim} dimensions), got num_factors="
                f"{num_factors}; lower num_factors or use basis='normalized'"
            )
        self.crl_steps = check_int("crl_steps", crl_steps, minimum=0)
        self.xi_lr = check_float("xi_lr", xi_lr, above=0)
        self.gr_lr = check_float("gr_lr", gr_lr, above=0)
        self.replay = check_int("replay", replay, minimum=0)
        self.env_queries = None if env_queries is None else check_int("env_queries", env_queries)
        self.refresh_replay = bool(refresh_replay)
        self.use_gates = bool(use_gates)
        self.max_grad_norm = (
            None if max_grad_norm is None else check_float("max_grad_norm", max_grad_norm, above=0)
        )
        gate_init = check_float("gate_init", gate_init, above=0, below=1)

        self.xi = nn.Parameter(torch.empty(self.feature_dim, self.num_factors))
        nn.init.orthogonal_(self.xi)
        self.f_gr = nn.Sequential(
            nn.Linear(self.num_factors, self.hidden_dim),
            nn.ReLU(),
            nn.Linear(self.hidden_dim, self.num_factors),
        )
        last = self.f_gr[2]
        assert isinstance(last, nn.Linear)
        nn.init.normal_(last.weight, std=0.01)
        nn.init.constant_(last.bias, math.log(gate_init / (1.0 - gate_init)))
        # factor_directions(frozen=True), keyed by Xi's storage, version, dtype and device
        self._frozen_directions: tuple[tuple[object, ...], Tensor] | None = None

    # ------------------------------------------------------------------ forward pieces
    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``."""
        return (
            f"feature_dim={self.feature_dim}, num_factors={self.num_factors}, "
            f"basis={self.basis!r}, invariance={self.invariance!r}, mode={self.mode!r}, "
            f"replay={self.replay}, head_input={self.head_input!r}"
        )

    def factor_directions(self, *, frozen: bool = False) -> Tensor:
        """Return ``Xi`` as the forward pass uses it: the factor directions ``U``.

        With ``basis="normalized"``, ``U`` is ``Xi`` with unit columns, divided by its largest
        singular value (:func:`spectral_norm_estimate`), so the map ``g -> U U^T g`` never
        lengthens a feature vector; the columns may turn towards each other, and then the head
        no longer sees some directions of the features. With ``basis="orthonormal"``, ``U`` is
        the orthonormal basis of ``Xi``'s columns from its QR decomposition (signs fixed so that
        ``U = Xi`` for orthonormal ``Xi``): ``U U^T`` is the projection onto their span (the
        identity when ``num_factors == feature_dim``), so only the gates remove information.

        Args:
            frozen: Treat ``Xi`` as a constant. The constant is computed once and reused until
                ``Xi`` changes (an optimiser step, ``load_state_dict``, ``.to``); writing to
                ``reg.xi.data`` directly bypasses that check, so update ``Xi`` under
                ``torch.no_grad()`` instead.

        Returns:
            ``[feature_dim, num_factors]``.

        Example:
            >>> _ = torch.manual_seed(0)
            >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=16)
            >>> u = reg.factor_directions()
            >>> u.shape
            torch.Size([8, 16])
            >>> sigma = float(torch.linalg.matrix_norm(u.detach(), ord=2))
            >>> 0.99 < sigma < 1.05  # the estimate is exact up to a few per cent
            True
            >>> reg = MetaCRLRegularizer(feature_dim=8, num_factors=4, basis="orthonormal")
            >>> u = reg.factor_directions().detach()
            >>> torch.allclose(u.T @ u, torch.eye(4), atol=1e-6)
            True
        """
        if frozen:  # a constant: computed once per value of Xi (the inner loops call it often)
            key = (self.xi.data_ptr(), self.xi._version, self.xi.dtype, self.xi.device)
            if self._frozen_directions is None or self._frozen_directions[0] != key:
                with torch.no_grad():
                    self._frozen_directions = (key, self._directions(self.xi.detach()))
            return self._frozen_directions[1]
        return self._directions(self.xi)

    def _directions(self, xi: Tensor) -> Tensor:
        if self.basis == "orthonormal":
            q, r = torch.linalg.qr(xi)  # reduced: [feature_dim, num_factors]
            signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
            basis: Tensor = q * signs.unsqueeze(0)
            return basis
        unit = xi / xi.norm(dim=0, keepdim=True).clamp_min(1e-6)
        scaled: Tensor = unit / spectral_norm_estimate(unit)
        return scaled

    def _check_features(self, features: Tensor) -> None:
        mixed_ok = features.is_floating_point() and torch.is_autocast_enabled(
            features.device.type
        )  # under autocast a bf16/fp16 backbone meets the fp32 Xi, and autocast casts
        if (features.dtype != self.xi.dtype and not mixed_ok) or (
            features.device != self.xi.device
        ):
            raise TypeError(
                f"features are {features.dtype} on {features.device} but the regularizer's "
                f"parameters are {self.xi.dtype} on {self.xi.device}; move it with reg.to(...) "
                "(reg.wrap does this for you)"
            )
        if features.dim() < 2 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"features must be shaped [..., examples, {self.feature_dim}] "
                f"(MetaCRLRegularizer(feature_dim={self.feature_dim})), got "
                f"{tuple(features.shape)}; does model.features return flat features of size "
                "model.feature_dim?"
            )

    def gates(self, support_features: Tensor, *, frozen: bool = False) -> Tensor:
        r"""Return the task gates :math:`w_t = \sigma(f_{gr}(\Xi^\top \bar g_t))`.

        Args:
            support_features: A task's support features ``[n, feature_dim]`` or a batch of
                tasks ``[T, n, feature_dim]``; averaged over the examples axis.
            frozen: Treat ``Xi`` and ``f_gr`` as constants.

        Returns:
            Gates in ``(0, 1)``, ``[num_factors]`` or ``[T, num_factors]``.
        """
        self._check_features(support_features)
        return self._gates_of_means(support_features.mean(dim=-2), frozen)

    def _gates_of_means(
        self, mean_features: Tensor, frozen: bool, directions: Tensor | None = None
    ) -> Tensor:
        if not self.use_gates:
            return mean_features.new_ones(*mean_features.shape[:-1], self.num_factors)
        if directions is None:
            directions = self.factor_directions(frozen=frozen)
        mean_factors = mean_features @ directions
        if frozen:
            params = {n: p.detach() for n, p in self.f_gr.named_parameters()}
            logits: Tensor = functional_call(self.f_gr, params, (mean_factors,))
        else:
            logits = self.f_gr(mean_factors)
        return torch.sigmoid(logits)

    def transform(self, features: Tensor, gates: Tensor, *, frozen: bool = False) -> Tensor:
        """Return what the head sees: the gated factors, mapped back to features or not.

        Args:
            features: ``[..., n, feature_dim]``.
            gates: ``[num_factors]`` or ``[..., num_factors]`` matching the leading axes.
            frozen: Treat ``Xi`` as a constant.

        Returns:
            ``[..., n, feature_dim]`` (``head_input="features"``) or ``[..., n, num_factors]``.
        """
        self._check_features(features)
        return self._transform(features, gates, self.factor_directions(frozen=frozen))

    def _transform(self, features: Tensor, gates: Tensor, directions: Tensor) -> Tensor:
        gated = (features @ directions) * gates.unsqueeze(-2)
        return gated @ directions.T if self.head_input == "features" else gated

    def environment_batch(self, batch: MetaBatch) -> MetaBatch:
        """The meta-batch the environments come from: at most ``env_queries`` queries a task.

        Args:
            batch: The validated meta-batch of θ's meta-step.

        Returns:
            ``batch`` itself (``env_queries=None``, or at least as many as the batch has), or
            the batch with ``env_queries`` query examples per task, evenly spread
            (:meth:`MetaBatch.with_queries <metacrl.learners.MetaBatch.with_queries>`).
        """
        if self.env_queries is None or self.env_queries >= batch.x_qry.shape[1]:
            return batch
        return batch.with_queries(self.env_queries)

    # ------------------------------------------------------------------ losses
    def disentanglement_loss(self, gates: Tensor) -> Tensor:
        """Return ``L_dis = lambda_orth * orthogonality(Xi) + lambda_gate * gate_loss(gates)``.

        At ``lambda_orth = 0`` (the default) the orthogonality term is not computed: it would
        add exactly zero to the loss and to every gradient.
        """
        gate_term = self.lambda_gate * gate_loss(gates)
        if self.lambda_orth == 0:
            return gate_term
        return self.lambda_orth * orthogonality_loss(self.xi) + gate_term

    def invariance_penalty(self, losses: Sequence[Tensor], outputs: Sequence[Tensor]) -> Tensor:
        """Return the configured invariance penalty (IRMv1 or V-REx) over tasks."""
        if self.invariance == "irm":
            return irm_penalty(losses, outputs)
        return vrex_penalty(losses)

    def causal_objective(
        self, environments: Sequence[TaskFeatures], head_task: HeadTask, loss_fn: LossFn
    ) -> CausalTerms:
        """Evaluate the causal objective of ``Xi`` and ``f_gr`` on a set of environments.

        Args:
            environments: The tasks, as features computed with the backbone frozen.
            head_task: How the learner solves a task on given head inputs (see
                :data:`~metacrl.typing.HeadTask`).
            loss_fn: The task loss.

        Returns:
            The objective and its parts.
        """
        if not environments:
            raise ValueError("the causal objective needs at least one environment")
        for env in environments:
            self._check_features(env.support_features)
            self._check_features(env.query_features)
        # Environments of equal shapes (usually all) are solved as one batch.
        groups: dict[tuple[tuple[int, ...], ...], list[int]] = {}
        for i, env in enumerate(environments):
            key = tuple(
                tuple(t.shape)
                for t in (env.support_features, env.y_spt, env.query_features, env.y_qry)
            )
            groups.setdefault(key, []).append(i)
        with torch.enable_grad():
            directions = self.factor_directions()  # once: the power iteration is not free
            means = torch.stack([e.support_features.mean(dim=0) for e in environments])
            gates = self._gates_of_means(means, frozen=False, directions=directions)
            losses: list[Tensor] = [torch.empty(0)] * len(environments)
            outputs: list[Tensor] = [torch.empty(0)] * len(environments)
            for index in groups.values():
                envs = [environments[i] for i in index]
                w = gates[index]
                h_s = self._transform(
                    torch.stack([e.support_features for e in envs]), w, directions
                )
                h_q = self._transform(torch.stack([e.query_features for e in envs]), w, directions)
                y_q = [e.y_qry for e in envs]
                out = head_task(h_s, torch.stack([e.y_spt for e in envs]), h_q, loss_fn)
                for j, i in enumerate(index):
                    outputs[i] = out[j]  # the same view object in the loss, for the IRM penalty
                    losses[i] = loss_fn(outputs[i], y_q[j])
            task = torch.stack(losses).mean()
            inv = self.invariance_penalty(losses, outputs)
            dis = self.disentanglement_loss(gates)
        total = task + self.lambda_inv * inv + dis
        return CausalTerms(total, task, inv, dis, gates)
