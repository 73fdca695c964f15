"""What happens inside MetaCRL? Gates, factor directions and what the head's input carries.

A validation-free analysis of trained checkpoints (``runs/diagnose/<setting>/<variant>-s<seed>/
best.pt``, written by ``benchmarks/diagnose.py``); no test task is read. Per run:

1. Gate statistics per confounder type (MetaCRL runs): the gates ``w_t`` of training-mode tasks
   (the run's ``rho`` and confounder, a fixed analysis seed), grouped by the attribute their
   confounder ties to the label: mean gate, fraction of closed gates (< 0.5), distance between
   the group means against the spread within groups, and whether a nearest-group-mean classifier
   reads the confounder from the gates (cross-fitted over halves of the meta-batches; chance 1/3).
   Permutations of the attributes over meta-batches give the values expected without any signal.
   The gates of neutral validation tasks are summarised for reference.
2. How far ``Xi`` is from orthogonal (MetaCRL runs): ``||Unit^T Unit - I||_F / ||I||_F`` for
   ``Xi`` with unit columns, the singular values of ``U = reg.factor_directions()`` and its
   effective rank.
3. Linear probes of the nuisances (all runs): on the query examples of neutral validation tasks,
   a multinomial logistic regression predicts each nuisance (foreground, background, texture;
   8 values, chance 1/8) from the head's input (MAML: the features ``g(x)``; MetaCRL:
   ``reg.transform(g(x), w_t)``) and, for comparison, from the features ``g(x)`` themselves;
   fitted on 70% of the tasks, scored on the other 30%.

    python benchmarks/inside.py run --setting clipart --variants maml metacrl --seeds 0 1 2
    python benchmarks/inside.py report

Runs are resumable (one JSON file each in ``benchmarks/results/inside/<setting>/``). The
checkpoints of the variants ``orthonormal*`` trained before ``basis`` was a setting hold no
``basis`` in their configuration; it is filled in from ``diagnose.py``'s ``VARIANTS`` (and the
singular values of the last checkpoint's ``U`` are compared with those ``diagnose.py`` recorded).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from checkpoints import load_learner

if TYPE_CHECKING:
    from metacrl.data import ConfoundedTasks
    from metacrl.learners import Learner
    from metacrl.regularizer.module import MetaCRLModule

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results" / "inside"
DIAGNOSE_RESULTS = BENCHMARKS / "results" / "diagnose"
RUNS = BENCHMARKS.parent / "runs" / "diagnose"
ANALYSIS_SEED = 12345
"""Seed of the analysed tasks (training runs use their own seeds, validation uses 10 000)."""
TRAIN_TASKS = 240
PROBE_TASKS = 150
NUM_VALUES = 8  # values per nuisance (metacrl.data.shapes_nuisance.NUM_VALUES)
DEFAULT_VARIANTS = ["maml", "metacrl", "lambda_orth-1e-3", "orthonormal", "orthonormal+gr_lr-0.4"]

Features = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------- measuring functions
def gate_summary(gates: Tensor) -> dict[str, float]:
    """Summarise task gates: their mean, the fraction below 0.5 and their spread.

    Args:
        gates: ``[T, M]`` gates of ``T`` tasks.

    Returns:
        ``mean`` (over tasks and factors), ``min`` (the smallest gate), ``closed_fraction``
        (gates < 0.5) and ``spread`` (mean L2 distance of a task's gate vector to the mean gate
        vector).
    """
    gates = gates.detach().double()
    centre = gates.mean(dim=0)
    return {
        "mean": float(gates.mean()),
        "min": float(gates.min()),
        "closed_fraction": float((gates < 0.5).double().mean()),
        "spread": float((gates - centre).norm(dim=1).mean()),
    }


def _group_means(gates: Tensor, labels: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Per-group mean vectors ``[K, M]`` and which groups have members ``[K]``."""
    present = torch.stack([(labels == k).any() for k in range(num_groups)])
    means = torch.stack(
        [
            gates[labels == k].mean(dim=0) if bool(present[k]) else gates.new_zeros(gates.shape[1])
            for k in range(num_groups)
        ]
    )
    return means, present


