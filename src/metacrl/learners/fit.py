"""One meta-training step, and the small training loop behind ``Learner.fit``.

:func:`train_step` is the step that both :meth:`Learner.fit <metacrl.learners.Learner.fit>`
and the command line's :class:`~metacrl.train.Trainer` take: zero the gradients, run the
meta-step, back-propagate once per meta-batch, optionally reduce the gradients over processes,
step the optimiser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from metacrl.learners.outputs import MetaStepOutput

__all__ = ["Callback", "SupportsMetaStep", "fit", "train_step"]

Callback = Callable[[int, MetaStepOutput], Any]
"""What :func:`fit` calls after each meta-step: ``callback(iteration, output)``."""


class SupportsMetaStep(Protocol):
    """What :func:`train_step` and :func:`fit` need of a learner."""

    def meta_step(
        self, x_spt: Tensor, y_spt: Tensor, x_qry: Tensor, y_qry: Tensor
    ) -> MetaStepOutput:
        """Return the meta-loss of a meta-batch."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The meta-parameters."""


def train_step(
    learner: SupportsMetaStep,
    optimizer: torch.optim.Optimizer,
    batch: Sequence[Tensor],
    *,
    reduce_gradients: Callable[[], None] | None = None,
) -> MetaStepOutput:
    """Take one meta-training step on a meta-batch: one backward pass, one optimiser step.

    Args:
        learner: The learner (plain or wrapped by MetaCRL).
        optimizer: The meta-optimiser over the learner's parameters.
        batch: ``(x_spt, y_spt, x_qry, y_qry)``.
        reduce_gradients: Called between ``backward`` and the optimiser step, e.g. to average
            the gradients over processes (default: ``None``).

    Returns:
        The meta-step's output (its loss already back-propagated).

    Raises:
        ValueError: If ``batch`` does not have four items.

    Example:
        >>> learner = MAML(model, inner_lr=0.1, inner_steps=1)
        >>> opt = torch.optim.SGD(learner.parameters(), lr=0.1)
        >>> out = train_step(learner, opt, (x, y, x, y))
        >>> out.loss.grad_fn is not None, 0.0 <= out.accuracy <= 1.0
        (True, True)
    """
    if len(batch) != 4:
        raise ValueError(
            f"each meta-batch must be (x_spt, y_spt, x_qry, y_qry), got {len(batch)} items"
        )
    optimizer.zero_grad(set_to_none=True)
    out = learner.meta_step(*batch)
    out.loss.backward()  # type: ignore[no-untyped-call]
    if reduce_gradients is not None:
        reduce_gradients()
    optimizer.step()
    return out


def fit(
    learner: SupportsMetaStep,
    tasks: Iterable[Sequence[Tensor]],
    iterations: int | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    progress: bool = True,
    callback: Callback | None = None,
) -> list[dict[str, float]]:
    """Meta-train on a stream of meta-batches: one :func:`train_step` per meta-batch.

    See :meth:`Learner.fit <metacrl.learners.Learner.fit>`, which calls this function.

    Args:
        learner: The learner to train.
        tasks: An iterable of ``(x_spt, y_spt, x_qry, y_qry)`` meta-batches.
        iterations: How many meta-batches to use (default: ``None``, all of ``tasks``).
        optimizer: The meta-optimiser (default: ``None``, Adam at ``lr`` over the parameters
            that require gradients).
        lr: The learning rate of the default optimiser (default: ``1e-3``).
        progress: Show a progress bar with the running loss and score (default: ``True``).
        callback: Called as ``callback(iteration, output)`` after each step (default: ``None``).

    Returns:
        One dictionary of metrics per meta-step (see :meth:`MetaStepOutput.summary`).

    Raises:
        ValueError: If ``iterations`` is negative or a meta-batch does not have four items.

    Example:
        >>> history = fit(MAML(model, inner_lr=0.1, inner_steps=1), [(x, y, x, y)] * 2,
        ...               progress=False)
        >>> len(history), sorted(history[0])
        (2, ['accuracy', 'loss', 'query_loss'])
    """
    from tqdm.auto import tqdm

    if iterations is not None and iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if optimizer is None:
        params = [p for p in learner.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
    total = iterations if iterations is not None else _length(tasks)
    history: list[dict[str, float]] = []
    stream = iter(tasks)
    with tqdm(total=total, disable=not progress, desc="meta-train") as bar:
        while iterations is None or len(history) < iterations:
            try:
                batch = next(stream)
            except StopIteration:
                break
            out = train_step(learner, optimizer, batch)
            record = out.summary()
            history.append(record)
            bar.update(1)
            key = "accuracy" if "accuracy" in record else "mse"
            bar.set_postfix(loss=f"{record['query_loss']:.3f}", **{key: f"{record[key]:.3f}"})
            if callback is not None:
                callback(len(history) - 1, out)
    return history


def _length(tasks: Iterable[Any]) -> int | None:
    try:
        return len(tasks)  # type: ignore[arg-type]
    except TypeError:
        return None
