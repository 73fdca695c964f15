"""Why can MetaCRL lose to its base learner? One-change diagnostics, on validation tasks only.

Each run meta-trains MAML or MAML + MetaCRL (built as ``metacrl train`` builds it) with one
change to MetaCRL, and records the validation curve, the best validation accuracy and what
happened inside the module: the mean gate, the fraction of open gates, and the singular values
of the factor directions ``U`` (the head sees ``U (w * U^T g)``, so a small singular value
means a direction of the features the head can no longer see). No test task is read.

    python benchmarks/diagnose.py run --setting clipart --seeds 0 1 2   # needs openclipart-png
    python benchmarks/diagnose.py run --setting shapes --seeds 0 1 2
    python benchmarks/diagnose.py report

Runs are resumable (one JSON file each in ``benchmarks/results/diagnose/``). The variants
``orthonormal*`` use ``basis="orthonormal"`` (``--basis orthonormal``): ``U`` is an orthonormal
basis of ``Xi``'s columns (QR), so the head's input keeps full rank.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from checkpoints import load_learner, score_test_tasks
from intervals import mean_ci
from run_config import STORED_RUNS_SETTINGS, differing_settings

RESULTS = Path(__file__).resolve().parent / "results" / "diagnose"
CLIPART = os.environ.get("METACRL_CLIPART", "/usr/share/openclipart/png")
SETTINGS: dict[str, dict[str, Any]] = {
    # real drawings: 3-way 1-shot at 28x28 (feature_dim 32), 400 iterations
    "clipart": {
        "dataset": "confounded-clipart", "data_root": CLIPART, "ways": 3, "queries": 5,
        "image_size": 28, "iterations": 400,
    },
    # the home benchmark: 5-way 1-shot at 32x32 (feature_dim 128), 300 iterations
    "shapes": {"dataset": "confounded-shapes", "ways": 5, "queries": 15, "iterations": 300},
    # real drawings, larger: 5-way 1-shot at 32x32 (feature_dim 128), 400 iterations
    "clipart-5way": {
        "dataset": "confounded-clipart", "data_root": CLIPART, "ways": 5, "queries": 5,
        "image_size": 32, "iterations": 400,
    },
    # real drawings without confounders (rho 0): MetaCRL must do no harm here
    "clipart-rho0": {
        "dataset": "confounded-clipart", "data_root": CLIPART, "ways": 3, "queries": 5,
        "image_size": 28, "iterations": 400, "rho": 0.0,
    },
}  # fmt: skip
VARIANTS: dict[str, dict[str, Any]] = {
    "maml": {},
    # controls (no MetaCRL): the base learner without confounders, and with a d x d map
    "maml-rho0": {"rho": 0.0},
    "capacity": {"linear_map": True},
    "metacrl-rho0": {"rho": 0.0},
    "metacrl": {},  # metacrl train's defaults (lambda_orth 0) except xi_lr 0.4
    "lambda_orth-1e-4": {"lambda_orth": 1e-4},
    "lambda_orth-1e-3": {"lambda_orth": 1e-3},
    # a smaller step on Xi (metacrl+xi_lr-0.04: metacrl train's defaults, all queries)
    "metacrl+xi_lr-0.1": {"xi_lr": 0.1},
    "metacrl+xi_lr-0.04": {"xi_lr": 0.04},
    # the gates' sparsity weight at the chosen step (default 0.1)
    "metacrl+xi_lr-0.04+lambda_gate-1": {"xi_lr": 0.04, "lambda_gate": 1.0},
    # one change each to MetaCRL with the orthogonality term on (lambda_orth 1e-3)
    "no-causal-step": {"lambda_orth": 1e-3, "crl_steps": 0},
    "xi_lr-0.04": {"lambda_orth": 1e-3, "xi_lr": 0.04},
    "orthonormal": {"lambda_orth": 1e-3, "basis": "orthonormal"},
    "orthonormal+gr_lr-0.4": {"lambda_orth": 1e-3, "basis": "orthonormal", "gr_lr": 0.4},
    "orthonormal+gr_lr-0.4+lambda_gate-1": {
        "lambda_orth": 1e-3, "basis": "orthonormal", "gr_lr": 0.4, "lambda_gate": 1.0,
    },
}  # fmt: skip


BASE_VARIANTS = ("maml", "maml-rho0", "capacity")  # the variants without MetaCRL
DEFAULTS_VARIANT = "metacrl+xi_lr-0.04"  # metacrl train's defaults (environments of all queries)
# The sweep reads seeds 0-2; the chosen defaults and MAML are then run on CONFIRM_SEEDS as well
# (every setting), and the confirmation table pairs them over all five.
SWEEP_SEEDS = (0, 1, 2)
CONFIRM_SEEDS = (3, 4)


def config_of(setting: str, variant: str, seed: int) -> Any:
    """The ``TrainConfig`` of one run, as ``run`` trains it today."""
    from metacrl.cli.config import TrainConfig

    # STORED_RUNS_SETTINGS (all queries, xi_lr 0.4): the sweep's starting point; a variant's
    # changes override them
    return TrainConfig(
        **{**SETTINGS[setting], **STORED_RUNS_SETTINGS, **VARIANTS[variant]},
        val_every=100, val_tasks=300, seed=seed,
    ).resolved()  # fmt: skip


def stale_keys(record: dict[str, Any]) -> list[str]:
    """The settings in which a stored run differs from what ``run`` would train today."""
    now = config_of(record["setting"], record["variant"], record["seed"]).as_dict()
    metacrl = record["variant"] not in BASE_VARIANTS
    return differing_settings(now, record["config"], metacrl=metacrl)


def run_one(setting: str, variant: str, seed: int) -> dict[str, Any]:
    from metacrl.cli.build import build_trainer

    cfg = config_of(setting, variant, seed)
    folder = Path("runs/diagnose") / setting / f"{variant}-s{seed}"
    trainer = build_trainer(cfg, variant not in BASE_VARIANTS, folder, progress=False)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    records = trainer.log.read()
    result: dict[str, Any] = {
        "setting": setting,
        "variant": variant,
        "seed": seed,
        "config": cfg.as_dict(),
        "changes": VARIANTS[variant],
        "val": [[r["iteration"], r["accuracy"]] for r in records if r["kind"] == "val"],
        "seconds": seconds,
        "torch": torch.__version__,
    }
    result["best_val"] = max(acc for _, acc in result["val"])
    train = [r for r in records if r["kind"] == "train" and "crl/gate_mean" in r][-50:]
    if train:
        for key in ("crl/gate_mean", "crl/gates_open", "crl/invariance", "crl/task"):
            result[key] = sum(r[key] for r in train) / len(train)
        directions = trainer.learner.regularizer.factor_directions().detach()
        result["u_singular_values"] = torch.linalg.svdvals(directions).tolist()
    return result


def command_run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    for seed in args.seeds:
        for variant in args.variants or VARIANTS:
            path = RESULTS / args.setting / f"{variant}-s{seed}.json"
            if path.exists():
                continue
            result = run_one(args.setting, variant, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1))
            print(f"{args.setting} {variant} seed {seed}: best val {100 * result['best_val']:.2f}")


CONFLICT_RESULTS = RESULTS.parent / "conflict"


def conflict_one(setting: str, variant: str, seed: int, tasks: int) -> dict[str, Any]:
    """Test a run's best checkpoint on neutral and on conflict test tasks (same episodes).

    Settings missing from an older checkpoint's configuration (``basis``, added after some
    runs were trained) are taken from the variant's changes.
    """
    path = Path("runs/diagnose") / setting / f"{variant}-s{seed}" / "best.pt"
    learner, cfg, info = load_learner(path, fill=VARIANTS[variant])  # the stored values win
    result: dict[str, Any] = {
        "setting": setting, "variant": variant, "seed": seed, "checkpoint": str(path),
        "iteration": info["iteration"], "torch": torch.__version__,
    }  # fmt: skip
    for kind in ("neutral", "conflict"):
        result[kind] = score_test_tasks(cfg, learner, kind, tasks)
    return result


def command_conflict(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    for seed in args.seeds:
        for variant in args.variants:
            path = CONFLICT_RESULTS / args.setting / f"{variant}-s{seed}.json"
            if path.exists():
                continue
            result = conflict_one(args.setting, variant, seed, args.test_tasks)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1))
            n, c = result["neutral"]["accuracy"], result["conflict"]["accuracy"]
            print(
                f"{args.setting} {variant} s{seed}: neutral {100 * n:.2f}, conflict {100 * c:.2f}"
            )


def conflict_report() -> list[str]:
    """Neutral and conflict test accuracy of each variant, and the drop, per setting."""
    lines: list[str] = []
    for setting_dir in sorted(p for p in CONFLICT_RESULTS.glob("*") if p.is_dir()):
        runs = load_runs(setting_dir.name, CONFLICT_RESULTS)
        lines += [
            f"\n#### {setting_dir.name}: neutral and conflict test tasks\n",
            "The best checkpoint of each run on the same test episodes, neutral and conflict;",
            "drop: neutral minus conflict accuracy per run (points), mean ± 95% CI over seeds.\n",
            "| variant | seeds | neutral | conflict | drop | drop per seed |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for variant in VARIANTS:
            if variant not in runs:
                continue
            by_seed = runs[variant]
            seeds = sorted(by_seed)
            neutral = [100 * by_seed[s]["neutral"]["accuracy"] for s in seeds]
            conflict = [100 * by_seed[s]["conflict"]["accuracy"] for s in seeds]
            drops = [a - b for a, b in zip(neutral, conflict, strict=True)]
            lines.append(
                f"| {variant} | {', '.join(map(str, seeds))} | {statistics.fmean(neutral):.2f} "
                f"| {statistics.fmean(conflict):.2f} | {_diff_text(drops)} "
                f"| {', '.join(f'{d:.1f}' for d in drops)} |"
            )
    return lines


def load_runs(setting: str, folder: Path = RESULTS) -> dict[str, dict[int, dict[str, Any]]]:
    """The finished runs of a setting (in ``folder``): variant -> seed -> result."""
    runs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted((folder / setting).glob("*.json")):
        r = json.loads(path.read_text())
        if "config" in r and (keys := stale_keys(r)):
            raise SystemExit(
                f"{path} was trained with other settings than {r['variant']!r} has today "
                f"({', '.join(keys)}): delete it and run it again"
            )
        runs[r["variant"]][r["seed"]] = r
    return runs


def paired_gain(
    runs: dict[str, dict[int, dict[str, Any]]], variant: str
) -> tuple[list[float], float, float]:
    """Best validation accuracy of ``variant`` minus MAML's per seed (points), mean, 95% CI."""
    base, arm = runs.get("maml", {}), runs.get(variant, {})
    gains = [100 * (arm[s]["best_val"] - base[s]["best_val"]) for s in sorted(arm) if s in base]
    return gains, *mean_ci(gains)


