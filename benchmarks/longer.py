"""Longer training: does MetaCRL's gain survive 2000 meta-iterations, or is it early speed?

MAML and ProtoNet, ConfoundedShapes 5-way 1-shot (the grid's setting: Conv4-32 at 32x32, meta-
batch 4, 15 queries per class, 3 inner steps, switch at rho 0.9), four arms at 2000
meta-iterations: base, + MetaCRL at the grid's setting (the sweep's winner with the stored
runs' ``xi_lr`` 0.4 and environments of every query), + MetaCRL at the library's defaults
(``defaults``: ``xi_lr`` 0.04, environments of 10 queries), and the oracle at rho 0.
Validation on 100 episodes every 100 iterations (the best checkpoint is tested on 600
episodes, neutral and conflict), seeds 0, 1, 2. Runs are resumable and can be split over
processes or put on a GPU:

    python benchmarks/longer.py run [--part 1/2] [--match maml] [--device cuda]
    python benchmarks/longer.py report [--update docs/results.md]
    python benchmarks/longer.py figure            # docs/figures/longer.png

The report gives test accuracy at the best checkpoint, the mean validation accuracy at fixed
iterations, and speed: per seed, the first validation at which an arm reaches the base arm's
best validation accuracy of that seed, and the first at fixed levels.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from evidence import (
    LIBRARY_DEFAULTS,
    RESULTS,
    SEEDS,
    SWEEP,
    Run,
    chosen,
    common_seeds,
    fmt,
    load_records,
    mean_ci,
    paired,
    run_missing,
    settings_text,
    test_scores,
)
from run_config import STORED_RUNS_SETTINGS

SUITE = "long"
ITERATIONS = 2000
LEARNERS = ("maml", "protonet")
ARMS = ("base", "metacrl", "defaults", "oracle")
# The arms whose seeds make a seed complete; the defaults arm came later and is shown on the
# complete seeds it has finished (its gains stay paired with the base run of the same seed).
CORE_ARMS = ("base", "metacrl", "oracle")
ARM_LABELS = {
    "base": "base (rho 0.9)", "metacrl": "+ MetaCRL (xi_lr 0.4)",
    "defaults": "+ MetaCRL (defaults)", "oracle": "oracle (rho 0)",
}  # fmt: skip
CHECKPOINTS = (100, 300, 500, 1000, 2000)  # iterations at which mean validation is tabled
LEVELS = (0.80, 0.85, 0.90)  # validation accuracies whose first reaching is tabled


def suite_runs(device: str | None = None) -> list[Run]:
    """Every run of the suite (``device`` only says where it trains; it is not compared)."""
    crl = SWEEP[chosen()]
    runs = []
    for seed in SEEDS:
        for learner in LEARNERS:
            for arm in ARMS:
                settings: dict[str, Any] = {
                    "dataset": "confounded-shapes", "learner": learner, "shots": 1,
                    "iterations": ITERATIONS,
                }  # fmt: skip
                if arm == "metacrl":
                    settings.update(crl)
                if arm == "defaults":
                    settings.update(LIBRARY_DEFAULTS)
                if arm == "oracle":
                    settings["rho"] = 0.0
                if device is not None:
                    settings["device"] = device
                name = f"shapes-1shot-{learner}-{arm}"
                runs.append(Run(SUITE, name, seed, arm in ("metacrl", "defaults"), settings))
    return runs


def load(folder: Path = RESULTS) -> dict[str, list[dict[str, Any]]]:
    """The finished runs by name; refuses a run the suite no longer trains as stored."""
    return load_records(SUITE, suite_runs(), folder)


def complete(
    runs: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The runs of the seeds every core arm of their learner has finished, and the ids left out.

    Tables and curves then compare the core arms on the same seeds (the same tasks and starts);
    the defaults arm is kept on those of them it has finished.
    """
    kept: dict[str, list[dict[str, Any]]] = {}
    left_out = []
    for learner in LEARNERS:
        seeds = set(common_seeds(runs.get(f"shapes-1shot-{learner}-{a}", []) for a in CORE_ARMS))
        for name in (f"shapes-1shot-{learner}-{arm}" for arm in ARMS):
            records = sorted(runs.get(name, []), key=lambda r: r["seed"])
            kept[name] = [r for r in records if r["seed"] in seeds]
            left_out += [f"{name}-s{r['seed']}" for r in records if r["seed"] not in seeds]
    return kept, left_out


