"""Draw ConfoundedShapes samples for the Data page: ``python docs/figures/make_shapes.py``.

Writes ``docs/figures/shapes.png`` (a few seconds on a CPU). Each panel is one 5-way task: one
column per label, the support image on top and two query images below. The first two panels
are two tasks of the same training meta-batch: their classes differ, but the same background
colour goes with each label in both. The third panel is a task of another meta-batch, whose
confounder is another nuisance (the shape's colour) with another mapping. The last panel is a
test task, where every nuisance is independent of the label.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from metacrl.data import ConfoundedShapes

OUT = Path(__file__).with_name("shapes.png")
N_WAY, K_QUERY, SIZE = 5, 2, 48
NAMES = {"foreground": "shape colour", "background": "background colour", "texture": "stripes"}


def task_grid(x_spt: Tensor, x_qry: Tensor) -> np.ndarray:
    """Tile one task's images: a column per label, the support image first.

    Args:
        x_spt: Support images ``[N, 3, S, S]`` (one shot, class-major).
        x_qry: Query images ``[N * K_QUERY, 3, S, S]`` (class-major).

    Returns:
        An RGB array ``[(1 + K_QUERY) * (S + 2), N * (S + 2), 3]`` with white gutters.
    """
    pad = 2
    cell = SIZE + pad
    grid = np.ones(((1 + K_QUERY) * cell, N_WAY * cell, 3), dtype=np.float32)
    for label in range(N_WAY):
        column = [x_spt[label]] + [x_qry[label * K_QUERY + q] for q in range(K_QUERY)]
        for row, image in enumerate(column):
            top, left = row * cell, label * cell
            grid[top : top + SIZE, left : left + SIZE] = image.permute(1, 2, 0).numpy()
    return grid


def main() -> None:
    """Render the four panels and save the figure."""
    batch = 4
    train = ConfoundedShapes(
        "train", n_way=N_WAY, k_shot=1, k_query=K_QUERY, image_size=SIZE, batchsz=64
    )
    test = ConfoundedShapes("test", n_way=N_WAY, k_shot=1, k_query=K_QUERY, image_size=SIZE)

    def first_batch(attribute: str) -> int:
        """Return the first meta-batch whose confounder is ``attribute``."""
        for b in range(len(train) // batch):
            confounder = train.confounder_of(b * batch)
            if confounder is not None and confounder.attribute == attribute:
                return b
        raise RuntimeError(f"no meta-batch ties {attribute}")

    # colour nuisances read best at this size; the stripe texture is a confounder too
    bg, fg = first_batch("background"), first_batch("foreground")
    panels = [
        (train.episode(bg * batch), f"meta-batch {bg}, task 0\nbackground colour tied to label"),
        (train.episode(bg * batch + 1), f"meta-batch {bg}, task 1\nsame tie, other classes"),
        (train.episode(fg * batch), f"meta-batch {fg}, task 0\nshape colour tied instead"),
        (test.episode(0), "test task\nno nuisance tied to label"),
    ]

    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9), layout="constrained")
    for ax, (episode, title) in zip(axes, panels, strict=True):
        ax.imshow(task_grid(episode.x_spt, episode.x_qry), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([(SIZE + 2) * k + SIZE / 2 for k in range(N_WAY)])
        ax.set_xticklabels([f"label {k}" for k in range(N_WAY)], fontsize=7)
        ax.set_yticks([(SIZE + 2) * r + SIZE / 2 for r in range(1 + K_QUERY)])
        ax.set_yticklabels(["support"] + ["query"] * K_QUERY, fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.suptitle(
        "ConfoundedShapes, 5-way 1-shot (rho = 0.9, confounder = switch): the shape decides the "
        "label; one nuisance per training meta-batch follows it too",
        fontsize=10,
    )
    fig.savefig(OUT, dpi=80)
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
