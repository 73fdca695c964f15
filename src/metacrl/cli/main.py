"""``metacrl train`` and ``metacrl eval``: the command-line entry point."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacrl.cli.config import (
    BACKBONES,
    CONFOUNDERS,
    DATASETS,
    INVARIANCES,
    LEARNERS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    check_types,
    load_config,
)

if TYPE_CHECKING:
    from metacrl.distributed import DistributedContext

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_HELP: dict[str, str] = {
    "dataset": f"task distribution: {', '.join(DATASETS)} (default: confounded-shapes)",
    "data_root": "folder of the data (miniimagenet: images/ + train/val/test.csv, or the "
    "mini-imagenet-cache-*.pkl files)",
    "learner": f"meta-learner: {', '.join(LEARNERS)} (default: maml)",
    "backbone": f"network: {', '.join(BACKBONES)} (default: conv4 for images, mlp for sinusoid)",
    "hidden": "channels of each Conv4 block (32: MAML, 64: ProtoNet; default 32)",
    "image_size": "image side in pixels (default: 32 for confounded-shapes, 84 for miniimagenet)",
    "metacrl": "train only with (--metacrl) or only without (--no-metacrl) MetaCRL "
    "(default: both, side by side)",
    "ways": "classes per task, N (default 5)",
    "shots": "support examples per class, K (default 1)",
    "queries": "query examples per class (default 15)",
    "inner_lr": "inner-loop step size (default: 0.05 confounded-shapes, 0.01 otherwise, 0.1 ANIL)",
    "inner_steps": "inner-loop steps in meta-training (default 3)",
    "test_inner_steps": "inner-loop steps at validation and test (default: --inner-steps)",
    "meta_batch": "tasks per meta-batch (default 4)",
    "iterations": "meta-iterations, i.e. meta-batches (default 300: a few minutes on a CPU)",
    "meta_lr": "Adam learning rate of the meta-update (default 1e-3)",
    "first_order": "first-order meta-gradients (default: second order)",
    "backend": "inner-loop backend: func (torch.func, default), higher, or vmap (all tasks "
    "of a meta-batch at once; maml, anil, metasgd)",
    "rho": "confounded-shapes: probability that the batch's nuisance follows the label "
    "(default 0.9; 0 = unconfounded oracle)",
    "confounder": f"confounded-shapes: {', '.join(CONFOUNDERS)} (default switch: a different "
    "nuisance per meta-batch)",
    "num_factors": "MetaCRL: number of factors M (default: the backbone's feature size)",
    "lambda_inv": "MetaCRL: weight of the invariance penalty (default 1.0)",
    "lambda_orth": "MetaCRL: weight of the orthogonality term (default 1e-3)",
    "lambda_gate": "MetaCRL: weight of the gate sparsity term (default 0.1)",
    "invariance": (
        f"MetaCRL: invariance penalty, {' or '.join(INVARIANCES)} "
        "(default vrex, the validation sweep's best)"
    ),
    "mode": f"MetaCRL: schedule, {' or '.join(SCHEDULES)} (default alternating)",
    "crl_steps": "MetaCRL: causal steps per meta-iteration in alternating mode (default 5)",
    "replay": "MetaCRL: earlier meta-batches used as extra environments (default 3)",
    "gates": "MetaCRL: per-task factor gates (--no-gates, an ablation: all gates open)",
    "val_every": "validate every this many iterations (default 100)",
    "val_tasks": "validation episodes (default 100)",
    "test_tasks": "test episodes for the final table (default 200; 600 for a paper-style table)",
    "workers": "data-loading worker processes (default 0)",
    "device": "auto (cuda when present), cpu, cuda, cuda:1, ... (default auto)",
    "seed": "seed of the initialisation and the task stream (default 0)",
    "out": "output folder (default runs/metacrl)",
}


def _train_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="meta-train with and without MetaCRL, then evaluate on test tasks",
        description="Meta-train a learner with and without MetaCRL on the same seed and task "
        "stream, evaluate both on held-out test tasks and print a side-by-side table. With no "
        "arguments: MAML on the built-in ConfoundedShapes benchmark, a few minutes on a CPU.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="TOML file whose keys are the option names below")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out where it stopped"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name in ("metacrl", "first_order", "gates"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=_HELP[f.name])
        elif f.name in ("inner_lr", "meta_lr", "rho", "lambda_inv", "lambda_orth", "lambda_gate"):
            parser.add_argument(flag, type=float, help=_HELP[f.name], metavar="X")
        elif (
            isinstance(default, int)
            and not isinstance(default, bool)
            or f.name in ("image_size", "test_inner_steps", "num_factors")
        ):
            parser.add_argument(flag, type=int, help=_HELP[f.name], metavar="N")
        else:
            parser.add_argument(flag, help=_HELP[f.name])
    return parser


def _eval_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="evaluate a saved checkpoint on test tasks",
        description="Evaluate a checkpoint written by `metacrl train` (checkpoint.pt or "
        "best.pt) on the test episodes of its own configuration.",
    )
    parser.add_argument("checkpoint", help="path to checkpoint.pt or best.pt")
    parser.add_argument("--test-tasks", type=int, help="number of test episodes")
    parser.add_argument("--inner-steps", type=int, help="inner steps at test time")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the ``metacrl`` argument parser, with its ``train`` and ``eval`` subcommands.

    Every :class:`~metacrl.cli.TrainConfig` field is a ``train`` option; options left out are
    absent from the parsed namespace (so a config file can set them).

    Returns:
        The parser.

    Example:
        >>> args = build_parser().parse_args(["train", "--learner", "anil", "--no-metacrl"])
        >>> args.command, args.learner, args.metacrl
        ('train', 'anil', False)
    """
    parser = argparse.ArgumentParser(
        prog="metacrl",
        description="MetaCRL (causal representation learning for meta-learning): train and "
        "evaluate meta-learners with and without it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    return parser


def make_config(options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the config file, then explicit command-line options."""
    values: dict[str, Any] = {}
    if "config" in options:
        values.update(load_config(options["config"]))
    cli = {k: v for k, v in options.items() if k in {f.name for f in fields(TrainConfig)}}
    check_types(cli, "command line")
    values.update(cli)
    return TrainConfig(**values).resolved()


def _format_table(cfg: TrainConfig, rows: list[dict[str, Any]]) -> str:
    metric = "mse" if cfg.dataset == "sinusoid" else "accuracy"
    scale = 1.0 if metric == "mse" else 100.0
    unit = "MSE" if metric == "mse" else "accuracy (%)"
    if cfg.dataset == "confounded-shapes":
        data = (
            f"ConfoundedShapes ({cfg.confounder}, rho={cfg.rho}) {cfg.ways}-way "
            f"{cfg.shots}-shot, {cfg.image_size}x{cfg.image_size}"
        )
    elif cfg.dataset == "sinusoid":
        data = f"Sinusoid {cfg.shots}-shot"
    else:
        data = f"miniImageNet {cfg.ways}-way {cfg.shots}-shot, {cfg.image_size}x{cfg.image_size}"
    backbone = f"Conv4-{cfg.hidden}" if cfg.backbone == "conv4" else str(cfg.backbone)
    lines = [
        f"{data}; {backbone}; {cfg.iterations} iterations, meta-batch {cfg.meta_batch}, "
        f"{cfg.inner_steps} inner steps at {cfg.inner_lr}; seed {cfg.seed}",
        "",
        f"| method | test {unit} | best val | train time (s) |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        test = row["test"]
        val = row["best_val"]
        lines.append(
            f"| {row['label']} | {scale * test[metric]:.2f} ± {scale * test[metric + '_ci95']:.2f}"
            f" ({int(test['episodes'])} episodes) | "
            f"{'-' if val is None else f'{scale * val:.2f}'} | {row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def _command_train(options: dict[str, Any]) -> int:
    from metacrl.cli.build import pick_device
    from metacrl.distributed import DistributedContext, check_meta_batch, launch_info

    cfg = make_config(options)
    device = pick_device(cfg.device)
    try:  # under torchrun: split each meta-batch evenly, or stop before joining the group
        check_meta_batch(cfg.meta_batch, launch_info().world_size)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    dist = DistributedContext.from_env(device)
    try:
        code = _train_arms(cfg, options, dist)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()  # waits for rank 0, which writes the results after the others are done
    return code


def _train_arms(cfg: TrainConfig, options: dict[str, Any], dist: DistributedContext) -> int:
    from metacrl.train.interrupt import StopRequest, TrainingInterrupted
    from metacrl.train.plot import plot_curves
    from metacrl.train.trainer import Trainer

    out = Path(cfg.out)
    resume = bool(options.get("resume", False))
    arms = cfg.arms()
    names = {False: "base", True: "metacrl"}
    # rank 0 decides (the other processes may not see its files)
    taken = dist.broadcast(any((out / names[a] / "checkpoint.pt").exists() for a in arms))
    if not resume and taken:
        raise ConfigError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    # Build everything before writing anything, so that bad settings leave no files behind.
    try:
        trainers = [
            Trainer(
                cfg,
                arm,
                out / names[arm],
                dist.device,
                progress="no_progress" not in options,
                dist=dist,
            )
            for arm in arms
        ]
    except (ValueError, TypeError, OSError) as err:  # bad data or settings, named by the error
        raise ConfigError(str(err)) from err
    for trainer in trainers:
        if resume:
            trainer.resume()
    stop = StopRequest()
    rows = []
    start = time.perf_counter()
    with stop:
        for trainer in trainers:
            trainer.stop = stop
            try:
                trainer.train()
            except TrainingInterrupted as err:
                if dist.is_main:
                    print(
                        f"metacrl: interrupted; saved {err.checkpoint} at iteration "
                        f"{err.iteration}. Continue with: metacrl train --resume --out {out} "
                        "(and the same settings)",
                        file=sys.stderr,
                    )
                return EXIT_INTERRUPTED
            rows.append(trainer.test().as_dict())
    if not dist.is_main:  # rank 0 writes the table, the results and the plot
        return 0
    table = _format_table(cfg, rows)
    print("\n" + table)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"config": cfg.as_dict(), "runs": rows}, indent=2))
    metric = "mse" if cfg.dataset == "sinusoid" else "accuracy"
    runs = {t.label: t.log.read() for t in trainers}
    if plot_curves(runs, out / "curves.png", metric):
        print(f"learning curves: {out / 'curves.png'}")
    print(f"results: {out / 'results.md'} ({time.perf_counter() - start:.0f} s)")
    return 0


def _command_eval(options: dict[str, Any]) -> int:
    import dataclasses

    from metacrl.cli.build import build_dataset, build_learner, build_model, pick_device
    from metacrl.data import TaskLoader
    from metacrl.train.checkpoint import CheckpointError, load_checkpoint
    from metacrl.train.evaluate import evaluate_episodes
    from metacrl.train.trainer import TEST_SEED, arm_label

    device = pick_device(options["device"])
    ckpt = load_checkpoint(options["checkpoint"], map_location=device)
    if "config" not in ckpt or "learner" not in ckpt:
        raise CheckpointError(f"{options['checkpoint']} holds no trained learner")
    cfg = TrainConfig(**ckpt["config"]).resolved()
    if options.get("test_tasks") is not None:
        cfg = dataclasses.replace(cfg, test_tasks=options["test_tasks"]).resolved()
    model = build_model(cfg)
    learner = build_learner(cfg, model, bool(ckpt["metacrl"])).to(device)
    try:
        learner.load_state_dict(ckpt["learner"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{options['checkpoint']} does not fit its configuration: {err}"
        ) from err
    test_set = build_dataset(cfg, "test", cfg.test_tasks, TEST_SEED)
    loader = TaskLoader(test_set, batch_size=cfg.meta_batch, num_workers=cfg.workers)
    result = evaluate_episodes(learner, loader, inner_steps=options.get("inner_steps"))
    scale = 1.0 if result.metric == "mse" else 100.0
    unit = "MSE" if result.metric == "mse" else "accuracy (%)"
    print(
        f"{arm_label(cfg, bool(ckpt['metacrl']))} (iteration {ckpt.get('iteration')}): test {unit} "
        f"{scale * result.mean:.2f} ± {scale * result.ci95:.2f} over {result.episodes} episodes"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metacrl``; return the exit code (2 for bad settings, 130 when interrupted).

    The console script calls ``sys.exit(main())``. Bad settings, a missing file or a checkpoint
    that does not fit print one line ``metacrl: error: ...`` on stderr and return 2, before
    anything is written.

    Args:
        argv: The arguments after ``metacrl`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 2 (bad settings) or 130 (interrupted; the state is saved).

    Example:
        >>> main(["eval", "/nonexistent/best.pt"])    # prints the error on stderr
        2
    """
    from metacrl.train.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    options = vars(args)
    command = options.pop("command")
    try:
        if command == "train":
            return _command_train(options)
        return _command_eval(options)
    except (ConfigError, CheckpointError, FileNotFoundError) as err:
        print(f"metacrl: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("metacrl: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