def _between(means: Tensor) -> float:
    """Mean L2 distance over pairs of group means (NaN for fewer than two groups)."""
    pairs = list(itertools.combinations(range(len(means)), 2))
    if not pairs:
        return math.nan
    return float(torch.stack([(means[i] - means[j]).norm() for i, j in pairs]).mean())


def nearest_mean_accuracy(gates: Tensor, labels: Tensor, folds: Tensor, num_groups: int) -> float:
    """Accuracy of a nearest-group-mean classifier, cross-fitted over folds.

    Each fold is predicted from the group means of the other folds (Euclidean distance); groups
    without members outside the fold cannot be predicted.

    Args:
        gates: ``[T, M]`` vectors.
        labels: ``[T]`` group indices in ``0 .. num_groups - 1``.
        folds: ``[T]`` fold of each vector (e.g. the parity of its meta-batch).
        num_groups: The number of groups.

    Returns:
        The fraction of vectors whose nearest group mean is their own group's.
    """
    correct = 0
    for fold in torch.unique(folds):
        held = folds == fold
        means, present = _group_means(gates[~held], labels[~held], num_groups)
        dist = torch.cdist(gates[held], means)
        dist[:, ~present] = math.inf
        correct += int((dist.argmin(dim=1) == labels[held]).sum())
    return correct / len(labels)


