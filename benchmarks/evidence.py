"""Accuracy evidence: the validation sweep, the main grid and the ablations, with their tables.

Each run meta-trains one learner (built by ``metacrl.cli.build.build_trainer``, as ``metacrl
train`` does) and stores its result as JSON in ``benchmarks/results/<suite>/<run>.json``.
Finished runs are skipped, so a suite can be stopped and continued, split across processes
(``--part i/n``), and re-reported at any time:

    python benchmarks/evidence.py run sweep  --part 1/2     # MetaCRL settings, validation split
    python benchmarks/evidence.py run grid   --arms base oracle
    python benchmarks/evidence.py run grid   --arms metacrl
    python benchmarks/evidence.py run grid   --arms capacity metacrl-rho0   # the controls
    python benchmarks/evidence.py run grid   --arms defaults defaults-rho0  # library defaults
    python benchmarks/evidence.py run ablation            # one change to the metacrl arm
    python benchmarks/evidence.py run ablation-defaults   # one change to the defaults arm
    python benchmarks/evidence.py report --update docs/results.md
    python benchmarks/evidence.py figure    # docs/figures/evidence.png

Setting of every run unless the suite says otherwise (CPU-sized): 300 meta-iterations, meta-batch
4, 5-way, 15 queries per class, 3 inner steps, validation every 100 iterations on 100 episodes
(the best checkpoint is kept), test on 600 episodes, seeds 0, 1, 2. The sweep reads only the
validation split. Every ConfoundedShapes run is also tested on 600 conflict episodes (the tied
nuisance follows one mapping in the support set and another in the query set), which measures
how much the learner relies on the nuisance.

The grid's arms: ``base`` (rho 0.9), ``metacrl`` (+ MetaCRL, rho 0.9), ``oracle`` (base, rho 0),
and, for the 1-shot rows, the controls ``capacity`` (base with a meta-learned d x d map before
the head, ``--linear-map``) and ``metacrl-rho0`` (+ MetaCRL trained without confounders);
``metacrl-fast`` (the metacrl arm with environments of 10 queries); ``defaults`` and
``defaults-rho0`` (+ MetaCRL at the library's own defaults, which the other arms depart from
in ``STORED_RUNS_SETTINGS``, with and without confounders).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from metacrl.regularizer import DEFAULTS

from checkpoints import score_test_tasks
from intervals import mean_ci
from run_config import STORED_RUNS_SETTINGS, differing_settings

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path("runs/evidence")
SEEDS = (0, 1, 2)
# STORED_RUNS_SETTINGS: environments of all queries (the metacrl-fast arm measures 10) and
# xi_lr 0.4, as the stored runs were trained
COMMON: dict[str, Any] = {
    "iterations": 300, "meta_batch": 4, "ways": 5, "queries": 15, "inner_steps": 3,
    "val_every": 100, "val_tasks": 100, "test_tasks": 600, **STORED_RUNS_SETTINGS,
}  # fmt: skip


@dataclass(frozen=True)
class Run:
    suite: str
    name: str
    seed: int
    metacrl: bool
    settings: dict[str, Any] = field(hash=False)

    @property
    def id(self) -> str:
        return f"{self.name}-s{self.seed}"

    @property
    def path(self) -> Path:
        return RESULTS / self.suite / f"{self.id}.json"


# ---------------------------------------------------------------------------- suites
SWEEP = {  # name -> MetaCRL settings; MAML, ConfoundedShapes 5-way 1-shot, validation only
    "alt-irm1": {"mode": "alternating", "invariance": "irm", "lambda_inv": 1.0},
    "alt-irm10": {"mode": "alternating", "invariance": "irm", "lambda_inv": 10.0},
    "alt-vrex1": {"mode": "alternating", "invariance": "vrex", "lambda_inv": 1.0},
    "alt-vrex10": {"mode": "alternating", "invariance": "vrex", "lambda_inv": 10.0},
    "joint-irm1": {"mode": "joint", "invariance": "irm", "lambda_inv": 1.0},
    "joint-irm10": {"mode": "joint", "invariance": "irm", "lambda_inv": 10.0},
    "joint-vrex1": {"mode": "joint", "invariance": "vrex", "lambda_inv": 1.0},
    "joint-vrex10": {"mode": "joint", "invariance": "vrex", "lambda_inv": 10.0},
}
SWEEP_SEEDS = (0, 1)
# The sweep ran with the orthogonality term on (lambda_orth 1e-3, the default then); the sweep
# across settings (benchmarks/diagnose.py) later turned it off. Only the sweep's runs use it.
SWEEP_FIXED = {"lambda_orth": 1e-3}


def chosen() -> str:
    """The sweep's winner: the best mean validation accuracy over the sweep's seeds.

    The MetaCRL arm of the grid and the "full" method of the ablations use its settings, so
    they can only run once the whole sweep is done; no test score enters the choice.
    """
    means = {}
    for name in SWEEP:
        paths = [RESULTS / "sweep" / f"{name}-s{s}.json" for s in SWEEP_SEEDS]
        if not all(p.exists() for p in paths):
            raise SystemExit(f"the sweep is not finished ({name} missing): run it first")
        means[name] = statistics.fmean(
            json.loads(p.read_text())["result"]["best_val"] for p in paths
        )
    return max(means, key=lambda n: means[n])


ABLATIONS = {  # MAML + MetaCRL, ConfoundedShapes 5-way 1-shot: one change to the full method
    "full": {},
    "no-causal-step": {"crl_steps": 0},  # Xi and f_gr stay at their initialisation
    "no-invariance": {"lambda_inv": 0.0},
    "no-replay": {"replay": 0},
    "no-gates": {"gates": False},
    "orthogonality": {"lambda_orth": 1e-3},  # the term off by default; 1e-3 turns it on
    "other-penalty": {},  # V-REx if the full method uses IRMv1 and the reverse, same weight
    "other-schedule": {},  # joint if the full method alternates and the reverse
}
# Two full methods: the sweep's winner at the stored runs' pins (suite "ablation", its full
# method the grid's metacrl arm) and the library's defaults (suite "ablation-defaults", its
# full method the grid's defaults arm).
ABLATION_FULL_ARM = {"ablation": "metacrl", "ablation-defaults": "defaults"}


def ablation_full(suite: str) -> dict[str, Any]:
    """The full method's MetaCRL settings of an ablation suite, as its grid arm trains them."""
    if suite == "ablation":
        return dict(SWEEP[chosen()])
    return {"mode": DEFAULTS.mode, "invariance": DEFAULTS.invariance,
            "lambda_inv": DEFAULTS.lambda_inv, **LIBRARY_DEFAULTS}  # fmt: skip


