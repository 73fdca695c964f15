"""The types every layer of metacrl shares: names of settings, callables and protocols.

This module sits at the bottom of the package (it imports nothing from metacrl), so that
models, learners, the MetaCRL plug-in, the data and the command line all type their settings
with the same ``Literal`` names.

Example:
    >>> from typing import get_args
    >>> from metacrl.typing import Backend, Invariance
    >>> get_args(Backend), get_args(Invariance)
    (('func', 'higher', 'vmap'), ('irm', 'vrex'))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

from torch import Tensor

__all__ = [
    "Backend",
    "ConfounderKind",
    "EvalConfounding",
    "HeadInput",
    "HeadTask",
    "HeadTransform",
    "FactorBasis",
    "Invariance",
    "LearningRates",
    "LossFn",
    "LossName",
    "Predictor",
    "Problem",
    "Schedule",
    "Split",
    "TaskGather",
    "TransformFactory",
]

# ---------------------------------------------------------------------------- setting names
Problem = Literal["classification", "regression"]
"""What a task asks for: class labels (accuracy) or real targets (MSE)."""
LossName = Literal["cross_entropy", "mse"]
"""The name of a task loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression)."""
Backend = Literal["func", "higher", "vmap"]
"""The inner-loop backend: ``"func"`` (``torch.func.functional_call``), ``"higher"``, or
``"vmap"`` (all tasks of a meta-batch in one vectorised loop)."""
Invariance = Literal["irm", "vrex"]
"""MetaCRL's invariance penalty: IRMv1 or V-REx."""
Schedule = Literal["alternating", "joint"]
"""MetaCRL's schedule: causal steps on ``Xi``/``f_gr`` before θ's update, or one joint step."""
FactorBasis = Literal["normalized", "orthonormal"]
"""How MetaCRL makes ``Xi`` into factor directions ``U``: unit columns scaled to spectral norm
one (they may turn towards each other), or an orthonormal basis of its columns (QR)."""
HeadInput = Literal["features", "factors"]
"""What the head sees under MetaCRL: the gated factors mapped back to features, or the factors."""
ConfounderKind = Literal["switch", "fixed", "task"]
"""How a confounded benchmark ties a nuisance to the label: a random nuisance per meta-batch,
always the same nuisance, or one per task."""
EvalConfounding = Literal["neutral", "conflict"]
"""What a confounded benchmark's validation and test tasks do with the nuisances: every
nuisance independent of the label (``"neutral"``), or one tied to it by one mapping in the
support set and another in the query set (``"conflict"``), which measures how much a learner
relies on the nuisance."""
Split = Literal["train", "val", "test"]
"""A split of a few-shot benchmark's classes."""

# ---------------------------------------------------------------------------- callables
LossFn = Callable[[Tensor, Tensor], Tensor]
"""A task loss as a function: ``loss_fn(outputs, targets)`` returns a scalar (the mean)."""
Predictor = Callable[[Tensor], Tensor]
"""An adapted model as a function: ``predict(x)`` maps inputs ``[n, ...]`` to outputs."""
LearningRates = float | Mapping[str, Tensor]
"""Inner step sizes: one float for every parameter, or one tensor per adapted parameter name
(Meta-SGD's learned, per-element step sizes)."""
HeadTask = Callable[[Tensor, Tensor, Tensor, LossFn], Tensor]
"""``head_task(support_inputs, support_targets, query_inputs, loss_fn) -> query_outputs``: how a
learner solves ``E`` tasks on given head inputs ``[E, n, k]`` with its backbone frozen."""
TaskGather = Callable[[Sequence[Tensor]], list[Tensor]]
"""Concatenate per-task tensors ``[T_local, ...]`` of all processes along the task axis, in
rank order (data-parallel training)."""


# ---------------------------------------------------------------------------- protocols
@runtime_checkable
class HeadTransform(Protocol):
    """A per-task map of what the head sees, set from the task's support features.

    Learners take an optional :data:`TransformFactory`; for each task they call :meth:`prepare`
    on the support features at the meta-parameters (before the inner loop), then feed the head
    ``transform(features)`` instead of the features. MetaCRL's
    :class:`~metacrl.regularizer.TaskFactors` (the task's gated factors) is one.

    ``state`` is the tensor :meth:`prepare` computed; ``with_state`` rebuilds the transform from
    a slice of it, which lets ``backend="vmap"`` prepare all tasks at once and split the state
    over tasks.
    """

    def prepare(self, support_features: Tensor) -> None:
        """Compute the task's state from its support features ``[..., n, feature_dim]``."""

    def transform(self, features: Tensor) -> Tensor:
        """Map features ``[..., n, feature_dim]`` to the head's inputs."""

    @property
    def state(self) -> Tensor:
        """The tensor that :meth:`prepare` computed (per task: ``[..., k]``)."""

    def with_state(self, state: Tensor) -> HeadTransform:
        """The same transform with ``state`` in place of its own."""


TransformFactory = Callable[[], HeadTransform]
"""Makes a fresh :class:`HeadTransform` for the next task (the learners call it once per task)."""