def curve(record: dict[str, Any]) -> dict[int, float]:
    """A run's validation accuracy by iteration."""
    return {int(it): float(acc) for it, acc in record["result"]["curve"]}


def first_reaching(record: dict[str, Any], level: float) -> int | None:
    """The first validation iteration at which accuracy reaches ``level`` (None: never)."""
    return next((it for it, acc in sorted(curve(record).items()) if acc >= level), None)


def speed(runs: dict[str, list[dict[str, Any]]], learner: str, arm: str) -> list[int | None]:
    """Per seed: when ``arm`` first reaches the base arm's best validation accuracy."""
    base = {r["seed"]: r for r in runs.get(f"shapes-1shot-{learner}-base", [])}
    out: list[int | None] = []
    for record in sorted(runs.get(f"shapes-1shot-{learner}-{arm}", []), key=lambda r: r["seed"]):
        if record["seed"] in base:
            out.append(first_reaching(record, base[record["seed"]]["result"]["best_val"]))
    return out


def _iterations(values: list[int | None]) -> str:
    if not values:
        return "not measured"
    shown = ", ".join("never" if v is None else str(v) for v in values)
    reached = [v for v in values if v is not None]
    if len(reached) < len(values):
        return f"{len(reached)} of {len(values)} seeds ({shown})"
    return f"{statistics.fmean(reached):.0f} ({shown})"