def ablations(suite: str) -> dict[str, dict[str, Any]]:
    """The ablation variants as full MetaCRL settings: the full method with one change."""
    full = ablation_full(suite)
    other = {
        "other-penalty": {"invariance": "vrex" if full["invariance"] == "irm" else "irm"},
        "other-schedule": {"mode": "joint" if full["mode"] == "alternating" else "alternating"},
    }
    return {name: {**full, **change, **other.get(name, {})} for name, change in ABLATIONS.items()}


LEARNERS = ("maml", "anil", "metasgd", "protonet")
# Sinusoid at two budgets: at COMMON's 300 iterations neither arm has learned much yet (test MSE
# about 3, against 4.25 for predicting 0), so the table at 2000 iterations is the informative one.
SINUSOID_BUDGETS = {"sinusoid": 300, "sinusoid2k": 2000}


ARMS = ("base", "metacrl", "oracle", "capacity", "metacrl-rho0", "metacrl-fast", "defaults",
        "defaults-rho0")  # fmt: skip
CONTROLS = ("capacity", "metacrl-rho0")  # 1-shot ConfoundedShapes rows only
# The cheaper causal step: environments of FAST_ENV_QUERIES query examples a task (2 a class at
# 5-way) instead of all 75; 1-shot ConfoundedShapes rows only, compared with the metacrl arm.
FAST_ENV_QUERIES = 10
# The library's own MetaCRL defaults, without the settings the stored runs pin: what `metacrl
# train` and `wrap()` run. 1-shot ConfoundedShapes rows only, with and without confounders.
LIBRARY_DEFAULTS: dict[str, Any] = {k: getattr(DEFAULTS, k) for k in STORED_RUNS_SETTINGS}
DEFAULTS_ARMS = ("defaults", "defaults-rho0")
ONE_SHOT_ONLY = (*CONTROLS, "metacrl-fast", *DEFAULTS_ARMS)


