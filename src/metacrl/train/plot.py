"""Learning curves as a PNG, when matplotlib is installed (``pip install metacrl[plot]``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metacrl.data.atomic import atomic_path

__all__ = ["plot_curves"]


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, score: str
) -> bool:
    """Plot the training loss and the validation score of each run side by side.

    Args:
        runs: Run name → metrics records (as in :class:`~metacrl.train.metrics.MetricsLog`).
        path: The PNG to write (replaced atomically).
        score: ``"accuracy"`` or ``"mse"``.

    Returns:
        ``True`` if the plot was written, ``False`` if matplotlib is not installed.

    Example:
        >>> import tempfile
        >>> records = [{"kind": "train", "iteration": i, "query_loss": 1.0 / i} for i in (1, 2)]
        >>> records.append({"kind": "val", "iteration": 2, "accuracy": 0.5})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     plot_curves({"MAML": records}, f"{d}/curves.png", "accuracy") in (True, False)
        True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    for name, records in runs.items():
        train = [r for r in records if r.get("kind") == "train"]
        val = [r for r in records if r.get("kind") == "val"]
        if train:
            window = max(1, len(train) // 50)
            ax_loss.plot(
                [r["iteration"] for r in train],
                _smooth([float(r["query_loss"]) for r in train], window),
                label=name,
            )
        if val:
            ax_val.plot([r["iteration"] for r in val], [r[score] for r in val], "o-", label=name)
    ax_loss.set(xlabel="meta-iteration", ylabel="query loss (smoothed)", title="training")
    ax_val.set(xlabel="meta-iteration", ylabel=score, title="validation")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run that never validated has no val curve
            ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return True
