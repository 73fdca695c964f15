"""``metacrl train`` and ``metacrl eval``: the parser, the two commands and the entry point."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Mapping, Sequence
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
from metacrl.cli.run_folder import RunFolder
from metacrl.cli.sources import make_config
from metacrl.errors import NonFiniteLossError

if TYPE_CHECKING:
    from metacrl.distributed import DistributedContext
    from metacrl.train import StopRequest

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_USAGE = 2
"""Exit code for bad settings (as argparse uses for malformed options)."""
EXIT_DIVERGED = 1
"""Exit code when training stops on a NaN or infinite loss."""
EXIT_INTERRUPTED = 128 + signal.SIGINT
"""Exit code after Ctrl-C (130)."""
EXIT_TERMINATED = 128 + signal.SIGTERM
"""Exit code after SIGTERM (143), e.g. from ``timeout``, Slurm or Kubernetes."""


def _signal_exit(stop: StopRequest) -> int:
    """The exit code after a stop: 128 + the signal (Ctrl-C's 130 when none was received)."""
    return 128 + (stop.signum if stop.signum is not None else signal.SIGINT)


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
        "--inner-steps",
        "--test-inner-steps",
        dest="test_inner_steps",
        type=int,
        metavar="N",
        help="inner steps at test time (default: the run's)",
    )
    evaluate.add_argument(
        "--test-confounding",
        choices=option_type("test_confounding").choices,
        help="neutral or conflict test tasks of a confounded dataset (see metacrl train --help; "
        "default: the run's)",
    )
    evaluate.add_argument("--device", default="auto", help=option_help("device"))
    evaluate.add_argument(
        "--cache-dir", metavar="PATH", help="where decoded images are cached (default: the run's)"
    )
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
    from metacrl.train import StopRequest

    cfg = make_config(options)
    device = pick_device(cfg.device)
    with config_errors():  # under torchrun: split each meta-batch evenly, or stop before joining
        check_meta_batch(cfg.meta_batch, launch_info().world_size)
    dist = DistributedContext.from_env(device)
    stop = StopRequest()
    try:
        code = _train_arms(cfg, options, dist, stop)
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop at once
        dist.close(wait=False)
        print("metacrl: aborted", file=sys.stderr)
        return _signal_exit(stop)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()  # waits for rank 0, which writes the results after the others are done
    return code


def _train_arms(
    cfg: TrainConfig, options: Mapping[str, Any], dist: DistributedContext, stop: StopRequest
) -> int:
    from metacrl.cli.build import build_trainer
    from metacrl.train import TrainingInterrupted
    from metacrl.train.plot import plot_curves

    folder = RunFolder(cfg.out)
    out = folder.path
    resume = bool(options.get("resume", False))
    overwrite = bool(options.get("overwrite", False))
    arms = cfg.arms()
    # rank 0 decides (the other processes may not see its files)
    problem = dist.broadcast(
        folder.problem(arms, resume=resume, overwrite=overwrite) if dist.is_main else None
    )
    if problem is not None:
        raise ConfigError(problem)
    # Build everything before writing anything, so that bad settings leave no files behind.
    with config_errors():  # bad data or settings, named by the error
        trainers = [
            build_trainer(
                cfg, arm, folder.arm(arm), progress="no_progress" not in options, dist=dist
            )
            for arm in arms
        ]
    if overwrite and dist.is_main:
        removed = folder.clear()
        if removed:
            print(f"metacrl: --overwrite: removed {len(removed)} file(s) of {out}", file=sys.stderr)
    for trainer in trainers:
        if resume:
            trainer.resume()
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
                return _signal_exit(stop)
            rows.append(trainer.test().as_dict())
    if not dist.is_main:  # rank 0 writes the table, the results and the plot
        return 0
    table = _format_table(cfg, rows)
    print("\n" + table)
    markdown, _ = folder.write_results(table, {"config": cfg.as_dict(), "runs": rows})
    runs = {t.label: t.log.read() for t in trainers}
    if plot_curves(runs, out / "curves.png", cfg.metric):
        print(f"learning curves: {out / 'curves.png'}")
    print(f"results: {markdown} ({time.perf_counter() - start:.0f} s)")
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
    if not isinstance(saved, dict) or not saved or "learner" not in ckpt or "metacrl" not in ckpt:
        raise CheckpointError(f"{path} holds no learner trained by metacrl train")
    unknown = sorted(str(key) for key in saved.keys() - config_keys())
    if unknown:
        raise CheckpointError(f"{path} has settings metacrl train does not know: {unknown}")
    # the run's settings, with the test-time options given here; checked in one place
    given = ("test_tasks", "test_inner_steps", "test_confounding", "cache_dir")
    cfg = TrainConfig(**{**saved, **{k: options[k] for k in given if options[k] is not None}})
    cfg = cfg.resolved()
    metacrl = bool(ckpt["metacrl"])
    with config_errors(f"{path}: "):  # settings the stored ones cannot build
        learner = build_learner(cfg, build_model(cfg), metacrl).to(device)
    try:
        learner.load_state_dict(ckpt["learner"])
    except (RuntimeError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{path} does not fit its configuration: {err}") from err
    with config_errors():  # e.g. conflict tasks with --ways 1
        test_set = build_dataset(cfg, "test", cfg.test_tasks, TEST_SEED)
    loader = TaskLoader(test_set, batch_size=cfg.meta_batch, num_workers=cfg.workers)
    result = evaluate_episodes(learner, loader, inner_steps=cfg.test_inner_steps)
    scale, unit = _score_unit(result.metric)
    kind = "" if cfg.test_confounding == "neutral" else f" {cfg.test_confounding}"
    print(
        f"{arm_label(cfg, metacrl)} (iteration {ckpt.get('iteration')}): test {unit} "
        f"{scale * result.mean:.2f} ± {scale * result.ci95:.2f} over {result.episodes}{kind} "
        "episodes"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metacrl``; return the exit code (2 for bad settings, 130 or 143 when stopped).

    The console script calls ``sys.exit(main())``. Bad settings, a missing file, an ``--out``
    that holds another run's results or a checkpoint that does not fit print one line
    ``metacrl: error: ...`` on stderr and return 2, before anything is written. Ctrl-C or
    SIGTERM saves the state after the current meta-step and returns 130 or 143.

    Args:
        argv: The arguments after ``metacrl`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 1 (a loss became NaN or infinite), 2 (bad settings), 130 (Ctrl-C) or
        143 (SIGTERM); after one Ctrl-C or SIGTERM the state is saved.

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
    except NonFiniteLossError as err:
        print(f"metacrl: error: training diverged: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("metacrl: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