def verdict(cells: dict[str, tuple[float, float]]) -> str:
    """The robust-defaults bar over the settings a variant has 3 seeds on.

    Met: never worse than MAML beyond the paired 95% interval on any setting, and better (the
    interval above 0) on every confounded one (all settings except the rho-0 ones).
    """
    worse = [k for k, (m, ci) in cells.items() if m + ci < 0]
    confounded = {k: v for k, v in cells.items() if SETTINGS[k].get("rho", 0.9) > 0}
    not_better = [k for k, (m, ci) in confounded.items() if not m - ci > 0]
    if worse:
        return "not met: worse on " + ", ".join(worse)
    if not_better:
        return "no harm; not better on " + ", ".join(not_better)
    return "met"


def _best_vals(runs: dict[str, dict[int, dict[str, Any]]], variant: str) -> dict[int, float]:
    return {seed: 100 * r["best_val"] for seed, r in runs.get(variant, {}).items()}


def _diff_text(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    mean, ci = mean_ci(values)
    return f"{mean:+.1f} ± {ci:.1f}"


def controls_report(all_runs: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> list[str]:
    """The controls on validation tasks, paired by seed: what confounding costs MAML, MetaCRL's
    gain with and without confounders (their difference: the de-confounding share), and the
    capacity control (MAML with a meta-learned d x d map before the head).

    ``all_runs`` maps a setting to its finished runs (:func:`load_runs`); a setting missing from
    it has none. One row per confounded setting and MetaCRL variant (the sweep's start,
    ``metacrl``, and the defaults) that has runs."""
    lines = [
        "| setting | MetaCRL | seeds | rho 0 − rho 0.9 (MAML) | gain with confounders "
        "| gain without | de-confounding share | capacity − MAML | MetaCRL − capacity |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting, variant in [(s, v) for s in SETTINGS for v in ("metacrl", DEFAULTS_VARIANT)]:
        runs = all_runs.get(setting, {})
        if SETTINGS[setting].get("rho", 0.9) == 0 or variant not in runs:
            continue
        rho0_runs, rho0_base, rho0_crl = runs, "maml-rho0", f"{variant}-rho0"
        if f"{setting}-rho0" in SETTINGS:  # its rho-0 twin is a setting of its own
            rho0_runs, rho0_base, rho0_crl = all_runs.get(f"{setting}-rho0", {}), "maml", variant
        arms = {
            "maml": _best_vals(runs, "maml"),
            "metacrl": _best_vals(runs, variant),
            "capacity": _best_vals(runs, "capacity"),
            "maml-rho0": _best_vals(rho0_runs, rho0_base),
            "metacrl-rho0": _best_vals(rho0_runs, rho0_crl),
        }
        seeds = sorted(set.union(*(set(v) for v in arms.values())))
        if not seeds:
            continue

        def diff(a: str, b: str, arms: Any = arms) -> list[float]:
            both = sorted(set(arms[a]) & set(arms[b]))
            return [arms[a][s] - arms[b][s] for s in both]

        def share(arms: Any = arms) -> list[float]:
            both = sorted(set.intersection(*(set(arms[k]) for k in arms if k != "capacity")))
            return [
                (arms["metacrl"][s] - arms["maml"][s])
                - (arms["metacrl-rho0"][s] - arms["maml-rho0"][s])
                for s in both
            ]

        lines.append(
            f"| {setting} | {variant} | {', '.join(map(str, seeds))} "
            f"| {_diff_text(diff('maml-rho0', 'maml'))} "
            f"| {_diff_text(diff('metacrl', 'maml'))} "
            f"| {_diff_text(diff('metacrl-rho0', 'maml-rho0'))} | {_diff_text(share())} "
            f"| {_diff_text(diff('capacity', 'maml'))} "
            f"| {_diff_text(diff('metacrl', 'capacity'))} |"
        )
    return lines


def sweep_seeds_only(
    runs: dict[str, dict[int, dict[str, Any]]],
) -> dict[str, dict[int, dict[str, Any]]]:
    """A setting's runs (:func:`load_runs`) restricted to the sweep's seeds."""
    return {
        v: {s: r for s, r in by_seed.items() if s in SWEEP_SEEDS} for v, by_seed in runs.items()
    }


def confirmation_report(all_runs: dict[str, dict[str, dict[int, dict[str, Any]]]]) -> list[str]:
    """The chosen defaults against MAML on every seed run (the sweep's and the confirmation's)."""
    seeds_wanted = (*SWEEP_SEEDS, *CONFIRM_SEEDS)
    lines = [
        "| setting | seeds | MAML | defaults | − MAML (per seed) | paired mean ± 95% CI |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    cells: dict[str, tuple[float, float]] = {}
    for setting, runs in all_runs.items():
        base, arm = ({s: r for s, r in runs.get(v, {}).items() if s in seeds_wanted}
                     for v in ("maml", DEFAULTS_VARIANT))  # fmt: skip
        seeds = [s for s in seeds_wanted if s in base and s in arm]
        if not seeds:
            continue
        # paired over exactly the seeds the row shows, not any other seed run later
        gains, mean, ci = paired_gain({"maml": base, DEFAULTS_VARIANT: arm}, DEFAULTS_VARIANT)
        if len(seeds) == len(seeds_wanted):
            cells[setting] = (mean, ci)
        lines.append(
            f"| {setting} | {', '.join(map(str, seeds))} "
            f"| {statistics.fmean(100 * base[s]['best_val'] for s in seeds):.2f} "
            f"| {statistics.fmean(100 * arm[s]['best_val'] for s in seeds):.2f} "
            f"| {', '.join(f'{g:+.1f}' for g in gains)} "
            f"| {'-' if math.isnan(ci) else f'{mean:+.1f} ± {ci:.1f}'} |"
        )
    n = len(seeds_wanted)
    if not cells:
        lines += ["", f"The bar over all {n} seeds: not measured yet (no setting has them all)."]
    else:
        partial = "" if len(cells) == len(all_runs) else f" (only {', '.join(cells)} so far)"
        lines += ["", f"The bar over all {n} seeds: {verdict(cells)}{partial}."]
    return lines


def command_report(args: argparse.Namespace) -> None:
    settings = [s for s in SETTINGS if (RESULTS / s).is_dir()]
    print("#### Each variant against MAML, by setting\n")
    print("Best validation accuracy minus MAML's, paired by seed (points), mean ± 95% CI over")
    print("seeds 0, 1, 2 ('-': fewer run). The bar: never worse than MAML beyond the interval on")
    print("any setting, and better (the interval above 0) on the confounded ones.\n")
    print("| variant | " + " | ".join(settings) + " | bar |")
    print("| --- | " + " | ".join("---" for _ in settings) + " | --- |")
    all_runs = {s: load_runs(s) for s in settings}
    sweep_runs = {s: sweep_seeds_only(runs) for s, runs in all_runs.items()}
    for variant in VARIANTS:
        if variant in BASE_VARIANTS or variant == "metacrl-rho0":  # controls: tabled below
            continue
        cells: dict[str, tuple[float, float]] = {}
        texts = []
        for setting in settings:
            gains, mean, ci = paired_gain(sweep_runs[setting], variant)
            if len(gains) >= 3:
                cells[setting] = (mean, ci)
                texts.append(f"{mean:+.1f} ± {ci:.1f}")
            else:
                texts.append("-")
        if not cells:
            continue
        complete = len(cells) == len(settings)
        bar = verdict(cells) + ("" if complete else " (so far)")
        print(f"| {variant} | " + " | ".join(texts) + f" | {bar} |")
    print(f"\n#### The chosen defaults on seeds {', '.join(map(str, CONFIRM_SEEDS))} as well\n")
    print(f"`{DEFAULTS_VARIANT}` and MAML, run again on seeds "
          f"{', '.join(map(str, CONFIRM_SEEDS))} in every setting")  # fmt: skip
    print("after the choice: best validation accuracy (%), gains paired by seed.\n")
    print("\n".join(confirmation_report(all_runs)))
    print("\n#### Controls\n")
    print("Paired by seed, best validation accuracy points. Gain with confounders: MetaCRL minus")
    print("MAML at rho 0.9; gain without: both trained at rho 0; de-confounding share: the first")
    print("minus the second. Capacity: MAML with a meta-learned d x d map (`--linear-map`).\n")
    print("\n".join(controls_report(sweep_runs)))
    print("\n".join(conflict_report()))
    for setting in settings:
        runs = all_runs[setting]
        print(f"\n#### {setting}: every run\n")
        print("Best validation accuracy (%, 300 episodes), paired against MAML by seed; the")
        print("mean gate and the range of `U`'s singular values at the end of training.\n")
        print(
            "| variant | seeds | best val | − MAML (per seed) | paired mean ± 95% CI "
            "| mean gate | U's singular values |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for variant in VARIANTS:
            by_seed = runs.get(variant)
            if not by_seed:
                continue
            seeds = sorted(by_seed)
            vals = [100 * by_seed[s]["best_val"] for s in seeds]
            gains, mean, ci = paired_gain(runs, variant)
            paired = "-" if variant == "maml" or math.isnan(ci) else f"{mean:+.1f} ± {ci:.1f}"
            gate = [by_seed[s].get("crl/gate_mean") for s in seeds]
            sv = [by_seed[s].get("u_singular_values") for s in seeds]
            gate_text = "-" if None in gate else f"{sum(gate) / len(gate):.3f}"  # type: ignore[arg-type]
            sv_text = (
                "-"
                if None in sv
                else f"{min(min(v) for v in sv):.2f} to {max(max(v) for v in sv):.2f}"  # type: ignore[union-attr]
            )
            print(
                f"| {variant} | {', '.join(map(str, seeds))} | {sum(vals) / len(vals):.2f} | "
                f"{', '.join(f'{g:+.1f}' for g in gains) or '-'} | {paired} | {gate_text} "
                f"| {sv_text} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--variants", nargs="*", choices=sorted(VARIANTS))
    conflict = sub.add_parser(
        "conflict", help="test best checkpoints on neutral and conflict tasks"
    )
    conflict.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    conflict.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    conflict.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["maml"])
    conflict.add_argument("--test-tasks", type=int, default=600)
    report = sub.add_parser("report")
    report.add_argument("--update", type=Path, help="write the tables into this page's block")
    args = parser.parse_args()
    if args.command == "run":
        command_run(args)
        return
    if args.command == "conflict":
        command_conflict(args)
        return
    from report_block import print_or_update

    print_or_update(lambda: command_report(args), args.update, "diagnose")


if __name__ == "__main__":
    main()
