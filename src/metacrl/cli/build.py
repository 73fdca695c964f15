"""Build what a :class:`TrainConfig` describes: datasets, model, learner and trainer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from metacrl.cli.config import CONFOUNDED_DATASETS, ConfigError, TrainConfig
from metacrl.data import (
    CIFARFS,
    FC100,
    ClassImageTasks,
    ConfoundedClipart,
    ConfoundedShapes,
    MiniImagenet,
    Omniglot,
    Sinusoid,
    TieredImagenet,
)
from metacrl.data.clipart_files import DEFAULT_ROOT
from metacrl.learners import ANIL, MAML, CapacityControl, Learner, MetaSGD, ProtoNet
from metacrl.models import MLP, Conv4, ResNet12
from metacrl.regularizer import MetaCRLRegularizer
from metacrl.train import StopRequest, Trainer, TrainSettings
from metacrl.typing import LossName, Split

if TYPE_CHECKING:
    from metacrl.distributed import DistributedContext

__all__ = [
    "TEST_SEED",
    "VAL_SEED",
    "arm_label",
    "build_dataset",
    "build_learner",
    "build_model",
    "build_trainer",
    "pick_device",
    "train_settings",
]

VAL_SEED = 10_000
"""Seed of the validation episodes (the same for every ``--seed``)."""
TEST_SEED = 20_000
"""Seed of the test episodes (the same for every ``--seed``)."""

_LABELS = {"maml": "MAML", "anil": "ANIL", "metasgd": "Meta-SGD", "protonet": "ProtoNet"}
_GRADIENT_LEARNERS: dict[str, type[MAML] | type[ANIL]] = {
    "maml": MAML,
    "anil": ANIL,
    "metasgd": MetaSGD,
}

_BENCHMARKS: dict[
    str, type[MiniImagenet] | type[Omniglot] | type[CIFARFS] | type[FC100] | type[TieredImagenet]
] = {
    "miniimagenet": MiniImagenet,
    "omniglot": Omniglot,
    "cifar-fs": CIFARFS,
    "fc100": FC100,
    "tiered-imagenet": TieredImagenet,
}
"""The benchmarks read from ``--data-root``, by ``--dataset``."""
_GREY_DATASETS = ("omniglot",)
"""The datasets whose images have one channel (the backbone's ``in_channels``)."""

T = TypeVar("T")


def _filled(value: T | None, name: str) -> T:
    """``value``, which :meth:`TrainConfig.resolved` fills in."""
    if value is None:
        raise ConfigError(f"{name} is not set: build from TrainConfig(...).resolved()")
    return value


def pick_device(name: str) -> torch.device:
    """Return the device that ``--device`` names.

    Args:
        name: ``"auto"`` (CUDA when present, else the CPU), or a device name such as ``"cpu"``,
            ``"cuda"`` or ``"cuda:1"``.

    Returns:
        The device.

    Raises:
        ConfigError: If the name is not a device, or CUDA is asked for but not available.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {name!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def arm_label(cfg: TrainConfig, metacrl: bool) -> str:
    """Return the table name of a run, e.g. ``"MAML + MetaCRL"``.

    Args:
        cfg: The run's configuration (its learner and ``first_order``).
        metacrl: Whether the run uses MetaCRL.

    Returns:
        The learner's name, then ``(FO)`` for a first-order gradient learner, and
        ``+ MetaCRL`` for a MetaCRL run or ``+ linear map`` for the capacity control.

    Example:
        >>> arm_label(TrainConfig(learner="anil", first_order=True), metacrl=True)
        'ANIL (FO) + MetaCRL'
    """
    first = " (FO)" if cfg.first_order and cfg.learner != "protonet" else ""
    extra = " + MetaCRL" if metacrl else (" + linear map" if cfg.linear_map else "")
    return _LABELS[cfg.learner] + first + extra


def build_dataset(
    cfg: TrainConfig, split: Split, tasks: int, seed: int, *, progress: bool = True
) -> ConfoundedShapes | ConfoundedClipart | ClassImageTasks | Sinusoid:
    """Return the task dataset of ``split`` with ``tasks`` episodes.

    On the confounded datasets, ``cfg.test_confounding`` makes the kind of the ``"test"``
    split's tasks (neutral or conflict); validation tasks are always neutral, so that settings
    are chosen on neutral tasks. Decoded images are cached in ``cfg.cache_dir`` (default: the
    dataset's own place).

    Args:
        cfg: A resolved configuration; its dataset, task shape and confounding settings are used.
        split: ``"train"``, ``"val"`` or ``"test"`` (sinusoid has no splits and ignores it).
        tasks: The number of episodes (the dataset's ``batchsz``).
        seed: The seed of the task stream.
        progress: Show the progress bar of building an image cache (or resizing a pickle;
            default ``True``).

    Returns:
        A :class:`~metacrl.data.ConfoundedShapes`, :class:`~metacrl.data.ConfoundedClipart`,
        :class:`~metacrl.data.Sinusoid`, or a benchmark: :class:`~metacrl.data.MiniImagenet`,
        :class:`~metacrl.data.Omniglot`, :class:`~metacrl.data.CIFARFS`,
        :class:`~metacrl.data.FC100` or :class:`~metacrl.data.TieredImagenet`.

    Raises:
        ConfigError: If ``cfg`` is not resolved, or its miniimagenet ``data_root`` is one
            pickle file (which would serve the training, validation and test splits alike).

    Example:
        >>> ds = build_dataset(TrainConfig().resolved(), "test", tasks=10, seed=0)
        >>> type(ds).__name__, len(ds), ds.confounder_of(0) is None
        ('ConfoundedShapes', 10, True)
        >>> cfg = TrainConfig(test_confounding="conflict").resolved()
        >>> [build_dataset(cfg, s, 10, 0).eval_confounding for s in ("val", "test")]
        ['neutral', 'conflict']
    """
    if cfg.dataset == "sinusoid":
        return Sinusoid(batchsz=tasks, k_shot=cfg.shots, k_query=cfg.queries, seed=seed)
    size = _filled(cfg.image_size, "image_size")
    if cfg.dataset in CONFOUNDED_DATASETS:
        tasks_settings: dict[str, Any] = dict(
            mode=split,
            n_way=cfg.ways,
            k_shot=cfg.shots,
            k_query=cfg.queries,
            rho=cfg.rho,
            confounder=cfg.confounder,
            image_size=size,
            batchsz=tasks,
            meta_batch_size=cfg.meta_batch,
            seed=seed,
            eval_confounding=cfg.test_confounding if split == "test" else "neutral",
        )
        if cfg.dataset == "confounded-shapes":
            return ConfoundedShapes(**tasks_settings)
        return ConfoundedClipart(
            **tasks_settings,
            root=cfg.data_root or DEFAULT_ROOT,
            cache_dir=cfg.cache_dir,
            progress=progress,
        )
    root = Path(_filled(cfg.data_root, "data_root"))
    if cfg.dataset == "miniimagenet" and root.is_file():
        raise ConfigError(
            f"--data-root {root} is one file, which would serve as the training, validation "
            "and test split alike (training on test classes): give the folder that holds "
            "mini-imagenet-cache-{train,validation,test}.pkl"
        )
    return _BENCHMARKS[cfg.dataset](
        root,
        mode=split,
        n_way=cfg.ways,
        k_shot=cfg.shots,
        k_query=cfg.queries,
        batchsz=tasks,
        resize=size,
        seed=seed,
        cache_dir=cfg.cache_dir,
        progress=progress,
    )


def build_model(cfg: TrainConfig) -> Conv4 | ResNet12 | MLP:
    """Return the backbone with a head of ``ways`` outputs (1 for sinusoid).

    Its input has one channel on omniglot (grey images), three otherwise.

    Args:
        cfg: A resolved configuration (``backbone``, ``hidden``, ``ways``, ``image_size``,
            ``dataset``).

    Returns:
        A :class:`~metacrl.models.Conv4`, :class:`~metacrl.models.ResNet12` or
        :class:`~metacrl.models.MLP`.

    Raises:
        ConfigError: If ``cfg`` is not resolved.

    Example:
        >>> build_model(TrainConfig(hidden=16).resolved()).feature_dim   # Conv4-16 at 32x32
        64
    """
    backbone = _filled(cfg.backbone, "backbone")
    if backbone == "mlp":
        return MLP()
    size = _filled(cfg.image_size, "image_size")
    running = cfg.backend != "vmap"  # vmap takes TaskBatchNorm, which keeps no running stats
    channels = 1 if cfg.dataset in _GREY_DATASETS else 3
    if backbone == "resnet12":
        return ResNet12(
            in_channels=channels, n_way=cfg.ways, image_size=size, track_running_stats=running
        )
    return Conv4(
        in_channels=channels,
        hidden=cfg.hidden,
        n_way=cfg.ways,
        image_size=size,
        track_running_stats=running,
    )


def build_learner(cfg: TrainConfig, model: Conv4 | ResNet12 | MLP, metacrl: bool) -> Learner:
    """Return the configured learner on ``model``, wrapped by MetaCRL when ``metacrl``.

    Args:
        cfg: A resolved configuration (learner, inner loop and MetaCRL settings).
        model: The backbone, e.g. from :func:`build_model`.
        metacrl: Wrap the learner with a :class:`~metacrl.MetaCRLRegularizer` built from
            ``cfg`` (``num_factors`` defaults to the backbone's ``feature_dim``). Without it,
            ``cfg.linear_map`` wraps the learner in a
            :class:`~metacrl.learners.CapacityControl` instead.

    Returns:
        The learner, plain or wrapped.

    Raises:
        ConfigError: If ``cfg`` is not resolved.

    Example:
        >>> cfg = TrainConfig(hidden=16).resolved()
        >>> learner = build_learner(cfg, build_model(cfg), metacrl=True)
        >>> type(learner).__name__, learner.regularizer.num_factors
        ('MetaCRLLearner', 64)
    """
    learner: MAML | ANIL | MetaSGD | ProtoNet
    if cfg.learner == "protonet":
        learner = ProtoNet(model)
    else:
        loss: LossName = "mse" if cfg.metric == "mse" else "cross_entropy"
        learner = _GRADIENT_LEARNERS[cfg.learner](
            model,
            inner_lr=_filled(cfg.inner_lr, "inner_lr"),
            inner_steps=cfg.inner_steps,
            first_order=cfg.first_order,
            test_inner_steps=cfg.test_inner_steps,
            loss=loss,
            backend=cfg.backend,
        )
    if not metacrl:
        return CapacityControl(learner, model.feature_dim) if cfg.linear_map else learner
    regularizer = MetaCRLRegularizer(
        feature_dim=model.feature_dim,
        num_factors=cfg.num_factors,  # None: feature_dim
        lambda_orth=cfg.lambda_orth,
        lambda_gate=cfg.lambda_gate,
        lambda_inv=cfg.lambda_inv,
        invariance=cfg.invariance,
        mode=cfg.mode,
        crl_steps=cfg.crl_steps,
        xi_lr=cfg.xi_lr,
        gr_lr=cfg.gr_lr,
        replay=cfg.replay,
        use_gates=cfg.gates,
        basis=cfg.basis,
        env_queries=cfg.env_queries,
    )
    return regularizer.wrap(learner)


def train_settings(cfg: TrainConfig, metacrl: bool) -> TrainSettings:
    """Return the trainer's settings of one run of ``cfg``.

    Args:
        cfg: A resolved configuration; all of it becomes the settings' ``config`` (what a
            resumed run must match).
        metacrl: Whether the run uses MetaCRL (for its label).

    Returns:
        The iterations, meta-batch, meta learning rate, validation period, workers, metric,
        label and configuration.

    Example:
        >>> settings = train_settings(TrainConfig(dataset="sinusoid"), metacrl=False)
        >>> settings.metric, settings.label, settings.config["dataset"]
        ('mse', 'MAML', 'sinusoid')
    """
    return TrainSettings(
        iterations=cfg.iterations,
        meta_batch=cfg.meta_batch,
        meta_lr=cfg.meta_lr,
        val_every=cfg.val_every,
        workers=cfg.workers,
        metric=cfg.metric,
        label=arm_label(cfg, metacrl),
        config=cfg.as_dict(),
    )


def build_trainer(
    cfg: TrainConfig,
    metacrl: bool,
    run_dir: str | Path,
    *,
    stop: StopRequest | None = None,
    progress: bool = True,
    dist: DistributedContext | None = None,
) -> Trainer:
    """Return the trainer of one run of ``cfg`` (what ``metacrl train`` runs per arm).

    Seeds torch with ``cfg.seed``, then builds the model, the learner (wrapped by MetaCRL when
    ``metacrl``) and the datasets: ``iterations * meta_batch`` training tasks from ``cfg.seed``,
    ``val_tasks`` and ``test_tasks`` episodes from :data:`VAL_SEED` and :data:`TEST_SEED`. So
    both arms of a run start from the same initialisation and see the same tasks.

    Args:
        cfg: A resolved configuration.
        metacrl: Train with MetaCRL.
        run_dir: Folder of this run.
        stop: The stop request checked after every meta-step (default: a new one, never set).
        progress: Show the progress bars of training and of building image caches (default
            ``True``; only on rank 0).
        dist: The process group, whose device is used (default: one process on the CPU).

    Returns:
        The trainer; nothing is written yet (except an image cache the data needs).

    Raises:
        ConfigError: If ``cfg`` is not resolved.
        ValueError: If the data or the model reject the settings, or ``cfg.meta_batch`` does
            not split evenly over the processes.
        OSError: If the data cannot be read.

    Example:
        >>> import tempfile
        >>> cfg = TrainConfig(ways=2, queries=1, hidden=4, image_size=16, meta_batch=2,
        ...                   iterations=2, val_tasks=2, test_tasks=2).resolved()
        >>> with tempfile.TemporaryDirectory() as d:
        ...     trainer = build_trainer(cfg, metacrl=True, run_dir=d, progress=False)
        >>> trainer.label, len(trainer.train_set), trainer.settings.config == cfg.as_dict()
        ('MAML + MetaCRL', 4, True)
    """
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    learner = build_learner(cfg, model, metacrl)
    bars = progress and (dist is None or dist.is_main)
    return Trainer(
        learner,
        build_dataset(cfg, "train", cfg.iterations * cfg.meta_batch, cfg.seed, progress=bars),
        build_dataset(cfg, "val", cfg.val_tasks, VAL_SEED, progress=bars),
        build_dataset(cfg, "test", cfg.test_tasks, TEST_SEED, progress=bars),
        train_settings(cfg, metacrl),
        run_dir,
        stop=stop,
        progress=progress,
        dist=dist,
    )
