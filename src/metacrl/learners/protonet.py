"""Prototypical Networks (Snell et al., 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from metacrl.learners.meta_batch import MetaBatch
from metacrl.learners.meta_learner import MetaLearner
from metacrl.typing import HeadTransform, LossFn, Predictor

__all__ = ["ProtoNet", "prototype_logits"]


def prototype_logits(h_spt: Tensor, y_spt: Tensor, h_qry: Tensor) -> Tensor:
    """Return ``-||h_qry - c_k||^2`` for the class means ``c_k`` of the support embeddings.

    Args:
        h_spt: Support embeddings ``[n_support, dim]``, or ``[E, n_support, dim]`` for ``E``
            tasks at once.
        y_spt: Support labels ``[n_support]`` (or ``[E, n_support]``) in ``0..n_way-1``, every
            class present.
        h_qry: Query embeddings ``[n_query, dim]`` (or ``[E, n_query, dim]``).

    Returns:
        Logits ``[n_query, n_way]`` (or ``[E, n_query, n_way]``), where ``n_way`` is
        ``1 + y_spt.max()`` over all tasks; a class absent from a task's support set gives a
        NaN prototype (and NaN logits) in that task.

    Example:
        >>> h_spt = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])  # class 0 twice
        >>> y_spt = torch.tensor([0, 0, 1])                             # prototypes (1, 0), (0, 4)
        >>> logits = prototype_logits(h_spt, y_spt, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
        >>> logits[1].tolist(), logits.argmax(dim=-1).tolist()
        ([-10.0, -1.0], [0, 1])
    """
    n_way = int(y_spt.max()) + 1
    onehot = F.one_hot(y_spt, n_way).to(h_spt.dtype)
    prototypes = (onehot.transpose(-1, -2) @ h_spt) / onehot.sum(dim=-2).unsqueeze(-1)
    sq_dist = (
        h_qry.square().sum(dim=-1, keepdim=True)
        - 2.0 * h_qry @ prototypes.transpose(-1, -2)
        + prototypes.square().sum(dim=-1).unsqueeze(-2)
    )
    return -sq_dist


class ProtoNet(MetaLearner):
    """ProtoNet: classify queries by squared distance to the class means of support embeddings.

    No gradient steps: "adaptation" is computing prototypes. The embedding is ``model.features``
    (gated by MetaCRL when wrapped); ``model.head`` is not used.

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.

    Example:
        >>> proto = ProtoNet(model)                     # model.head is not used
        >>> proto.meta_step(x, y, x, y).task_scores.shape
        torch.Size([2])
    """

    adapts_backbone = False

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, loss="cross_entropy", backend="func")

    def _check_batch(self, batch: MetaBatch) -> None:
        present = F.one_hot(batch.y_spt, batch.num_labels).sum(dim=1) > 0  # [T, n_way]
        if not bool(present.all()):
            task, label = (~present).nonzero()[0].tolist()
            raise ValueError(
                f"ProtoNet needs every label of the meta-batch (0..{batch.num_labels - 1}) in "
                f"each support set: task {task} has no support example of label {label}"
            )

    def solve_task(
        self,
        x_spt: Tensor,
        y_spt: Tensor,
        loss_fn: LossFn,
        transform: HeadTransform | None,
        *,
        training: bool,
        steps: int,
    ) -> Predictor:
        """Prototypes of the support embeddings (see :meth:`MetaLearner.solve_task`)."""
        h_spt = self.support_head_inputs(x_spt, transform, training)
        return lambda x: prototype_logits(h_spt, y_spt, self.head_inputs(x, transform))

    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Prototype logits of ``E`` tasks on given embeddings (no parameters involved).

        Args:
            h_spt: Support embeddings ``[E, n, k]``.
            y_spt: Support labels ``[E, n]``, every label present in every task.
            h_qry: Query embeddings ``[E, q, k]``.
            loss_fn: The task loss (unused: prototypes need no inner loop).

        Returns:
            Query logits ``[E, q, n_way]``, differentiable in ``h_spt`` and ``h_qry``.

        Example:
            >>> proto = ProtoNet(model)
            >>> logits = proto.head_task(torch.randn(2, 6, 8), y, torch.randn(2, 5, 8),
            ...                          proto.task_loss)
            >>> tuple(logits.shape)
            (2, 5, 3)
        """
        return prototype_logits(h_spt, y_spt, h_qry)
