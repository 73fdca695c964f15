"""Draw the MetaCRL diagram for the Method page: ``python docs/figures/make_diagram.py``.

Writes ``docs/figures/metacrl.png`` (about a second, matplotlib only). Top: the forward pass of
one task, ``h(Xi (w_t ⊙ Xi^T g(x)))`` with the gates ``w_t`` computed from the support set by
``f_gr``. Bottom: the lower level (the inner loop on θ) and the two parts of the upper level
(the causal step on ``Xi``/``f_gr``, the meta-update of θ).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyBboxPatch

OUT = Path(__file__).with_name("metacrl.png")
THETA = "#dbe8f7"  # the base learner's parameters θ (g and h)
CRL = "#fde3c8"  # MetaCRL's parameters (Xi and f_gr)
DATA = "#eeeeee"
EDGE = "#333333"


def box(ax: Axes, x: float, y: float, w: float, h: float, text: str, colour: str) -> None:
    """Draw a rounded box centred at ``(x, y)`` with centred text.

    Args:
        ax: The axes.
        x: Centre abscissa.
        y: Centre ordinate.
        w: Width.
        h: Height.
        text: The label (may span lines).
        colour: The fill colour.
    """
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=colour,
            edgecolor=EDGE,
            linewidth=1.0,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9.5)


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    *,
    dashed: bool = False,
    rad: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.17),
) -> None:
    """Draw an arrow from ``start`` to ``end`` with an optional label near its middle.

    Args:
        ax: The axes.
        start: Where the arrow starts.
        end: Where its head is.
        label: Text placed at the middle plus ``offset``.
        dashed: Draw a dashed line (an optional path).
        rad: Curvature of the arrow (0: straight).
        offset: Where the label goes relative to the middle.
    """
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
            "arrowstyle": "-|>",
            "color": EDGE,
            "linewidth": 1.1,
            "linestyle": "--" if dashed else "-",
            "shrinkA": 2,
            "shrinkB": 2,
            "connectionstyle": f"arc3,rad={rad}",
        },
    )
    if label:
        mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        ax.text(*mid, label, ha="center", va="bottom", fontsize=8.5, color="#222222")


def forward_pass(ax: Axes) -> None:
    """Draw the forward pass of one task (top half).

    Args:
        ax: The axes.
    """
    y, ys = 7.6, 5.6  # main row, support (gate) row
    box(ax, 1.0, y, 1.4, 0.9, "x\n(query or\nsupport)", DATA)
    box(ax, 3.3, y, 1.7, 0.9, "g  (features)\nθ", THETA)
    box(ax, 6.0, y, 1.7, 0.9, "Ξᵀ\n(unit columns)", CRL)
    ax.add_patch(Circle((8.4, y), 0.32, facecolor="white", edgecolor=EDGE))
    ax.text(8.4, y, "⊙", ha="center", va="center", fontsize=15)
    box(ax, 10.6, y, 1.2, 0.9, "Ξ", CRL)
    box(ax, 13.0, y, 1.7, 0.9, "h  (head)\nθ", THETA)
    box(ax, 15.5, y, 1.5, 0.9, "outputs o", DATA)
    arrow(ax, (1.7, y), (2.45, y))
    arrow(ax, (4.15, y), (5.15, y), "g(x) ∈ R^d", offset=(0.0, 0.5))
    arrow(ax, (6.85, y), (8.08, y), "z ∈ R^M", offset=(0.0, 0.5))
    arrow(ax, (8.72, y), (10.0, y), "w_t ⊙ z", offset=(0.0, -0.45))
    arrow(ax, (11.2, y), (12.15, y), "R^d", offset=(0.0, -0.45))
    arrow(ax, (13.85, y), (14.75, y))
    arrow(ax, (8.55, y + 0.3), (12.5, y + 0.45), dashed=True, rad=-0.25)
    ax.text(10.6, y + 1.0, 'head_input="factors": h sees w_t ⊙ z', ha="center", fontsize=8.5)

    box(ax, 3.0, ys, 2.6, 0.9, "support set S_t:\nmean of Ξᵀ g(x)", DATA)
    box(ax, 5.9, ys, 2.6, 0.9, "f_gr\nLinear → ReLU → Linear", CRL)
    box(ax, 8.95, ys, 2.7, 0.9, "sigmoid → gates w_t\n(one per factor)", DATA)
    arrow(ax, (4.3, ys), (4.6, ys))
    arrow(ax, (7.2, ys), (7.6, ys))
    arrow(ax, (8.4, ys + 0.45), (8.4, y - 0.32))
    ax.text(
        10.6,
        ys,
        "computed once per task, from the support set,\nat the meta-parameters; "
        "held fixed\nduring the inner loop",
        ha="left",
        va="center",
        fontsize=8.5,
        style="italic",
    )
    ax.text(
        0.2,
        9.25,
        "Forward pass of task t:   h( Ξ (w_t ⊙ Ξᵀ g(x)) ),   "
        "w_t = σ( f_gr( Ξᵀ mean_{x∈S_t} g(x) ) )",
        fontsize=11,
        weight="bold",
    )


def schedule(ax: Axes) -> None:
    """Draw the bi-level optimisation (bottom half).

    Args:
        ax: The axes.
    """
    ax.text(0.2, 3.85, "Bi-level optimisation, per meta-batch", fontsize=11, weight="bold")
    box(
        ax,
        2.9,
        2.0,
        5.2,
        2.6,
        "Lower level (each task t)\n\n"
        "adapt θ on the support set S_t:\n"
        "MAML: all of θ · ANIL, Meta-SGD: the head\n"
        "ProtoNet: prototypes (no steps)\n\n"
        "Ξ, f_gr and w_t held fixed",
        THETA,
    )
    box(
        ax,
        9.0,
        2.0,
        6.0,
        2.6,
        "Upper level (a): causal step on Ξ and f_gr\n\n"
        "crl_steps SGD steps (Ξ: xi_lr 0.4, f_gr: gr_lr 0.01,\n"
        "gradient norm clipped to 1.0), θ frozen, on\n"
        "mean_e L_e + λ_inv L_inv + L_dis\n"
        "environments e: this batch + last `replay` batches;\n"
        "features without gradient, head solved by head_task",
        CRL,
    )
    box(
        ax,
        14.9,
        2.0,
        4.6,
        2.6,
        "Upper level (b): meta-update of θ\n\n"
        "mean query loss after adaptation,\n"
        "through the frozen gates;\n"
        "one optimiser step per meta-batch\n\n"
        'mode="joint": one loss\n(+ λ_inv L_inv + L_dis), one step',
        THETA,
    )
    arrow(ax, (5.55, 2.0), (5.95, 2.0))
    arrow(ax, (12.05, 2.0), (12.55, 2.0))
    ax.text(
        9.0,
        0.4,
        'mode="alternating" (default): (a) then (b) in every meta-step; '
        "the query losses of (b) come from the lower level",
        ha="center",
        fontsize=8.5,
    )


def main() -> None:
    """Draw both halves and save the figure."""
    fig, ax = plt.subplots(figsize=(14.5, 8.2))
    ax.set_xlim(0, 17.4)
    ax.set_ylim(0.2, 9.6)
    ax.axis("off")
    forward_pass(ax)
    ax.plot([0.2, 17.2], [4.4, 4.4], color="#bbbbbb", linewidth=0.8)
    schedule(ax)
    handles = [
        FancyBboxPatch((0, 0), 1, 1, facecolor=THETA, edgecolor=EDGE, label="θ (base learner)"),
        FancyBboxPatch((0, 0), 1, 1, facecolor=CRL, edgecolor=EDGE, label="MetaCRL (Ξ, f_gr)"),
    ]
    ax.legend(
        handles=handles, loc="lower right", fontsize=8.5, frameon=False, bbox_to_anchor=(1.0, 0.48)
    )
    fig.savefig(OUT, dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
