"""Task losses (cross-entropy for classification, MSE for regression) with clear shape checks."""

from __future__ import annotations

from typing import get_args

import torch.nn.functional as F
from torch import Tensor

from metacrl.typing import LossFn, LossName, Problem
from metacrl.validation import check_choice

__all__ = ["TaskLoss"]


class TaskLoss:
    """The per-task loss a learner minimises in its inner loop and meta-objective.

    Args:
        name: ``"cross_entropy"`` (the default: classification, integer labels; the metric is
            accuracy) or ``"mse"`` (regression, float targets; the metric is the MSE itself).

    Raises:
        ValueError: If ``name`` is not one of the two losses.

    Example:
        >>> loss = TaskLoss("cross_entropy")
        >>> float(loss(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])))  # log(2)
        0.6931471824645996
    """

    def __init__(self, name: LossName = "cross_entropy") -> None:
        self.name: LossName = check_choice("loss", name, get_args(LossName))
        self.problem: Problem = "classification" if name == "cross_entropy" else "regression"

    def __call__(self, out: Tensor, y: Tensor) -> Tensor:
        """Return the mean loss of outputs ``out`` against targets ``y``.

        Args:
            out: Logits ``[n, n_way]`` (cross-entropy) or predictions shaped like ``y`` (MSE).
            y: Class indices ``[n]`` or regression targets.

        Returns:
            The scalar mean loss (no shape check: see :meth:`checked`).
        """
        if self.name == "cross_entropy":
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)

    def checked(self, num_labels: int) -> LossFn:
        """Return this loss with a check of the outputs' shape against the targets.

        Args:
            num_labels: For classification, ``1 + the largest label`` in the meta-batch.

        Returns:
            A loss function that raises a clear ``ValueError`` instead of an indexing error deep
            inside autograd when the model's outputs do not fit the targets.

        Example:
            >>> loss_fn = TaskLoss("cross_entropy").checked(num_labels=3)
            >>> loss_fn(torch.zeros(4, 2), torch.tensor([0, 1, 2, 0]))
            Traceback (most recent call last):
                ...
            ValueError: labels must lie in 0..n_way-1 with n_way=2 (the model's outputs), ...
        """

        def loss(out: Tensor, y: Tensor) -> Tensor:
            self.check_output(out, y, num_labels)
            return self(out, y)

        return loss

    def check_output(self, out: Tensor, y: Tensor, num_labels: int) -> None:
        """Raise ``ValueError`` if outputs ``out`` cannot be scored against targets ``y``.

        Args:
            out: The model's outputs.
            y: The targets: class indices ``[n]`` or regression targets.
            num_labels: For classification, ``1 + the largest label`` of the meta-batch (the
                outputs need at least that many columns); unused for regression.

        Raises:
            ValueError: For cross-entropy, if ``out`` is not ``[n, n_way]`` with one row per
                target and ``n_way >= num_labels``; for MSE, if ``out`` and ``y`` differ in
                shape.

        Example:
            >>> TaskLoss("mse").check_output(torch.zeros(4, 1), torch.zeros(4, 1), 0)  # fine
            >>> TaskLoss("mse").check_output(torch.zeros(4, 1), torch.zeros(4), 0)
            Traceback (most recent call last):
                ...
            ValueError: the model's outputs (4, 1) and the regression targets (4,) must have ...
        """
        if self.name == "cross_entropy":
            if out.dim() != 2 or out.shape[0] != y.shape[0]:
                raise ValueError(
                    f"the model must output logits shaped [examples, n_way] = [{y.shape[0]}, ...]"
                    f" for cross-entropy, got {tuple(out.shape)}"
                )
            if num_labels > out.shape[1]:
                raise ValueError(
                    f"labels must lie in 0..n_way-1 with n_way={out.shape[1]} (the model's "
                    f"outputs), but the meta-batch has label {num_labels - 1}"
                )
        elif out.shape != y.shape:
            raise ValueError(
                f"the model's outputs {tuple(out.shape)} and the regression targets "
                f"{tuple(y.shape)} must have the same shape for the MSE loss"
            )

    def metric(self, out: Tensor, y: Tensor) -> Tensor:
        """Return the per-task score: accuracy (classification) or MSE (regression).

        Args:
            out: The query outputs (logits ``[n, n_way]`` or predictions).
            y: The query targets.

        Returns:
            A scalar tensor: the fraction of rows whose argmax equals the label, or the mean
            squared error.

        Example:
            >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
            >>> round(float(TaskLoss("cross_entropy").metric(logits, torch.tensor([0, 1, 1]))), 4)
            0.6667
            >>> float(TaskLoss("mse").metric(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])))
            2.5
        """
        if self.name == "cross_entropy":
            return (out.argmax(dim=-1) == y).float().mean()
        return F.mse_loss(out, y)
