"""MAML's sinusoid regression benchmark (Finn et al., 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from metacrl.data.base import Task, TaskDataset
from metacrl.data.seeding import task_rng
from metacrl.validation import check_index, check_int, check_range

__all__ = ["Sinusoid"]


class Sinusoid(TaskDataset):
    """Few-shot regression of sine waves: task ``i`` is ``y = A sin(x - phase)``.

    Each task draws its amplitude ``A ~ U[amplitude]`` and ``phase ~ U[phase]``, then
    ``k_shot`` support and ``k_query`` query inputs ``x ~ U[x_range]`` (no label noise), all from
    a generator seeded by ``(seed, i)``. The defaults are MAML's: ``A ~ U[0.1, 5]``,
    ``phase ~ U[0, pi]``, ``x ~ U[-5, 5]``, 5 shots, trained with MSE. MAML's own code used as
    many query points as support points (``k_query=k_shot``); more query points only make the
    query loss less noisy.

    Args:
        batchsz: The number of tasks (default: ``10000``).
        k_shot: Support points per task (default: ``5``).
        k_query: Query points per task (default: ``15``).
        amplitude: The range of ``A`` (default: ``(0.1, 5.0)``).
        phase: The range of the phase (default: ``(0.0, math.pi)``).
        x_range: The range of the inputs (default: ``(-5.0, 5.0)``).
        seed: The seed of the task stream (default: ``0``).

    Raises:
        TypeError: If a count is not an integer.
        ValueError: If a count is below 1 or a range is not a finite ``(low, high)`` pair.

    Example:
        >>> ds = Sinusoid(batchsz=100, k_shot=5, k_query=10)
        >>> x_spt, y_spt, x_qry, y_qry = ds[0]
        >>> tuple(x_spt.shape), tuple(y_qry.shape), y_spt.dtype
        ((5, 1), (10, 1), torch.float32)
        >>> a, p = ds.params(0)
        >>> bool(torch.allclose(y_spt, a * torch.sin(x_spt - p), atol=1e-5))
        True
    """

    def __init__(
        self,
        batchsz: int = 10000,
        k_shot: int = 5,
        k_query: int = 15,
        amplitude: Sequence[float] = (0.1, 5.0),
        phase: Sequence[float] = (0.0, math.pi),
        x_range: Sequence[float] = (-5.0, 5.0),
        seed: int = 0,
    ) -> None:
        super().__init__(batchsz, seed)
        self.k_shot = check_int("k_shot", k_shot)
        self.k_query = check_int("k_query", k_query)
        self.amplitude = check_range("amplitude", amplitude)
        self.phase = check_range("phase", phase)
        self.x_range = check_range("x_range", x_range)

    def _draw(self, index: int) -> tuple[float, float, np.random.Generator]:
        rng = task_rng(self.seed, index)
        amp = float(rng.uniform(*self.amplitude))
        phase = float(rng.uniform(*self.phase))
        return amp, phase, rng

    def params(self, index: int) -> tuple[float, float]:
        """Return task ``index``'s ``(amplitude, phase)``.

        Args:
            index: The task index (negative counts from the end).

        Returns:
            The amplitude and phase of the task's sine wave.

        Raises:
            IndexError: If ``index`` is out of range.

        Example:
            >>> a, p = Sinusoid(batchsz=3).params(2)
            >>> 0.1 <= a <= 5.0 and 0.0 <= p <= math.pi
            True
        """
        amp, phase, _ = self._draw(check_index(index, self.batchsz))
        return amp, phase

    def task(self, index: int) -> Task:
        """Make task ``index``: inputs and targets shaped ``[K, 1]``, ``float32``.

        Args:
            index: The task index.

        Returns:
            ``(x_spt, y_spt, x_qry, y_qry)``.

        Example:
            >>> x_spt, y_spt, x_qry, y_qry = Sinusoid(batchsz=2, k_shot=3, k_query=4).task(1)
            >>> tuple(x_spt.shape), tuple(y_qry.shape), bool(x_spt.abs().max() <= 5.0)
            ((3, 1), (4, 1), True)
        """
        amp, phase, rng = self._draw(index)
        x = rng.uniform(*self.x_range, size=(self.k_shot + self.k_query, 1))
        y = amp * np.sin(x - phase)
        xt = torch.from_numpy(x.astype(np.float32))
        yt = torch.from_numpy(y.astype(np.float32))
        k = self.k_shot
        return xt[:k], yt[:k], xt[k:], yt[k:]

    def __repr__(self) -> str:
        return (
            f"Sinusoid(batchsz={self.batchsz}, k_shot={self.k_shot}, k_query={self.k_query}, "
            f"amplitude={self.amplitude}, phase={self.phase}, x_range={self.x_range})"
        )
