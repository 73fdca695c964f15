"""MetaCRLRegularizer: the factor matrix ``Xi``, the gate network ``f_gr`` and their losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, cast, get_args, overload

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metacrl.errors import NonFiniteLossError
from metacrl.models.contract import check_model
from metacrl.models.gated import GatedModel
from metacrl.regularizer.causal import CausalTerms, Environment, HeadTask
from metacrl.regularizer.factors import TaskFactors
from metacrl.regularizer.penalties import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)

if TYPE_CHECKING:
    from metacrl.learners.base import MetaLearner
    from metacrl.learners.losses import LossFn
    from metacrl.learners.wrapped import MetaCRLLearner

__all__ = ["HeadInput", "Invariance", "MetaCRLRegularizer", "Schedule"]

Invariance = Literal["irm", "vrex"]
Schedule = Literal["alternating", "joint"]
HeadInput = Literal["features", "factors"]


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_non_negative(name: str, value: object, *, strict: bool = False) -> float:
    if not _is_number(value) or (value <= 0 if strict else value < 0):  # type: ignore[operator]
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class MetaCRLRegularizer(nn.Module):
    r"""The MetaCRL causal representation learner, placed between ``features`` and ``head``.

    A factor matrix ``Xi`` (``feature_dim x num_factors``, columns used at unit length) maps
    features ``g(x)`` to factors ``z = Xi^T g(x)``. The gate network ``f_gr`` (Linear → ReLU →
    Linear → sigmoid) reads the mean factors of a task's support set and returns per-task gates
    ``w_t``; the head sees
    ``Xi (w_t ⊙ Xi^T g(x))`` (``head_input="features"``, the head keeps its input size) or
    ``w_t ⊙ Xi^T g(x)`` (``head_input="factors"``, the head must take ``num_factors`` inputs).

    Objective of ``Xi`` and ``f_gr`` (the causal step), over a set of environments (the tasks of
    the current meta-batch and of the last ``replay`` meta-batches)::

        mean_e L_e  +  lambda_inv * L_inv  +  lambda_orth * sum_{i!=j} |xi_i^T xi_j|
                    +  lambda_gate * mean_e [ ||w_e||_1 / M + H_b(w_e) / M ]

    where ``L_e`` is environment ``e``'s query loss after the learner solved it on its support
    set with the backbone frozen, and ``L_inv`` is the IRMv1 penalty (mean over environments of
    the squared gradient of ``L_e`` in a scale of the outputs) or V-REx (variance of ``L_e``).
    The environments' features are computed without gradient, so invariance acts through the
    factor selection (``Xi``, ``f_gr``) and never squeezes the backbone.

    Schedules (``mode``):

    * ``"alternating"``: each meta-step first runs ``crl_steps`` gradient steps on ``Xi`` (step
      ``xi_lr``) and ``f_gr`` (step ``gr_lr``) with θ frozen, then returns the meta-loss of θ
      with ``Xi`` and ``f_gr`` frozen.
    * ``"joint"``: the returned meta-loss is the mean query loss plus ``lambda_inv * L_inv +
      L_dis``; one optimiser step updates everything.

    Args:
        feature_dim: Size ``d`` of the features ``g(x)``; must equal ``model.feature_dim``.
        num_factors: Number ``M`` of generating factors (columns of ``Xi``).
        hidden_dim: Hidden width of ``f_gr``.
        lambda_orth: Weight of the orthogonality term.
        lambda_gate: Weight of the gate sparsity/decisiveness term.
        lambda_inv: Weight of the invariance penalty.
        invariance: ``"irm"`` (IRMv1, default) or ``"vrex"``.
        mode: ``"alternating"`` (default) or ``"joint"``.
        crl_steps: Causal steps per meta-step in the alternating schedule.
        xi_lr: Step size of the causal steps for ``Xi`` (official script: 0.4).
        gr_lr: Step size of the causal steps for ``f_gr`` (official script: 0.01).
        replay: How many earlier meta-batches serve as extra environments (0: the current
            meta-batch only).
        head_input: ``"features"`` (map the gated factors back with ``Xi``) or ``"factors"``.
        gate_init: Initial value of the gates (the last layer's bias), in ``(0, 1)``.
        use_gates: Gate the factors per task (``False``, an ablation: every gate is 1 and
            ``f_gr`` is unused).
        refresh_replay: Recompute the replayed meta-batches' features with the current backbone
            at every step (exact, but a forward pass of ``replay`` extra meta-batches per
            step). By default each replayed batch keeps the features computed when it was
            current, at most ``replay`` meta-steps old.
        max_grad_norm: Clip the norm of the causal step's gradient (``Xi`` and ``f_gr``
            together) to this value; ``None`` disables clipping. Without it, a spike of the IRM
            penalty's gradient times ``xi_lr`` = 0.4 can throw ``Xi`` far off in one step, after
            which the gates saturate and never recover.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from metacrl import MAML, MetaCRLRegularizer
        >>> from metacrl.models import FeatureHead
        >>> model = FeatureHead(nn.Sequential(nn.Linear(4, 16), nn.ReLU()), nn.Linear(16, 3),
        ...                     feature_dim=16)
        >>> reg = MetaCRLRegularizer(feature_dim=16, num_factors=16, crl_steps=1)
        >>> learner = reg.wrap(MAML(model, inner_lr=0.1, inner_steps=1))
        >>> x, y = torch.randn(2, 6, 4), torch.randint(0, 3, (2, 6))
        >>> out = learner.meta_step(x, y, x, y)
        >>> out.loss.backward()
        >>> any(p is reg.xi for p in learner.parameters())
        True
    """

    def __init__(
        self,
        feature_dim: int,
        num_factors: int = 64,
        hidden_dim: int = 64,
        lambda_orth: float = 1e-3,
        lambda_gate: float = 0.1,
        lambda_inv: float = 1.0,
        invariance: Invariance = "irm",
        mode: Schedule = "alternating",
        crl_steps: int = 5,
        xi_lr: float = 0.4,
        gr_lr: float = 0.01,
        replay: int = 3,
        head_input: HeadInput = "features",
        gate_init: float = 0.9,
        max_grad_norm: float | None = 1.0,
        refresh_replay: bool = False,
        use_gates: bool = True,
    ) -> None:
        super().__init__()
        self.feature_dim = _check_positive_int("feature_dim", feature_dim)
        self.num_factors = _check_positive_int("num_factors", num_factors)
        self.hidden_dim = _check_positive_int("hidden_dim", hidden_dim)
        self.lambda_orth = _check_non_negative("lambda_orth", lambda_orth)
        self.lambda_gate = _check_non_negative("lambda_gate", lambda_gate)
        self.lambda_inv = _check_non_negative("lambda_inv", lambda_inv)
        _check_choice("invariance", invariance, get_args(Invariance))
        _check_choice("mode", mode, get_args(Schedule))
        _check_choice("head_input", head_input, get_args(HeadInput))
        self.invariance: Invariance = invariance
        self.mode: Schedule = mode
        self.head_input: HeadInput = head_input
        self.crl_steps = _check_positive_int("crl_steps", crl_steps, minimum=0)
        self.xi_lr = _check_non_negative("xi_lr", xi_lr, strict=True)
        self.gr_lr = _check_non_negative("gr_lr", gr_lr, strict=True)
        self.replay = _check_positive_int("replay", replay, minimum=0)
        self.refresh_replay = bool(refresh_replay)
        self.use_gates = bool(use_gates)
        self.max_grad_norm = (
            None
            if max_grad_norm is None
            else _check_non_negative("max_grad_norm", max_grad_norm, strict=True)
        )
        if not (_is_number(gate_init) and 0.0 < gate_init < 1.0):
            raise ValueError(f"gate_init must lie strictly between 0 and 1, got {gate_init!r}")

        self.xi = nn.Parameter(torch.empty(feature_dim, num_factors))
        nn.init.orthogonal_(self.xi)
        self.f_gr = nn.Sequential(
            nn.Linear(num_factors, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, num_factors),
        )
        last = self.f_gr[2]
        assert isinstance(last, nn.Linear)
        nn.init.normal_(last.weight, std=0.01)
        nn.init.constant_(last.bias, math.log(gate_init / (1.0 - gate_init)))
        self._open_tasks: list[TaskFactors] = []
        # factor_directions(frozen=True), keyed by Xi's storage, version, dtype and device
        self._frozen_directions: tuple[tuple[object, ...], Tensor] | None = None

    # ------------------------------------------------------------------ forward pieces
    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``."""
        return (
            f"feature_dim={self.feature_dim}, num_factors={self.num_factors}, "
            f"invariance={self.invariance!r}, mode={self.mode!r}, replay={self.replay}, "
            f"head_input={self.head_input!r}"
        )

    def factor_directions(self, *, frozen: bool = False) -> Tensor:
        """Return ``Xi`` as the forward pass uses it: unit columns, spectral norm one.

        Only the directions of the factors matter, and the map ``g -> Xi Xi^T g`` never
        lengthens a feature vector: the unit-column matrix is divided by its largest singular
        value (:func:`spectral_norm_estimate`). Without that division, a causal step that turns
        the columns towards each other (``xi_lr`` = 0.4 by default) multiplies the head's input
        by up to ``num_factors``, and the inner loop diverges.

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
        """
        if frozen:  # a constant: computed once per value of Xi (the inner loops call it often)
            key = (self.xi.data_ptr(), self.xi._version, self.xi.dtype, self.xi.device)
            if self._frozen_directions is None or self._frozen_directions[0] != key:
                with torch.no_grad():
                    self._frozen_directions = (key, self._directions(self.xi.detach()))
            return self._frozen_directions[1]
        return self._directions(self.xi)

    @staticmethod
    def _directions(xi: Tensor) -> Tensor:
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

    # ------------------------------------------------------------------ losses
    def disentanglement_loss(self, gates: Tensor) -> Tensor:
        """Return ``L_dis = lambda_orth * orthogonality(Xi) + lambda_gate * gate_loss(gates)``."""
        return self.lambda_orth * orthogonality_loss(self.xi) + self.lambda_gate * gate_loss(gates)

    def invariance_penalty(self, losses: Sequence[Tensor], outputs: Sequence[Tensor]) -> Tensor:
        """Return the configured invariance penalty (IRMv1 or V-REx) over tasks."""
        if self.invariance == "irm":
            return irm_penalty(losses, outputs)
        return vrex_penalty(losses)

    def causal_objective(
        self, environments: Sequence[Environment], head_task: HeadTask, loss_fn: LossFn
    ) -> CausalTerms:
        """Evaluate the causal objective of ``Xi`` and ``f_gr`` on a set of environments.

        Args:
            environments: The tasks, as features computed with the backbone frozen.
            head_task: How the learner solves a task on given head inputs (see
                :data:`~metacrl.regularizer.causal.HeadTask`).
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

    def causal_step(
        self, environments: Sequence[Environment], head_task: HeadTask, loss_fn: LossFn
    ) -> CausalTerms:
        """Run ``crl_steps`` gradient steps of the causal objective on ``Xi`` and ``f_gr``.

        θ is not touched. Plain gradient descent with step ``xi_lr`` for ``Xi`` and ``gr_lr``
        for ``f_gr``, the joint gradient clipped to ``max_grad_norm`` (stateless, so nothing
        needs checkpointing beyond the parameters).

        Returns:
            The terms of the last evaluated objective (detached).

        Raises:
            NonFiniteLossError: If the objective is NaN or infinite.
        """
        params = [self.xi, *self.f_gr.parameters()]
        rates = [self.xi_lr] + [self.gr_lr] * (len(params) - 1)
        terms: CausalTerms | None = None
        for step in range(self.crl_steps):
            terms = self.causal_objective(environments, head_task, loss_fn)
            if not bool(torch.isfinite(terms.total)):
                parts = ", ".join(f"{k[4:]} {v}" for k, v in terms.metrics().items())
                raise NonFiniteLossError(
                    f"the MetaCRL causal objective is {float(terms.total.detach())} at causal "
                    f"step {step} ({parts}); lower xi_lr/gr_lr or lambda_inv"
                )
            grads = [
                torch.zeros_like(p) if g is None else g
                for p, g in zip(
                    params, torch.autograd.grad(terms.total, params, allow_unused=True), strict=True
                )
            ]
            scale = 1.0
            if self.max_grad_norm is not None:
                norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
                scale = min(1.0, self.max_grad_norm / (norm + 1e-12))
            with torch.no_grad():
                for p, g, lr in zip(params, grads, rates, strict=True):
                    p.sub_((lr * scale) * g)
        if terms is None:  # crl_steps == 0: report the objective, change nothing
            terms = self.causal_objective(environments, head_task, loss_fn)
        assert terms is not None
        return CausalTerms(
            terms.total.detach(),
            terms.task.detach(),
            terms.invariance.detach(),
            terms.disentanglement.detach(),
            terms.gates.detach(),
        )

    # ------------------------------------------------------------------ user loops
    def task(self, support_features: Tensor, *, track: bool = True) -> TaskFactors:
        """Open a task for a user-written inner loop: compute its gates from support features.

        Pass the result as ``task=`` to the module returned by :meth:`wrap`. Every task opened
        with ``track=True`` since the last :meth:`penalty` call takes part in the next penalty,
        in order.

        Args:
            support_features: ``model.features(x_spt)``, ``[n_support, feature_dim]``.
            track: Keep the task for the next :meth:`penalty` (meta-training). Use ``False`` at
                meta-test, where no penalty follows.

        Returns:
            The task's :class:`TaskFactors`.
        """
        if not isinstance(support_features, Tensor):
            raise TypeError(
                "reg.task takes support_features as a torch.Tensor [n_support, feature_dim], "
                f"got {type(support_features).__name__}"
            )
        if support_features.dim() != 2:
            raise ValueError(
                "reg.task takes one task's support features [n_support, feature_dim], got "
                f"shape {tuple(support_features.shape)}"
            )
        factors = TaskFactors(self, self.gates(support_features))
        if track:
            self._open_tasks.append(factors)
        return factors

    def reset_tasks(self) -> None:
        """Forget the tasks opened since the last :meth:`penalty` (e.g. after an interruption)."""
        self._open_tasks.clear()

    def penalty(
        self,
        task_query_losses: Sequence[Tensor] | Tensor,
        task_query_outputs: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Return the MetaCRL outer-loss terms ``lambda_inv * L_inv + L_dis`` for a user loop.

        Call once per meta-batch, after the query losses of all tasks opened with :meth:`task`;
        it closes those tasks. Add the result to the mean query loss.

        Args:
            task_query_losses: One scalar query loss per opened task, in the order of the
                :meth:`task` calls.
            task_query_outputs: The query outputs each loss was computed from (needed by the
                IRM penalty). By default, each task's last forward output (recorded by the
                wrapped module) is used, which is the query output in the usual loop.

        Returns:
            The scalar penalty; gradients reach ``Xi``, ``f_gr`` and whatever the outputs
            depend on.
        """
        if isinstance(task_query_losses, Tensor) and task_query_losses.dim() != 1:
            raise ValueError(
                "reg.penalty takes one scalar query loss per task (a list, or a 1-D tensor), got "
                f"a tensor of shape {tuple(task_query_losses.shape)}; pass the per-task losses, "
                "not their mean"
            )
        tasks = self._open_tasks
        losses = list(task_query_losses)
        if not tasks:
            raise ValueError("reg.penalty: no task is open; call reg.task(support_features) first")
        if len(losses) != len(tasks):
            raise ValueError(
                f"reg.penalty got {len(losses)} query losses but {len(tasks)} tasks were opened "
                "with reg.task since the last penalty"
            )
        gates = torch.stack([t.gates for t in tasks])
        if self.invariance == "irm":
            if task_query_outputs is None:
                missing = [i for i, t in enumerate(tasks) if t.last_output is None]
                if missing:
                    raise ValueError(
                        f"the IRM penalty needs each task's query outputs: tasks {missing} made "
                        "no forward with task=...; pass task_query_outputs"
                    )
                outputs = [t.last_output for t in tasks if t.last_output is not None]
            else:
                outputs = list(task_query_outputs)
            inv = irm_penalty(losses, outputs)
        else:
            inv = vrex_penalty(losses)
        self._open_tasks = []
        return self.lambda_inv * inv + self.disentanglement_loss(gates)

    # ------------------------------------------------------------------ wrapping
    @overload
    def wrap(self, target: MetaLearner) -> MetaCRLLearner: ...  # type: ignore[overload-overlap]

    @overload
    def wrap(self, target: nn.Module) -> GatedModel: ...

    def wrap(self, target: nn.Module) -> MetaCRLLearner | GatedModel:
        """Add MetaCRL to a learner or to a plain model.

        Args:
            target: A metacrl learner (``MAML``, ``ANIL``, ``MetaSGD``, ``ProtoNet``): returns a
                :class:`MetaCRLLearner` with the same interface whose meta-step includes MetaCRL.
                Or a model with ``features``/``head``/``feature_dim``: returns a
                :class:`~metacrl.models.GatedModel` for a user's own ``higher`` or
                ``torch.func`` loop, whose ``parameters()`` include ``Xi`` and ``f_gr``.

        Returns:
            The wrapped learner or module.

        Raises:
            TypeError: For anything else, or a learner that is already wrapped.
            ValueError: If the model's ``feature_dim`` differs from this regularizer's.
        """
        from metacrl.learners.base import MetaLearner
        from metacrl.learners.wrapped import MetaCRLLearner

        if isinstance(target, MetaCRLLearner) or (
            isinstance(target, GatedModel) and target.regularizer is not None
        ):
            raise TypeError(
                f"this {type(target).__name__} is already wrapped by a MetaCRLRegularizer"
            )
        model = target.model if isinstance(target, MetaLearner) else check_model(target)
        if model.feature_dim != self.feature_dim:
            raise ValueError(
                f"model.feature_dim is {model.feature_dim} but MetaCRLRegularizer was built with "
                f"feature_dim={self.feature_dim}"
            )
        if self.head_input == "factors":
            self._check_head_takes_factors(cast(nn.Module, model.head))
        self.to(next(iter(model.parameters()), self.xi))
        if isinstance(target, MetaLearner):
            return MetaCRLLearner(target, self)
        return GatedModel(model, regularizer=self)

    def _check_head_takes_factors(self, head: nn.Module) -> None:
        first = next((m for m in head.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features != self.num_factors:
            raise ValueError(
                f"head_input='factors' feeds the head {self.num_factors} gated factors, but the "
                f"head's first Linear takes {first.in_features} inputs; use head_input="
                "'features' or a head with num_factors inputs"
            )