def suite_runs(suite: str, arms: tuple[str, ...]) -> list[Run]:
    runs: list[Run] = []
    if suite == "sweep":
        base = {"dataset": "confounded-shapes", "learner": "maml", "shots": 1}
        for name, crl in SWEEP.items():
            runs += [Run(suite, name, s, True, {**base, **SWEEP_FIXED, **crl}) for s in SWEEP_SEEDS]
    elif suite == "grid":
        crl_settings = (
            SWEEP[chosen()] if {"metacrl", "metacrl-rho0", "metacrl-fast"} & set(arms) else {}
        )
        for shots in (1, 5):
            for learner in LEARNERS:
                data = {"dataset": "confounded-shapes", "learner": learner, "shots": shots}
                key = f"shapes-{shots}shot-{learner}"
                arms_here = {
                    "base": (False, {}),
                    "metacrl": (True, crl_settings),
                    "oracle": (False, {"rho": 0.0}),
                    "capacity": (False, {"linear_map": True}),
                    "metacrl-rho0": (True, {**crl_settings, "rho": 0.0}),
                    "metacrl-fast": (True, {**crl_settings, "env_queries": FAST_ENV_QUERIES}),
                    "defaults": (True, LIBRARY_DEFAULTS),
                    "defaults-rho0": (True, {**LIBRARY_DEFAULTS, "rho": 0.0}),
                }
                for arm in arms:
                    if arm in ONE_SHOT_ONLY and shots != 1:
                        continue
                    crl, extra = arms_here[arm]
                    runs += [Run(suite, f"{key}-{arm}", s, crl, {**data, **extra}) for s in SEEDS]
        for prefix, iterations in SINUSOID_BUDGETS.items():
            for shots, learner in itertools.product((5, 10), ("maml", "anil", "metasgd")):
                data = {"dataset": "sinusoid", "learner": learner, "shots": shots, "queries": 10,
                        "iterations": iterations}  # fmt: skip
                key = f"{prefix}-{shots}shot-{learner}"
                for arm in arms:
                    if arm == "oracle" or arm in ONE_SHOT_ONLY:
                        continue
                    extra = crl_settings if arm == "metacrl" else {}
                    runs += [
                        Run(suite, f"{key}-{arm}", s, arm == "metacrl", {**data, **extra})
                        for s in SEEDS
                    ]
    elif suite in ABLATION_FULL_ARM:
        base = {"dataset": "confounded-shapes", "learner": "maml", "shots": 1}
        for name, crl in ablations(suite).items():
            if name == "full":  # the grid's full-method arm (ABLATION_FULL_ARM): same seeds
                continue
            runs += [Run(suite, name, s, True, {**base, **crl}) for s in SEEDS]
    else:
        raise SystemExit(f"unknown suite {suite!r}: sweep, grid, {' or '.join(ABLATION_FULL_ARM)}")
    return sorted(runs, key=_priority)


_ORDER = ("shapes-1shot-maml", "shapes-1shot-protonet", "shapes-1shot-anil", "sinusoid-5shot",
          "sinusoid-10shot", "shapes-1shot-metasgd", "shapes-5shot-maml", "shapes-5shot-protonet",
          "shapes-5shot-anil", "shapes-5shot-metasgd", "sinusoid2k-5shot",
          "sinusoid2k-10shot")  # fmt: skip


def _priority(run: Run) -> tuple[int, int]:
    """Seed by seed (so partial results compare like with like), cheap and central runs first."""
    rank = next((i for i, p in enumerate(_ORDER) if run.name.startswith(p)), len(_ORDER))
    return run.seed, rank


# ---------------------------------------------------------------------------- running
def config_of(run: Run) -> Any:
    """The ``TrainConfig`` of a run, as :func:`execute` trains it today."""
    from metacrl.cli.config import TrainConfig

    settings = {**COMMON, **run.settings, "seed": run.seed, "out": str(RUNS)}
    if run.settings.get("dataset") == "sinusoid":
        settings["ways"] = 1
    return TrainConfig(**settings).resolved()


