"""Shared pieces of the gradient-based learners (MAML, ANIL, Meta-SGD)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import vmap

from metacrl.learners.inner_loop import inner_loop
from metacrl.learners.linear_head import adapt_linear_heads
from metacrl.learners.meta_batch import MetaBatch
from metacrl.learners.meta_learner import MetaLearner
from metacrl.learners.vmap_loop import check_vmappable, vmapped_inner_loops
from metacrl.typing import Backend, LearningRates, LossFn, LossName, TransformFactory
from metacrl.validation import check_float, check_int

__all__ = ["GradientLearner"]


class GradientLearner(MetaLearner):
    """A learner whose inner loop is gradient descent on some of the model's parameters.

    The common base of :class:`~metacrl.MAML`, :class:`~metacrl.ANIL` and
    :class:`~metacrl.MetaSGD`; subclasses say which parameters the inner loop adapts
    (:meth:`~metacrl.learners.MetaLearner.solve_task`).

    Args:
        model: A model with ``features``, ``head`` and ``feature_dim``.
        inner_lr: Inner-loop step size (a finite number ``> 0``).
        inner_steps: Inner-loop steps during meta-training (an integer ``>= 0``).
        first_order: Drop second-order terms of the meta-gradient (default: ``False``).
        test_inner_steps: Inner steps at meta-test (default: ``None``, ``inner_steps``).
        loss: ``"cross_entropy"`` (default) or ``"mse"``.
        backend: ``"func"`` (default), ``"higher"`` or ``"vmap"`` (all tasks of a meta-batch
            in one vectorised inner loop; needs a model without torch BatchNorm layers, see
            :func:`~metacrl.learners.batched.check_vmappable`).

    Raises:
        ValueError: If ``inner_lr``, ``inner_steps`` or ``test_inner_steps`` is out of range,
            ``loss`` or ``backend`` is unknown, or the model cannot run under ``"vmap"``.
        TypeError: If ``model`` does not follow the ``features``/``head``/``feature_dim``
            contract.

    Example:
        >>> anil = ANIL(model, inner_lr=0.1, inner_steps=2, backend="vmap")
        >>> isinstance(anil, GradientLearner), anil.test_inner_steps
        (True, 2)
        >>> anil.meta_step(x, y, x, y).task_losses.shape
        torch.Size([2])
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float,
        inner_steps: int,
        first_order: bool = False,
        test_inner_steps: int | None = None,
        *,
        loss: LossName = "cross_entropy",
        backend: Backend = "func",
    ) -> None:
        super().__init__(model, loss=loss, backend=backend, batched=True)
        if self.backend == "vmap":
            check_vmappable(model)
        self.inner_lr = check_float("inner_lr", inner_lr, above=0)
        self.inner_steps = check_int("inner_steps", inner_steps, minimum=0)
        self.test_inner_steps = check_int(
            "test_inner_steps",
            inner_steps if test_inner_steps is None else test_inner_steps,
            minimum=0,
        )
        self.first_order = bool(first_order)

    def _reuses_features(self) -> bool:
        return not self.adapts_backbone and self.backend != "vmap"  # vmap runs its own forward

    def _vmap_head_only(self) -> bool:
        """Whether the inner loop adapts the head alone (ANIL), on precomputed features."""
        return False

    def _solve_tasks(
        self,
        batch: MetaBatch,
        transforms: TransformFactory | None,
        *,
        training: bool,
        steps: int,
    ) -> tuple[Tensor, Tensor]:
        if self.backend != "vmap":
            return super()._solve_tasks(batch, transforms, training=training, steps=steps)
        # one transform for all tasks: prepared on [T, n, d], its state split over tasks by vmap
        transform = None if transforms is None else transforms()
        head_only = self._vmap_head_only()
        loss_fn = self.task_loss.checked(batch.num_labels)
        grad_on = training and torch.is_grad_enabled()
        features = vmap(self.net.features, randomness="different")
        with torch.set_grad_enabled(grad_on):
            x_s, x_q = batch.x_spt, batch.x_qry
            if transform is not None or head_only:
                feats_s = features(x_s)
                if transform is not None:
                    transform.prepare(feats_s)
                if head_only:
                    x_s, x_q = feats_s, features(x_q)
                    if transform is not None:
                        x_s, x_q = transform.transform(x_s), transform.transform(x_q)
            module: nn.Module = self.net.head if head_only else self.net
            names = [n for n, p in module.named_parameters() if p.requires_grad]
            rates = self._head_rates() if head_only else self._rates()
            losses, outputs = vmapped_inner_loops(
                module,
                names,
                (x_s, batch.y_spt, x_q, batch.y_qry),
                loss_fn,
                steps=steps,
                lr=rates,
                first_order=self.first_order,
                training=training,
                transform=None if head_only else transform,
            )
        scores = torch.stack(
            [
                self.task_loss.metric(o.detach(), y)
                for o, y in zip(outputs, batch.y_qry, strict=True)
            ]
        )
        return losses, scores

    def _rates(self) -> LearningRates:
        """Step sizes of the adapted parameters (names as in ``net``)."""
        return self.inner_lr

    def _check_batch(self, batch: MetaBatch) -> None:
        """Refuse float16 autocast in second-order mode (its double backward overflows)."""
        device_type = batch.x_spt.device.type
        if (
            not self.first_order
            and torch.is_autocast_enabled(device_type)
            and torch.get_autocast_dtype(device_type) == torch.float16
        ):
            raise ValueError(
                "float16 autocast gives NaN in second-order inner loops (the double backward "
                "overflows); use torch.autocast(..., dtype=torch.bfloat16), float32, or "
                "first_order=True"
            )

    def extra_repr(self) -> str:
        """Summarise the settings in ``repr``.

        Returns:
            The inner-loop settings as ``key=value`` pairs.

        Example:
            >>> MAML(model, inner_lr=0.1, inner_steps=2).extra_repr()
            "inner_lr=0.1, inner_steps=2, test_inner_steps=2, first_order=False, backend='func'"
        """
        return (
            f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}, "
            f"test_inner_steps={self.test_inner_steps}, first_order={self.first_order}, "
            f"backend={self.backend!r}"
        )

    def _head_rates(self) -> LearningRates:
        """Step sizes of the head's parameters (names relative to the head)."""
        return self.inner_lr

    def head_task(self, h_spt: Tensor, y_spt: Tensor, h_qry: Tensor, loss_fn: LossFn) -> Tensor:
        """Adapt the head (from its current weights, held constant) on each of ``E`` tasks.

        The head takes ``inner_steps`` steps per task; the graph is kept with respect to the
        inputs, so the result is differentiable in ``h_spt`` and ``h_qry`` to second order. A
        plain ``nn.Linear`` head takes a batched closed-form path; any other head runs the
        generic inner loop task by task.

        Args:
            h_spt: Support head inputs ``[E, n, k]``.
            y_spt: Support targets ``[E, n, ...]``.
            h_qry: Query head inputs ``[E, q, k]``.
            loss_fn: The task loss.

        Returns:
            Query outputs ``[E, q, ...]``.

        Example:
            >>> anil = ANIL(model, inner_lr=0.1, inner_steps=2)
            >>> h_spt = torch.randn(2, 6, 8, requires_grad=True)
            >>> out = anil.head_task(h_spt, y, torch.randn(2, 4, 8), anil.task_loss)
            >>> grad, = torch.autograd.grad(out.sum(), h_spt, create_graph=True)
            >>> out.shape, grad.requires_grad, anil.model.head.weight.grad is None
            (torch.Size([2, 4, 3]), True, True)
        """
        head = self.net.head
        rates = self._head_rates()
        if type(head) is nn.Linear and head.weight.requires_grad:
            return adapt_linear_heads(
                head,
                h_spt,
                y_spt,
                h_qry,
                loss=self.task_loss.name,
                steps=self.inner_steps,
                lr=rates,
            )
        if isinstance(rates, Mapping):
            rates = {n: r.detach() for n, r in rates.items()}
        names = [n for n, p in head.named_parameters() if p.requires_grad]
        outputs = []
        with torch.enable_grad():
            for h_s, y_s, h_q in zip(h_spt, y_spt, h_qry, strict=True):
                predict = inner_loop(
                    head,
                    names,
                    h_s,
                    y_s,
                    loss_fn,
                    steps=self.inner_steps,
                    lr=rates,
                    training=True,
                    detach_init=True,
                    backend="func",
                )
                outputs.append(predict(h_q))
        return torch.stack(outputs)