def gate_group_stats(
    gates: Tensor,
    groups: Sequence[str],
    blocks: Sequence[int] | None = None,
    *,
    permutations: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Whether task gates differ by group (e.g. the attribute of the task's confounder).

    Args:
        gates: ``[T, M]`` gates of ``T`` tasks.
        groups: ``T`` group names (e.g. ``"background"``).
        blocks: ``T`` block ids, e.g. the meta-batch of each task (tasks of a block share a
            confounder, so share a group): the classifier is cross-fitted over the blocks' parity
            and the null permutes groups over blocks. Default: each task is its own block.
        permutations: Random relabellings for the null values (default 20).
        seed: Seed of the relabellings.

    Returns:
        ``groups`` (sorted names), ``counts``, ``group_means`` (``[K][M]``), ``between`` (mean
        L2 distance over pairs of group means), ``within`` (mean L2 distance of a task's gates
        to its group mean), ``ratio`` (between / within), ``accuracy`` (nearest-group-mean
        classifier, cross-fitted), ``chance`` (1 / K), and ``between_null``, ``ratio_null``
        and ``accuracy_null`` (their means over random relabellings of the blocks), plus
        :func:`gate_summary`.
    """
    gates = gates.detach().double()
    if len(groups) != len(gates):
        raise ValueError(f"{len(groups)} groups for {len(gates)} gate vectors")
    block_ids = list(range(len(groups))) if blocks is None else list(blocks)
    names = sorted(set(groups))
    k = len(names)
    labels = torch.tensor([names.index(g) for g in groups])
    block_index = {b: i for i, b in enumerate(dict.fromkeys(block_ids))}
    item_block = torch.tensor([block_index[b] for b in block_ids])
    block_label = torch.full((len(block_index),), -1, dtype=torch.long)
    for item, b in enumerate(item_block.tolist()):
        if int(block_label[b]) not in (-1, int(labels[item])):
            raise ValueError(f"block {block_ids[item]} holds tasks of different groups")
        block_label[b] = labels[item]
    folds = item_block % 2

    def measure(lab: Tensor) -> tuple[float, float, float, Tensor]:
        means, _ = _group_means(gates, lab, k)
        within = float((gates - means[lab]).norm(dim=1).mean())
        return _between(means), within, nearest_mean_accuracy(gates, lab, folds, k), means

    between, within, accuracy, means = measure(labels)
    generator = torch.Generator().manual_seed(seed)
    null_between, null_ratio, null_accuracy = [], [], []
    for _ in range(permutations):
        shuffled = block_label[torch.randperm(len(block_label), generator=generator)]
        b, w, a, _ = measure(shuffled[item_block])
        null_between.append(b)
        null_ratio.append(b / w if w > 0 else math.nan)
        null_accuracy.append(a)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    return {
        **gate_summary(gates),
        "groups": names,
        "counts": [int((labels == i).sum()) for i in range(k)],
        "group_means": means.tolist(),
        "between": between,
        "within": within,
        "ratio": between / within if within > 0 else math.nan,
        "accuracy": accuracy,
        "chance": 1 / k,
        "between_null": mean(null_between),
        "ratio_null": mean(null_ratio),
        "accuracy_null": mean(null_accuracy),
    }


def factor_geometry(xi: Tensor, directions: Tensor) -> dict[str, Any]:
    """How far ``Xi`` is from orthogonal, and the spectrum of the factor directions ``U``.

    Args:
        xi: The factor matrix ``[feature_dim, M]``.
        directions: ``U`` as the forward pass uses it (``reg.factor_directions()``).

    Returns:
        ``xi_nonorthogonality`` (``||Unit^T Unit - I||_F / ||I||_F`` for ``Xi`` with unit
        columns: 0 for orthogonal columns), ``xi_max_abs_cosine`` (largest ``|cos|`` between two
        columns), ``u_singular_values`` (descending), ``u_sv_min``, ``u_sv_max``,
        ``u_effective_rank`` (``exp`` of the entropy of the normalised singular values) and
        ``u_effective_rank_fraction`` (divided by ``min(feature_dim, M)``).
    """
    xi = xi.detach().double()
    unit = xi / xi.norm(dim=0, keepdim=True).clamp_min(1e-12)
    m = unit.shape[1]
    eye = torch.eye(m, dtype=unit.dtype)
    gram = unit.T @ unit
    off = (gram - eye).abs()
    sv = torch.linalg.svdvals(directions.detach().double())
    p = sv / sv.sum()
    p = p[p > 0]
    erank = float(torch.exp(-(p * p.log()).sum()))
    return {
        "xi_nonorthogonality": float(torch.linalg.norm(gram - eye) / torch.linalg.norm(eye)),
        "xi_max_abs_cosine": float(off.max()) if m > 1 else 0.0,
        "u_singular_values": sv.tolist(),
        "u_sv_min": float(sv.min()),
        "u_sv_max": float(sv.max()),
        "u_effective_rank": erank,
        "u_effective_rank_fraction": erank / min(directions.shape),
    }


def probe_accuracy(
    inputs: Tensor,
    labels: Tensor,
    tasks: Tensor | None = None,
    *,
    num_classes: int = NUM_VALUES,
    train_fraction: float = 0.7,
    steps: int = 300,
    l2: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Fit a linear probe (multinomial logistic regression) and score it on held-out examples.

    The examples are split by task (``train_fraction`` of the tasks, chosen at random, for
    fitting); the inputs are standardised with the fitting part's mean and standard deviation;
    the probe is fitted full-batch by L-BFGS on the cross-entropy plus ``l2 * ||W||^2``.

    Args:
        inputs: ``[n, d]`` inputs.
        labels: ``[n]`` integer labels in ``0 .. num_classes - 1``.
        tasks: ``[n]`` task of each example (default: each example is its own task).
        num_classes: The number of label values (default 8, chance 1/8).
        train_fraction: Fraction of the tasks used to fit (default 0.7).
        steps: L-BFGS iterations (default 300).
        l2: Weight of the squared L2 norm of the weights (default 1e-3).
        seed: Seed of the split.

    Returns:
        ``train`` and ``test`` accuracy, ``majority`` (accuracy on the test part of always
        answering the fitting part's most frequent label), ``n_train`` and ``n_test``.
    """
    x = inputs.detach().double().reshape(len(inputs), -1)
    y = labels.long()
    task_of = torch.arange(len(y)) if tasks is None else tasks.long()
    unique = torch.unique(task_of)
    generator = torch.Generator().manual_seed(seed)
    order = unique[torch.randperm(len(unique), generator=generator)]
    n_fit = min(max(1, round(train_fraction * len(unique))), len(unique) - 1)
    fit = torch.isin(task_of, order[:n_fit])
    mean, std = x[fit].mean(dim=0), x[fit].std(dim=0).clamp_min(1e-8)
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=steps,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )
    x_fit, y_fit = x[fit], y[fit]

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(x_fit @ weight + bias, y_fit)
        loss = loss + l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        optimiser.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        predicted = (x @ weight + bias).argmax(dim=1)
    hit = (predicted == y).double()
    majority = int(torch.bincount(y_fit, minlength=num_classes).argmax())
    return {
        "train": float(hit[fit].mean()),
        "test": float(hit[~fit].mean()),
        "majority": float((y[~fit] == majority).double().mean()),
        "n_train": int(fit.sum()),
        "n_test": int((~fit).sum()),
    }


def head_inputs(
    features: Features, regularizer: MetaCRLModule | None, x_spt: Tensor, x_qry: Tensor
) -> tuple[Tensor, Tensor, Tensor | None]:
    """What the head sees at θ for one task's query examples (no adaptation).

    The support and query sets go through the backbone separately, as in the learners (with
    batch-norm in training mode each set is normalised by its own statistics).

    Args:
        features: The backbone ``g`` (``model.features``), ``[n, ...] -> [n, feature_dim]``.
        regularizer: The MetaCRL module, or ``None`` (plain learner: the head sees ``g(x)``).
        x_spt: The task's support inputs.
        x_qry: Its query inputs.

    Returns:
        ``(g(x_qry), head input of x_qry, gates)``: the gates are ``None`` without MetaCRL; with
        it they come from the support features and the head input is
        ``reg.transform(g(x_qry), gates)``.
    """
    with torch.no_grad():
        f_qry = features(x_qry)
        if regularizer is None:
            return f_qry, f_qry, None
        gates = regularizer.gates(features(x_spt), frozen=True)
        return f_qry, regularizer.transform(f_qry, gates, frozen=True), gates


def task_gates(features: Features, regularizer: MetaCRLModule, x_spt: Tensor) -> Tensor:
    """One task's gates from its support features at θ (``[M]``)."""
    with torch.no_grad():
        return regularizer.gates(features(x_spt), frozen=True)


# ---------------------------------------------------------------- collecting from a learner
def unwrap(learner: Learner) -> tuple[Features, MetaCRLModule | None]:
    """The backbone ``g`` of a learner and its MetaCRL module (``None`` for a plain learner)."""
    from metacrl.learners import MetaLearner
    from metacrl.regularizer import MetaCRLLearner

    regularizer: MetaCRLModule | None = None
    base: object = learner
    if isinstance(learner, MetaCRLLearner):
        regularizer, base = learner.regularizer, learner.learner
    if not isinstance(base, MetaLearner):
        raise TypeError(f"cannot find the backbone of {type(base).__name__}")
    return cast(Features, base.net.features), regularizer


def collect_training_gates(
    features: Features, regularizer: MetaCRLModule, dataset: ConfoundedTasks
) -> tuple[Tensor, list[str], list[int]]:
    """Gates of every task of a confounded training set, with its confounder and meta-batch.

    Args:
        features: The backbone.
        regularizer: The MetaCRL module.
        dataset: Training-mode tasks (each has a confounder).

    Returns:
        ``(gates [T, M], confounder attribute per task, block per task)``; the block is the
        meta-batch (tasks sharing a confounder), or the task itself when each task draws its own.
    """
    size = dataset.required_batch_size or 1
    gates, attributes, blocks = [], [], []
    for index in range(len(dataset)):
        episode = dataset.episode(index)
        if episode.confounder is None:
            raise ValueError(f"task {index} has no confounder (rho 0 or not a training split?)")
        gates.append(task_gates(features, regularizer, episode.x_spt))
        attributes.append(episode.confounder.attribute)
        blocks.append(index // size)
    return torch.stack(gates), attributes, blocks


def collect_probe_data(
    features: Features, regularizer: MetaCRLModule | None, dataset: ConfoundedTasks
) -> dict[str, Tensor]:
    """The query examples of every task: features, head inputs, nuisances, task ids, gates.

    Args:
        features: The backbone.
        regularizer: The MetaCRL module, or ``None``.
        dataset: Tasks (e.g. neutral validation tasks).

    Returns:
        ``features`` ``[n, d]``, ``head`` ``[n, d']``, ``nuisances`` ``[n, 3]`` (``NUISANCES``
        order), ``tasks`` ``[n]`` and, with MetaCRL, ``gates`` ``[T, M]``.
    """
    feats, heads, nuisances, tasks, gates = [], [], [], [], []
    for index in range(len(dataset)):
        episode = dataset.episode(index)
        f_qry, h_qry, w = head_inputs(features, regularizer, episode.x_spt, episode.x_qry)
        n_spt = len(episode.y_spt)
        feats.append(f_qry)
        heads.append(h_qry)
        nuisances.append(torch.from_numpy(episode.nuisances[n_spt:]).long())
        tasks.append(torch.full((len(f_qry),), index, dtype=torch.long))
        if w is not None:
            gates.append(w)
    out = {
        "features": torch.cat(feats),
        "head": torch.cat(heads),
        "nuisances": torch.cat(nuisances),
        "tasks": torch.cat(tasks),
    }
    if gates:
        out["gates"] = torch.stack(gates)
    return out


def nuisance_probes(data: Mapping[str, Tensor], key: str, seed: int) -> dict[str, dict[str, float]]:
    """:func:`probe_accuracy` of each nuisance from ``data[key]`` (:func:`collect_probe_data`)."""
    from metacrl.data import NUISANCES

    return {
        name: probe_accuracy(data[key], data["nuisances"][:, i], data["tasks"], seed=seed)
        for i, name in enumerate(NUISANCES)
    }


# ---------------------------------------------------------------- one run
def _diagnose_variants() -> dict[str, dict[str, Any]]:
    """``VARIANTS`` of ``benchmarks/diagnose.py`` (read, not run)."""
    spec = importlib.util.spec_from_file_location("_diagnose_variants", BENCHMARKS / "diagnose.py")
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(dict[str, dict[str, Any]], module.VARIANTS)


def _git_state() -> str | None:
    """The commit, marked ``-dirty`` when files differ from it (``None`` without git)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCHMARKS,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _u_check(folder: Path, setting: str, name: str, fill: Mapping[str, Any]) -> float | None:
    """Largest difference between the singular values of the last checkpoint's ``U`` and those
    ``diagnose.py`` recorded at the end of training (checks that the rebuild is faithful)."""
    recorded_path = DIAGNOSE_RESULTS / setting / f"{name}.json"
    if not recorded_path.exists() or not (folder / "checkpoint.pt").exists():
        return None
    recorded = json.loads(recorded_path.read_text()).get("u_singular_values")
    if recorded is None:
        return None
    learner, _, _ = load_learner(folder / "checkpoint.pt", fill)
    _, regularizer = unwrap(learner)
    if regularizer is None:
        return None
    sv = torch.linalg.svdvals(regularizer.factor_directions().detach().double())
    return float((sv - torch.tensor(recorded, dtype=sv.dtype)).abs().max())


def analyse_run(
    setting: str,
    variant: str,
    seed: int,
    *,
    runs: Path = RUNS,
    train_tasks: int = TRAIN_TASKS,
    probe_tasks: int = PROBE_TASKS,
    analysis_seed: int = ANALYSIS_SEED,
) -> dict[str, Any]:
    """Measure everything for one run folder (``runs/<setting>/<variant>-s<seed>/best.pt``)."""
    from metacrl.cli.build import build_dataset
    from metacrl.data import ConfoundedTasks

    start = time.perf_counter()
    folder = runs / setting / f"{variant}-s{seed}"
    fill = _diagnose_variants().get(variant, {})
    learner, cfg, info = load_learner(folder / "best.pt", fill)
    features, regularizer = unwrap(learner)
    result: dict[str, Any] = {
        "setting": setting,
        "variant": variant,
        "seed": seed,
        "checkpoint": str(folder / "best.pt"),
        **info,
        "config": cfg.as_dict(),
        "analysis_seed": analysis_seed,
        "torch": torch.__version__,
        "code": _git_state(),
        "train_tasks": train_tasks,
        "probe_tasks": probe_tasks,
    }
    val = build_dataset(cfg, "val", probe_tasks, analysis_seed)
    if not isinstance(val, ConfoundedTasks) or val.confounder_of(0) is not None:
        raise ValueError(f"{setting}: the validation tasks are not neutral confounded tasks")
    data = collect_probe_data(features, regularizer, val)
    result["probe_examples"] = len(data["tasks"])
    result["probe_head"] = nuisance_probes(data, "head", analysis_seed)
    result["probe_features"] = (
        result["probe_head"]
        if regularizer is None
        else nuisance_probes(data, "features", analysis_seed)
    )
    if regularizer is not None:
        train = build_dataset(cfg, "train", train_tasks, analysis_seed)
        assert isinstance(train, ConfoundedTasks)
        gates, attributes, blocks = collect_training_gates(features, regularizer, train)
        result["gates_train"] = gate_group_stats(gates, attributes, blocks, seed=analysis_seed)
        result["gates_val"] = gate_summary(data["gates"])
        result["geometry"] = factor_geometry(
            regularizer.xi, regularizer.factor_directions(frozen=True)
        )
        result["u_check_max_abs_diff"] = _u_check(folder, setting, f"{variant}-s{seed}", fill)
    result["seconds"] = time.perf_counter() - start
    return result


# ---------------------------------------------------------------- commands
def command_run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    for seed in args.seeds:
        for variant in args.variants:
            path = RESULTS / args.setting / f"{variant}-s{seed}.json"
            if path.exists():
                continue
            checkpoint = args.runs / args.setting / f"{variant}-s{seed}" / "best.pt"
            if not checkpoint.exists():
                print(f"{args.setting} {variant} seed {seed}: skipped, no {checkpoint}")
                continue
            result = analyse_run(
                args.setting,
                variant,
                seed,
                runs=args.runs,
                train_tasks=args.train_tasks,
                probe_tasks=args.probe_tasks,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1))
            probes = ", ".join(
                f"{k} {100 * v['test']:.1f}" for k, v in result["probe_head"].items()
            )
            print(
                f"{args.setting} {variant} seed {seed}: probe of the head input {probes} "
                f"({result['seconds']:.0f} s)"
            )


def _cell(values: Sequence[float | None], scale: float = 1.0, spec: str = ".1f") -> str:
    """``mean (v1, v2, ...)`` of the finite values in format ``spec``, or ``-``."""
    finite = [scale * v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    mean = format(sum(finite) / len(finite), spec)
    if len(finite) == 1:
        return mean
    return f"{mean} ({', '.join(format(v, spec) for v in finite)})"


def _variant_order(names: Sequence[str]) -> list[str]:
    known = list(_diagnose_variants())
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def command_report(args: argparse.Namespace) -> None:
    from metacrl.data import NUISANCES

    for setting_dir in sorted(p for p in RESULTS.glob("*") if p.is_dir()):
        runs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for path in sorted(setting_dir.glob("*.json")):
            r = json.loads(path.read_text())
            runs[r["variant"]][r["seed"]] = r
        if not runs:
            continue
        variants = _variant_order(list(runs))
        any_run = next(iter(next(iter(runs.values())).values()))
        print(
            f"\n### {setting_dir.name}: linear probes of the nuisances (test accuracy %, chance "
            f"12.5; {any_run['probe_examples']} query examples of {any_run['probe_tasks']} neutral "
            "validation tasks, 70/30 split by task); mean (per seed)\n"
        )
        heads = " | ".join(f"{n} (head input)" for n in NUISANCES)
        feats = " | ".join(f"{n} (g(x))" for n in NUISANCES)
        print(f"| variant | seeds | {heads} | {feats} |")
        print("|" + " --- |" * (2 + 2 * len(NUISANCES)))
        for variant in variants:
            by_seed = runs[variant]
            seeds = sorted(by_seed)
            cells = [
                _cell([by_seed[s][kind][n]["test"] for s in seeds], 100)
                for kind in ("probe_head", "probe_features")
                for n in NUISANCES
            ]
            print(f"| {variant} | {', '.join(map(str, seeds))} | {' | '.join(cells)} |")

        crl = [v for v in variants if any("gates_train" in r for r in runs[v].values())]
        if not crl:
            continue
        g = next(r for v in crl for r in runs[v].values() if "gates_train" in r)
        chance = 100 * g["gates_train"]["chance"]
        print(
            f"\n### {setting_dir.name}: gates of {g['train_tasks']} training tasks grouped by "
            "the confounder's attribute. within: mean L2 distance of a task's gates to its group "
            "mean; between / within: mean distance of group means over it; null: attributes "
            "permuted over meta-batches; confounder from gates: nearest group mean, cross-fitted "
            f"over halves of the meta-batches, chance {chance:.0f}%. val: {g['probe_tasks']} "
            "neutral validation tasks\n"
        )
        print(
            "| variant | seeds | mean gate | min gate | closed (< 0.5) % | within "
            "| between / within | (null) | confounder from gates % | (null) % | val: mean gate "
            "| val: spread |"
        )
        print("|" + " --- |" * 12)
        for variant in crl:
            by_seed = {s: r for s, r in runs[variant].items() if "gates_train" in r}
            seeds = sorted(by_seed)
            t = [by_seed[s]["gates_train"] for s in seeds]
            v = [by_seed[s]["gates_val"] for s in seeds]
            cells = [
                _cell([x["mean"] for x in t], spec=".3f"),
                _cell([x["min"] for x in t], spec=".3f"),
                _cell([x["closed_fraction"] for x in t], 100),
                _cell([x["within"] for x in t], spec=".1e"),
                _cell([x["ratio"] for x in t], spec=".2f"),
                _cell([x["ratio_null"] for x in t], spec=".2f"),
                _cell([x["accuracy"] for x in t], 100),
                _cell([x["accuracy_null"] for x in t], 100),
                _cell([x["mean"] for x in v], spec=".3f"),
                _cell([x["spread"] for x in v], spec=".1e"),
            ]
            print(f"| {variant} | {', '.join(map(str, seeds))} | {' | '.join(cells)} |")

        print(
            f"\n### {setting_dir.name}: factor directions (Xi non-orthogonality "
            "||Unit^T Unit - I||_F / ||I||_F; U = reg.factor_directions())\n"
        )
        print(
            "| variant | seeds | Xi non-orthogonality | max abs cos | U sv min | U sv max "
            "| U effective rank | of |"
        )
        print("|" + " --- |" * 8)
        for variant in crl:
            by_seed = {s: r for s, r in runs[variant].items() if "geometry" in r}
            seeds = sorted(by_seed)
            geo = [by_seed[s]["geometry"] for s in seeds]
            cells = [
                _cell([x["xi_nonorthogonality"] for x in geo], spec=".3f"),
                _cell([x["xi_max_abs_cosine"] for x in geo], spec=".2f"),
                _cell([x["u_sv_min"] for x in geo], spec=".3f"),
                _cell([x["u_sv_max"] for x in geo], spec=".3f"),
                _cell([x["u_effective_rank"] for x in geo], spec=".1f"),
                str(len(geo[0]["u_singular_values"])),
            ]
            print(f"| {variant} | {', '.join(map(str, seeds))} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="analyse run folders (skips those already analysed)")
    run.add_argument("--setting", required=True, help="a folder of runs/diagnose, e.g. clipart")
    run.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--runs", type=Path, default=RUNS, help="the runs' root (runs/diagnose)")
    run.add_argument(
        "--train-tasks", type=int, default=TRAIN_TASKS, help="training tasks for the gates"
    )
    run.add_argument(
        "--probe-tasks", type=int, default=PROBE_TASKS, help="validation tasks for the probes"
    )
    report = sub.add_parser("report", help="print the Markdown tables of the analysed runs")
    report.add_argument("--update", type=Path, help="write the tables into this page's block")
    args = parser.parse_args()
    if args.command == "run":
        command_run(args)
        return
    from report_block import print_or_update

    print_or_update(lambda: command_report(args), args.update, "inside")


if __name__ == "__main__":
    main()