def report(folder: Path = RESULTS) -> list[str]:
    runs, left_out = complete(load(folder))
    lines = [
        f"### Longer training: {ITERATIONS} meta-iterations, ConfoundedShapes 5-way 1-shot",
        "",
        "Each learner's base, metacrl and oracle arms are compared on the seeds all three have",
        "finished, the defaults arm on those of them it has finished"
        + (f"; left out until their seed is complete: {', '.join(left_out)}." if left_out else "."),
        f"Arm metacrl: MetaCRL at the grid's setting ({settings_text(STORED_RUNS_SETTINGS)});",
        f"defaults: MetaCRL at the library's defaults ({settings_text(LIBRARY_DEFAULTS)}).",
        "",
        "Test accuracy (%) of the best-validation checkpoint over 600 episodes, neutral and",
        "conflict, mean ± 95% CI over seeds; gain: the arm minus the base learner, paired by",
        "seed; best val: the best validation accuracy (100 episodes) and the iterations it",
        "came at.",
        "",
        "| learner | arm | seeds | test | conflict | gain (paired) | best val | at iteration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for learner in LEARNERS:
        base = runs.get(f"shapes-1shot-{learner}-base", [])
        base_by_seed = {r["seed"]: r for r in base}
        for arm in ARMS:
            records = sorted(runs.get(f"shapes-1shot-{learner}-{arm}", []), key=lambda r: r["seed"])
            if not records:
                lines.append(f"| {learner} | {arm} | none | " + " | ".join(["-"] * 5) + " |")
                continue
            both = [r for r in records if r["seed"] in base_by_seed]
            gain = paired(test_scores(both), test_scores([base_by_seed[r["seed"]] for r in both]))
            conflict = [
                r["result"]["conflict"]["accuracy"] for r in records if "conflict" in r["result"]
            ]
            best = [r["result"]["best_val"] for r in records]
            at = ", ".join(str(r["result"]["best_iteration"]) for r in records)
            lines.append(
                f"| {learner} | {arm} | {', '.join(str(r['seed']) for r in records)} "
                f"| {fmt(test_scores(records))} | {fmt(conflict)} "
                f"| {'-' if arm == 'base' else fmt(gain)} | {fmt(best)} | {at} |"
            )
    lines += [
        "",
        "Mean validation accuracy (%) over seeds at fixed iterations, and speed: the",
        "iteration at which each arm first reaches the base arm's best validation accuracy of",
        "the same seed (mean, per seed in brackets; 'never': not within the budget), and",
        "fixed levels.",
        "",
        "| learner | arm | "
        + " | ".join(f"val @ {c}" for c in CHECKPOINTS)
        + " | reaches base's best | "
        + " | ".join(f"reaches {100 * v:.0f}%" for v in LEVELS)
        + " |",
        "| --- | --- | " + " | ".join("---" for _ in CHECKPOINTS) + " | --- | "
        + " | ".join("---" for _ in LEVELS) + " |",
    ]  # fmt: skip
    for learner in LEARNERS:
        for arm in ARMS:
            records = runs.get(f"shapes-1shot-{learner}-{arm}", [])
            if not records:
                continue
            at = []
            for c in CHECKPOINTS:
                values = [curve(r)[c] for r in records if c in curve(r)]
                at.append(f"{100 * statistics.fmean(values):.1f}" if values else "-")
            levels = [_iterations([first_reaching(r, v) for r in records]) for v in LEVELS]
            lines.append(
                f"| {learner} | {arm} | " + " | ".join(at)
                + f" | {_iterations(speed(runs, learner, arm))} | " + " | ".join(levels) + " |"
            )  # fmt: skip
    return lines


def figure(path: Path, folder: Path = RESULTS) -> None:
    """Validation curves of every arm, mean over seeds with a 95% band, one panel a learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, _ = complete(load(folder))
    fig, axes = plt.subplots(1, len(LEARNERS), figsize=(10, 3.6), sharey=True)
    for ax, learner in zip(axes, LEARNERS, strict=True):
        for arm in ARMS:
            records = runs.get(f"shapes-1shot-{learner}-{arm}", [])
            if not records:
                continue
            its = sorted(set.intersection(*(set(curve(r)) for r in records)))
            stats = [mean_ci([curve(r)[it] for r in records]) for it in its]
            mean = [100 * m for m, _ in stats]
            ci = [0.0 if math.isnan(c) else 100 * c for _, c in stats]
            seeds = f"{len(records)} seed{'s' if len(records) > 1 else ''}"
            ax.plot(its, mean, label=f"{ARM_LABELS[arm]} ({seeds})")
            ax.fill_between(
                its, [m - c for m, c in zip(mean, ci, strict=True)],
                [m + c for m, c in zip(mean, ci, strict=True)], alpha=0.2,
            )  # fmt: skip
        ax.set_title(f"{learner}, ConfoundedShapes 5-way 1-shot")
        ax.set_xlabel("meta-iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("validation accuracy (%)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the suite's missing runs")
    run.add_argument("--part", default="1/1", help="i/n: every n-th missing run, from the i-th")
    run.add_argument("--threads", type=int, default=1, help="torch threads per process")
    run.add_argument("--match", metavar="REGEX", help="only the runs whose id matches REGEX")
    run.add_argument("--device", help="where to train (default: the library's choice)")
    rep = sub.add_parser("report", help="print the tables")
    rep.add_argument("--update", type=Path, metavar="PAGE", help="replace its longer block")
    fig = sub.add_parser("figure", help="validation curves (matplotlib)")
    fig.add_argument("path", type=Path, nargs="?", default=Path("docs/figures/longer.png"))
    args = parser.parse_args()
    if args.command == "run":
        run_missing(SUITE, suite_runs(args.device), args)
    elif args.command == "report":
        from report_block import print_or_update

        print_or_update(lambda: print("\n".join(report())), args.update, "longer")
    else:
        figure(args.path)


if __name__ == "__main__":
    sys.exit(main())