def execute(run: Run) -> dict[str, Any]:
    from metacrl.cli.build import build_trainer

    cfg = config_of(run)
    folder = RUNS / run.suite / run.id
    trainer = build_trainer(cfg, run.metacrl, folder, progress=False)
    trainer.resume()
    start = time.perf_counter()
    trainer.train()
    if run.suite == "sweep":  # the sweep never looks at test tasks
        result = {
            "best_val": trainer.best[0] if trainer.best else None,
            "best_iteration": trainer.best[1] if trainer.best else None,
            "train_seconds": trainer.train_seconds,
        }
    else:
        result = trainer.test().as_dict()  # leaves the best checkpoint in trainer.learner
        if cfg.dataset == "confounded-shapes":
            result["conflict"] = score_test_tasks(cfg, trainer.learner, "conflict")
    curve = [r for r in trainer.log.read() if r["kind"] == "val"]  # the learning curve
    result["curve"] = [[r["iteration"], r.get("accuracy", r.get("mse"))] for r in curve]
    return {
        "suite": run.suite,
        "name": run.name,
        "seed": run.seed,
        "metacrl": run.metacrl,
        "config": cfg.as_dict(),
        "result": result,
        "wall_seconds": time.perf_counter() - start,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def command_run(args: argparse.Namespace) -> None:
    run_missing(args.suite, suite_runs(args.suite, tuple(args.arms)), args)


def run_missing(suite: str, runs: list[Run], args: argparse.Namespace) -> None:
    """Run the runs without a result file, this process's share (``--part``, ``--match``)."""
    torch.set_num_threads(args.threads)
    index, parts = (int(x) for x in args.part.split("/"))
    if args.match:
        runs = [r for r in runs if re.search(args.match, r.id)]
    missing = [r for r in runs if not r.path.exists()]  # split what is left, evenly
    todo = [r for i, r in enumerate(missing) if i % parts == index - 1]
    print(f"{suite}: {len(todo)} runs here, {len(missing)} of {len(runs)} missing", flush=True)
    for i, run in enumerate(todo, 1):
        if run.path.exists():  # another process (say, a --match run) has finished it since
            print(f"[{i}/{len(todo)}] {run.id}: done elsewhere, skipped", flush=True)
            continue
        start = time.perf_counter()
        record = execute(run)
        run.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = run.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(run.path)
        test = record["result"].get("test", {})
        shown = " ".join(f"{k} {v:.4f}" for k, v in test.items() if k in ("accuracy", "mse"))
        print(
            f"[{i}/{len(todo)}] {run.id}: val {record['result']['best_val']:.4f} {shown} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


# ---------------------------------------------------------------------------- reporting
def load(suite: str, folder: Path = RESULTS) -> dict[str, list[dict[str, Any]]]:
    """The finished runs of a suite by name; refuses a run its definition no longer trains."""
    return load_records(suite, suite_runs(suite, ARMS), folder)


def load_records(
    suite: str, definitions: list[Run], folder: Path = RESULTS
) -> dict[str, list[dict[str, Any]]]:
    """The JSON records in ``folder/suite`` by run name, each checked against its definition.

    Raises ``SystemExit`` for a record no run of ``definitions`` has, or one whose stored
    configuration differs from what its definition trains today (:func:`differing_settings`).
    """
    runs = {run.id: run for run in definitions}
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((folder / suite).glob("*.json")):
        record = json.loads(path.read_text())
        run = runs.get(f"{record['name']}-s{record['seed']}")
        if run is None:
            raise SystemExit(f"{path}: no run of the {suite} suite has this name and seed")
        keys = differing_settings(config_of(run).as_dict(), record["config"], metacrl=run.metacrl)
        if keys:
            raise SystemExit(
                f"{path} was trained with other settings than {run.name!r} has today "
                f"({', '.join(keys)}): delete it and run it again"
            )
        by_name[record["name"]].append(record)
    return by_name


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "not measured"
    mean, ci = mean_ci(values)
    n = len(values)
    if math.isnan(ci):
        return f"{scale * mean:.{digits}f} (1 seed)"
    return f"{scale * mean:.{digits}f} ± {scale * ci:.{digits}f} ({n} seeds)"


def test_scores(records: list[dict[str, Any]]) -> list[float]:
    out = []
    for r in records:
        test = r["result"]["test"]
        out.append(test["mse"] if "mse" in test else test["accuracy"])
    return out


def paired_differences(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    """Test score of ``a`` minus that of ``b`` for each seed both have."""
    by_seed = {r["seed"]: r for r in b}
    return [
        test_scores([r])[0] - test_scores([by_seed[r["seed"]]])[0]
        for r in sorted(a, key=lambda r: r["seed"])
        if r["seed"] in by_seed
    ]


def report_sweep() -> list[str]:
    rows = []
    for name, records in load("sweep").items():
        vals = [r["result"]["best_val"] for r in records]
        rows.append((statistics.fmean(vals), name, vals))
    lines = [
        "### Sweep of MetaCRL settings (validation split only)",
        "",
        "MAML + MetaCRL, ConfoundedShapes 5-way 1-shot (switch, rho 0.9); score: best validation"
        f" accuracy (100 episodes), seeds {', '.join(map(str, SWEEP_SEEDS))}.",
        "",
        "| setting | MetaCRL settings | validation accuracy (%) |",
        "| --- | --- | --- |",
    ]
    for _, name, vals in sorted(rows, reverse=True):
        lines.append(f"| {name} | {SWEEP.get(name, {})} | {fmt(vals)} |")
    base = load("grid").get("shapes-1shot-maml-base", [])
    base_vals = [r["result"]["best_val"] for r in base if r["seed"] in SWEEP_SEEDS]
    lines.append(f"| MAML without MetaCRL | (the grid's base arm) | {fmt(base_vals)} |")
    return lines


def report_grid() -> list[str]:
    data = load("grid")
    lines = [
        "### ConfoundedShapes (switch, rho 0.9), 5-way, Conv4-32 at 32x32",
        "",
        "Test accuracy (%) over 600 episodes, mean ± 95% CI over seeds. The oracle is the base",
        "learner trained without confounders (rho 0). Gain: + MetaCRL minus base, paired by seed",
        "(the runs of a seed share the initialisation and the task stream). Recovered: the",
        "fraction of the base learner's drop from the oracle that MetaCRL wins back. Target: the",
        "paired gain's lower 95% bound is at least half the drop (gain > 0 only: the bound is",
        "above 0 but below half the drop).",
        "",
        "| shots | learner | base | + MetaCRL | oracle (rho 0) | gain (paired) | recovered "
        "| target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for shots in (1, 5):
        for learner in LEARNERS:
            key = f"shapes-{shots}shot-{learner}"
            base = test_scores(data.get(f"{key}-base", []))
            crl = test_scores(data.get(f"{key}-metacrl", []))
            oracle = test_scores(data.get(f"{key}-oracle", []))
            gains = paired_differences(data.get(f"{key}-metacrl", []), data.get(f"{key}-base", []))
            recovered = target = "not measured"
            if base and crl and oracle:
                drop = statistics.fmean(oracle) - statistics.fmean(base)
                gain = statistics.fmean(crl) - statistics.fmean(base)
                recovered = f"{100 * gain / drop:.0f}%" if drop > 0 else "no drop"
                mean, ci = mean_ci(gains)  # ci is NaN below two seeds
                if drop <= 0:
                    target = "no drop"
                elif math.isnan(ci):
                    target = "too few seeds"
                else:
                    low = mean - ci
                    target = (
                        "met" if low >= drop / 2 else ("gain > 0 only" if low > 0 else "not met")
                    )
            lines.append(
                f"| {shots} | {learner} | {fmt(base)} | {fmt(crl)} | {fmt(oracle)} "
                f"| {fmt(gains)} | {recovered} | {target} |"
            )
    for prefix, iterations in SINUSOID_BUDGETS.items():
        lines += [
            "",
            f"### Sinusoid regression, MLP 1-40-40-1, {iterations} meta-iterations",
            "",
            "Test MSE over 600 tasks (lower is better), mean ± 95% CI over seeds; difference: the",
            "MetaCRL arm minus base, paired by seed; MetaCRL is better or worse where its 95% CI",
            "excludes 0.",
            "",
            "| shots | learner | base | + MetaCRL | difference (paired) | MetaCRL |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for shots, learner in itertools.product((5, 10), ("maml", "anil", "metasgd")):
            key = f"{prefix}-{shots}shot-{learner}"
            base = test_scores(data.get(f"{key}-base", []))
            crl = test_scores(data.get(f"{key}-metacrl", []))
            diff = paired_differences(data.get(f"{key}-metacrl", []), data.get(f"{key}-base", []))
            verdict = "not measured" if not diff else "too few seeds"
            if len(diff) > 1:
                mean, ci = mean_ci(diff)
                verdict = (
                    "better" if mean + ci < 0 else "worse" if mean - ci > 0 else "no difference"
                )
            lines.append(
                f"| {shots} | {learner} | {fmt(base, 1.0, 3)} | {fmt(crl, 1.0, 3)} "
                f"| {fmt(diff, 1.0, 3)} | {verdict} |"
            )
    return lines


def conflict_scores(records: list[dict[str, Any]]) -> list[float]:
    return [r["result"]["conflict"]["accuracy"] for r in records if "conflict" in r["result"]]


def paired(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def common_seeds(groups: Iterable[list[dict[str, Any]]]) -> list[int]:
    """The seeds every group of records has, in order: the runs an arms' comparison pairs."""
    return sorted(set.intersection(*({r["seed"] for r in records} for records in groups)))


def by_seed(records: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    index = {r["seed"]: r for r in records}
    return [index[s] for s in seeds]


def row_scores(
    data: dict[str, list[dict[str, Any]]], key: str, arms: Iterable[str]
) -> tuple[list[int], dict[str, list[float]]]:
    """The seeds every arm of a row has, and each arm's test scores on them, in seed order."""
    records = {arm: data.get(f"{key}-{arm}", []) for arm in arms}
    seeds = common_seeds(records.values())
    return seeds, {arm: test_scores(by_seed(v, seeds)) for arm, v in records.items()}


def report_controls() -> list[str]:
    data = load("grid")
    lines = [
        "### Controls: ConfoundedShapes 5-way 1-shot",
        "",
        "Paired by seed, test accuracy points, mean ± 95% CI over the seeds every arm has.",
        "Gain with confounders: + MetaCRL minus base (both rho 0.9). Gain without: + MetaCRL",
        "minus base, both trained at rho 0 (the oracle is the base arm at rho 0). De-confounding",
        "share: the first minus the second. Capacity: the base learner with a meta-learned",
        "d x d map before the head (`--linear-map`).",
        "",
        "| learner | seeds | gain with confounders | gain without | de-confounding share "
        "| capacity − base | + MetaCRL − capacity |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for learner in LEARNERS:
        seeds, score = row_scores(
            data, f"shapes-1shot-{learner}", ("base", "metacrl", "oracle", *CONTROLS)
        )
        if not seeds:
            lines.append(f"| {learner} | none | " + " | ".join(["not measured"] * 5) + " |")
            continue
        with_c = paired(score["metacrl"], score["base"])
        without = paired(score["metacrl-rho0"], score["oracle"])
        lines.append(
            f"| {learner} | {', '.join(map(str, seeds))} | {fmt(with_c)} | {fmt(without)} "
            f"| {fmt(paired(with_c, without))} | {fmt(paired(score['capacity'], score['base']))} "
            f"| {fmt(paired(score['metacrl'], score['capacity']))} |"
        )
    lines += [
        "",
        "### Reliance on the nuisance: neutral and conflict test tasks",
        "",
        "The same 600 test episodes, neutral (every nuisance independent of the label) and",
        "conflict (one nuisance follows one label mapping in the support set and another in the",
        "query set, rho 1). Drop: neutral minus conflict accuracy, per run, mean ± 95% CI.",
        "",
        "| learner | arm | neutral | conflict | drop |",
        "| --- | --- | --- | --- | --- |",
    ]
    for learner in LEARNERS:
        for arm in ("base", "metacrl", "oracle", "capacity"):
            records = [r for r in data.get(f"shapes-1shot-{learner}-{arm}", [])]
            records = [r for r in records if "conflict" in r["result"]]
            if not records:
                continue
            neutral, conflict = test_scores(records), conflict_scores(records)
            lines.append(
                f"| {learner} | {arm} | {fmt(neutral)} | {fmt(conflict)} "
                f"| {fmt(paired(neutral, conflict))} |"
            )
    return lines


def report_fast() -> list[str]:
    """The grid's 1-shot MetaCRL arm against the same arm with the cheaper causal step."""
    data = load("grid")
    lines = [
        f"### Environments of {FAST_ENV_QUERIES} queries: ConfoundedShapes 5-way 1-shot",
        "",
        f"The MetaCRL arm with `env_queries={FAST_ENV_QUERIES}` (the causal step sees"
        f" {FAST_ENV_QUERIES} of each task's",
        "75 query examples, evenly spread over the classes; the library's default) against the",
        "grid's arm, which sees all of them. Test accuracy (%) over 600 episodes; gains paired",
        "by seed with the base learner, mean ± 95% CI over the seeds all three arms have.",
        "",
        f"| learner | seeds | base | + MetaCRL | + MetaCRL, {FAST_ENV_QUERIES} queries "
        f"| gain | gain, {FAST_ENV_QUERIES} queries | {FAST_ENV_QUERIES} queries − all |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for learner in LEARNERS:
        key = f"shapes-1shot-{learner}"
        if not data.get(f"{key}-metacrl-fast"):
            continue
        seeds, score = row_scores(data, key, ("base", "metacrl", "metacrl-fast"))
        lines.append(
            f"| {learner} | {', '.join(map(str, seeds))} | {fmt(score['base'])} "
            f"| {fmt(score['metacrl'])} | {fmt(score['metacrl-fast'])} "
            f"| {fmt(paired(score['metacrl'], score['base']))} "
            f"| {fmt(paired(score['metacrl-fast'], score['base']))} "
            f"| {fmt(paired(score['metacrl-fast'], score['metacrl']))} |"
        )
    return lines


def settings_text(settings: dict[str, Any]) -> str:
    """Settings as the reports show them: `` `key=value` `` items, comma-separated."""
    return ", ".join(f"`{k}={v}`" for k, v in settings.items())


def report_defaults() -> list[str]:
    """The 1-shot rows at the library's own MetaCRL defaults, with their controls."""
    data = load("grid")
    lines = [
        "### At the library's defaults: ConfoundedShapes 5-way 1-shot",
        "",
        f"The MetaCRL arm at the library's MetaCRL defaults ({settings_text(LIBRARY_DEFAULTS)};"
        " the arms above keep",
        f"{settings_text(STORED_RUNS_SETTINGS)}), trained with",
        "and without confounders. Test accuracy (%) over 600 episodes; differences paired by",
        "seed, mean ± 95% CI over the seeds every arm of the row has. Without: the defaults arm",
        "minus the oracle, both trained at rho 0; share: gain minus gain without. Capacity: the",
        "control above; MetaCRL arm above: the grid's MetaCRL arm. Drop: neutral minus conflict",
        "test accuracy of the defaults arm.",
        "",
        "| learner | seeds | base | + MetaCRL | gain | gain without | de-confounding share "
        "| − capacity | − MetaCRL arm above | conflict drop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for learner in LEARNERS:
        key = f"shapes-1shot-{learner}"
        if not data.get(f"{key}-defaults"):
            continue
        names = ("base", "oracle", "capacity", "metacrl", *DEFAULTS_ARMS)
        seeds, score = row_scores(data, key, names)
        if not seeds:
            lines.append(f"| {learner} | none | " + " | ".join(["not measured"] * 8) + " |")
            continue
        gain = paired(score["defaults"], score["base"])
        without = paired(score["defaults-rho0"], score["oracle"])
        conflict = conflict_scores(by_seed(data[f"{key}-defaults"], seeds))
        lines.append(
            f"| {learner} | {', '.join(map(str, seeds))} | {fmt(score['base'])} "
            f"| {fmt(score['defaults'])} | {fmt(gain)} | {fmt(without)} "
            f"| {fmt(paired(gain, without))} | {fmt(paired(score['defaults'], score['capacity']))} "
            f"| {fmt(paired(score['defaults'], score['metacrl']))} "
            f"| {fmt(paired(score['defaults'], conflict))} |"
        )
    return lines


def report_ablation(suite: str) -> list[str]:
    """An ablation suite's table, each variant paired by seed with the grid's full-method arm."""
    data = load(suite)
    try:
        variants = ablations(suite)
    except SystemExit:
        return ["### Ablations", "", "Not measured: the sweep is not finished."]
    full_settings = variants["full"]  # the full method: ABLATIONS["full"] changes nothing
    arm = ABLATION_FULL_ARM[suite]
    grid = load("grid")
    base, full = grid.get("shapes-1shot-maml-base", []), grid.get(f"shapes-1shot-maml-{arm}", [])
    if suite == "ablation":
        title = "MAML + MetaCRL at the stored runs' settings"
        winner = chosen()
        about = (
            f"the sweep's winner (`{winner}`: {settings_text(SWEEP[winner])}) at the stored"
            f" runs' {settings_text(STORED_RUNS_SETTINGS)}"
        )
    else:
        title = "MAML + MetaCRL at the library's defaults"
        about = f"the library's defaults ({settings_text(full_settings)})"
    lines = [
        f"### Ablations: {title}, ConfoundedShapes 5-way 1-shot",
        "",
        f"The full method is {about}, the grid's `{arm}` arm; each variant changes one thing.",
        "Test accuracy (%) over 600 episodes, mean ± 95% CI over seeds; vs full: the variant",
        "minus the full method, paired by seed.",
        "",
        "| variant | settings changed from the full method | test accuracy (%) "
        "| vs full (paired) |",
        "| --- | --- | --- | --- |",
        f"| MAML without MetaCRL | (the grid's base arm) | {fmt(test_scores(base))} "
        f"| {fmt(paired_differences(base, full))} |",
    ]
    for name, settings in variants.items():
        change = {k: v for k, v in settings.items() if full_settings.get(k) != v}
        shown = str(change) if change else "none"
        records = data.get(name, [])
        if name == "full":  # the same runs as the grid's full-method arm
            records = full
            shown = f"none (the grid's `{arm}` runs: same settings and seeds)"
        diff = "" if name == "full" else fmt(paired_differences(records, full))
        lines.append(f"| {name} | {shown} | {fmt(test_scores(records))} | {diff} |")
    return lines


def command_figure(args: argparse.Namespace) -> None:
    """Bar chart of the ConfoundedShapes grid with 95% CIs: base, + MetaCRL at the stored runs'
    ``xi_lr`` 0.4, + MetaCRL at the library's defaults (1-shot only) and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load("grid")
    arms = (
        ("base", "base (rho 0.9)"), ("metacrl", "+ MetaCRL (xi_lr 0.4)"),
        ("defaults", "+ MetaCRL (defaults; 1-shot)"), ("oracle", "oracle (rho 0)"),
    )  # fmt: skip
    width = 0.8 / len(arms)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, shots in zip(axes, (1, 5), strict=True):
        for j, (arm, label) in enumerate(arms):
            means, errs = [], []
            for learner in LEARNERS:
                scores = test_scores(data.get(f"shapes-{shots}shot-{learner}-{arm}", []))
                mean, ci = mean_ci(scores) if scores else (math.nan, math.nan)
                means.append(100 * mean)
                errs.append(0.0 if math.isnan(ci) else 100 * ci)
            xs = [i + (j - (len(arms) - 1) / 2) * width for i in range(len(LEARNERS))]
            ax.bar(xs, means, width=width, yerr=errs, capsize=3, label=label)
        ax.set_xticks(range(len(LEARNERS)), LEARNERS)
        ax.set_title(f"ConfoundedShapes 5-way {shots}-shot")
        ax.set_ylim(50, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), mean ± 95% CI over seeds")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(arms), fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # room for the legend below the panels
    args.path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.path, dpi=120)
    print(f"wrote {args.path}")


def command_report(args: argparse.Namespace) -> None:
    blocks = [
        report_sweep(),
        report_grid(),
        report_controls(),
        report_defaults(),
        report_fast(),
        *(report_ablation(suite) for suite in ABLATION_FULL_ARM),
    ]
    text = "\n\n".join("\n".join(b) for b in blocks)
    if args.update is None:
        print(text)
        return
    from report_block import update_block

    update_block(args.update, "evidence", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a suite's missing runs")
    run.add_argument("suite", choices=("sweep", "grid", *ABLATION_FULL_ARM))
    run.add_argument("--arms", nargs="+", default=["base", "metacrl", "oracle"], choices=ARMS)
    run.add_argument(
        "--part", default="1/1", help="i/n: every n-th missing run, starting at the i-th"
    )
    run.add_argument("--threads", type=int, default=1, help="torch threads per process")
    run.add_argument("--match", metavar="REGEX", help="only the runs whose id matches REGEX")
    report = sub.add_parser("report", help="print the tables of all suites")
    report.add_argument(
        "--update",
        type=Path,
        metavar="PAGE",
        help="replace the <!-- evidence:begin --> block of PAGE instead",
    )
    figure = sub.add_parser("figure", help="bar chart of the ConfoundedShapes grid (matplotlib)")
    figure.add_argument("path", type=Path, nargs="?", default=Path("docs/figures/evidence.png"))
    args = parser.parse_args()
    {"run": command_run, "report": command_report, "figure": command_figure}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
