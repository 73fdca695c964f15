"""``metacrl train`` and ``metacrl eval``: the parser, the two commands and the entry point."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacrl.cli.config import (
    CONFOUNDED_DATASETS,
    ConfigError,
    TrainConfig,
    config_errors,
    config_keys,
    option_help,
    option_type,
)
from metacrl.cli.options import add_train_options
from metacrl.cli.sources import make_config

if TYPE_CHECKING:
    from metacrl.distributed import DistributedContext

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]

EXIT_USAGE = 2
"""Exit code for bad settings (as argparse uses for malformed options)."""
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C."""

_RUN_NAMES = {False: "base", True: "metacrl"}  # the folder of each arm under --out


def build_parser() -> argparse.ArgumentParser:
    """Return the ``metacrl`` argument parser, with its ``train`` and ``eval`` subcommands.

    Every :class:`~metacrl.cli.TrainConfig` field is a ``train`` option (see
    :mod:`metacrl.cli.options`); options left out are absent from the parsed namespace (so a
    config file can set them).

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
    train = sub.add_parser(
        "train",
        help="meta-train with and without MetaCRL, then evaluate on test tasks",
        description="Meta-train a learner with and without MetaCRL on the same seed and task "
        "stream, evaluate both on held-out test tasks and print a side-by-side table. With no "
        "arguments: MAML on the built-in ConfoundedShapes benchmark, a few minutes on a CPU.",
        argument_default=argparse.SUPPRESS,
    )
    add_train_options(train)
    evaluate = sub.add_parser(
        "eval",
        help="evaluate a saved checkpoint on test tasks",
        description="Evaluate a checkpoint written by `metacrl train` (checkpoint.pt or "
        "best.pt) on the test episodes of its own configuration (or, with --test-confounding "
        "conflict, on conflict test tasks of a confounded dataset).",
    )
    evaluate.add_argument("checkpoint", help="path to checkpoint.pt or best.pt")
    evaluate.add_argument(
        "--test-tasks", type=int, metavar="N", help="test episodes (default: the run's)"
    )
    evaluate.add_argument(
        "--inner-steps", type=int, metavar="N", help="inner steps at test time (default: the run's)"
    )
    evaluate.add_argument(
        "--test-confounding",
        choices=option_type("test_confounding").choices,
        help="neutral or conflict test tasks of a confounded dataset (see metacrl train --help; "
        "default: the run's)",
    )
    evaluate.add_argument("--device", default="auto", help=option_help("device"))
    return parser


def _score_unit(metric: str) -> tuple[float, str]:
    """How a score is shown: its scale and its name."""
    return (1.0, "MSE") if metric == "mse" else (100.0, "accuracy (%)")


def _format_table(cfg: TrainConfig, rows: list[dict[str, Any]]) -> str:
    metric = cfg.metric
    scale, unit = _score_unit(metric)
    if cfg.dataset in CONFOUNDED_DATASETS:
        name = "ConfoundedShapes" if cfg.dataset == "confounded-shapes" else "ConfoundedClipart"
        tasks = "" if cfg.test_confounding == "neutral" else f"; {cfg.test_confounding} test tasks"
        data = (
            f"{name} ({cfg.confounder}, rho={cfg.rho}{tasks}) {cfg.ways}-way "
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


def _command_train(options: Mapping[str, Any]) -> int:
    from metacrl.cli.build import pick_device
    from metacrl.distributed import DistributedContext, check_meta_batch, launch_info

    cfg = make_config(options)
    device = pick_device(cfg.device)
    with config_errors():  # under torchrun: split each meta-batch evenly, or stop before joining
        check_meta_batch(cfg.meta_batch, launch_info().world_size)
    dist = DistributedContext.from_env(device)
    try:
        code = _train_arms(cfg, options, dist)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()  # waits for rank 0, which writes the results after the others are done
    return code


def _train_arms(cfg: TrainConfig, options: Mapping[str, Any], dist: DistributedContext) -> int:
    from metacrl.cli.build import build_trainer
    from metacrl.train import StopRequest, TrainingInterrupted
    from metacrl.train.plot import plot_curves

    out = Path(cfg.out)
    resume = bool(options.get("resume", False))
    arms = cfg.arms()
    # rank 0 decides (the other processes may not see its files)
    taken = dist.broadcast(any((out / _RUN_NAMES[a] / "checkpoint.pt").exists() for a in arms))
    if not resume and taken:
        raise ConfigError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    # Build everything before writing anything, so that bad settings leave no files behind.
    with config_errors():  # bad data or settings, named by the error
        trainers = [
            build_trainer(
                cfg, arm, out / _RUN_NAMES[arm], progress="no_progress" not in options, dist=dist
            )
            for arm in arms
        ]
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
    runs = {t.label: t.log.read() for t in trainers}
    if plot_curves(runs, out / "curves.png", cfg.metric):
        print(f"learning curves: {out / 'curves.png'}")
    print(f"results: {out / 'results.md'} ({time.perf_counter() - start:.0f} s)")
    return 0


def _command_eval(options: Mapping[str, Any]) -> int:
    from metacrl.cli.build import (
        TEST_SEED,
        arm_label,
        build_dataset,
        build_learner,
        build_model,
        pick_device,
    )
    from metacrl.data import TaskLoader
    from metacrl.train import CheckpointError, evaluate_episodes, load_checkpoint

    path = options["checkpoint"]
    device = pick_device(options["device"])
    ckpt = load_checkpoint(path, map_location=device)
    saved = ckpt.get("config")
    if not isinstance(saved, dict) or not saved or "learner" not in ckpt:
        raise CheckpointError(f"{path} holds no learner trained by metacrl train")
    unknown = sorted(saved.keys() - config_keys())
    if unknown:
        raise CheckpointError(f"{path} has settings metacrl train does not know: {unknown}")
    cfg = TrainConfig(**saved)
    for name in ("test_tasks", "test_confounding"):  # the run's, unless given
        if options[name] is not None:
            cfg = dataclasses.replace(cfg, **{name: options[name]})
    cfg = cfg.resolved()
    metacrl = bool(ckpt["metacrl"])
    learner = build_learner(cfg, build_model(cfg), metacrl).to(device)
    try:
        learner.load_state_dict(ckpt["learner"])
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit its configuration: {err}") from err
    with config_errors():  # e.g. conflict tasks with --ways 1
        test_set = build_dataset(cfg, "test", cfg.test_tasks, TEST_SEED)
    loader = TaskLoader(test_set, batch_size=cfg.meta_batch, num_workers=cfg.workers)
    result = evaluate_episodes(learner, loader, inner_steps=options["inner_steps"])
    scale, unit = _score_unit(result.metric)
    kind = "" if cfg.test_confounding == "neutral" else f" {cfg.test_confounding}"
    print(
        f"{arm_label(cfg, metacrl)} (iteration {ckpt.get('iteration')}): test {unit} "
        f"{scale * result.mean:.2f} ± {scale * result.ci95:.2f} over {result.episodes}{kind} "
        "episodes"
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
    from metacrl.train import CheckpointError

    options = vars(build_parser().parse_args(argv))
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
