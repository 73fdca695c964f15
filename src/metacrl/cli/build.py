"""Build the datasets, model and learner that a :class:`TrainConfig` describes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metacrl.cli.config import ConfigError, TrainConfig
from metacrl.learners import ANIL, MAML, Learner, MetaLearner, MetaSGD, ProtoNet
from metacrl.learners.losses import LossName
from metacrl.models import MLP, Conv4, ResNet12
from metacrl.regularizer import MetaCRLRegularizer

__all__ = ["build_dataset", "build_learner", "build_model", "pick_device"]


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


def build_dataset(cfg: TrainConfig, mode: str, tasks: int, seed: int) -> Any:
    """Return the task dataset of ``mode`` (``train``/``val``/``test``) with ``tasks`` episodes.

    Args:
        cfg: A resolved configuration; its dataset, task shape and confounding settings are used.
        mode: ``"train"``, ``"val"`` or ``"test"`` (sinusoid has no splits and ignores it).
        tasks: The number of episodes (the dataset's ``batchsz``).
        seed: The seed of the task stream.

    Returns:
        A :class:`~metacrl.data.ConfoundedShapes`, :class:`~metacrl.data.Sinusoid` or
        :class:`~metacrl.data.MiniImagenet`.

    Example:
        >>> ds = build_dataset(TrainConfig().resolved(), "test", tasks=10, seed=0)
        >>> type(ds).__name__, len(ds), ds.confounder_of(0) is None
        ('ConfoundedShapes', 10, True)
    """
    from metacrl.data import ConfoundedShapes, MiniImagenet, Sinusoid

    if cfg.dataset == "sinusoid":
        return Sinusoid(batchsz=tasks, k_shot=cfg.shots, k_query=cfg.queries, seed=seed)
    if cfg.dataset == "confounded-shapes":
        return ConfoundedShapes(
            mode=mode,
            n_way=cfg.ways,
            k_shot=cfg.shots,
            k_query=cfg.queries,
            rho=cfg.rho,
            confounder=cfg.confounder,
            image_size=cfg.image_size or 32,
            batchsz=tasks,
            meta_batch_size=cfg.meta_batch,
            seed=seed,
        )
    assert cfg.data_root is not None
    return MiniImagenet(
        cfg.data_root,
        mode=mode,
        n_way=cfg.ways,
        k_shot=cfg.shots,
        k_query=cfg.queries,
        batchsz=tasks,
        resize=cfg.image_size or 84,
        seed=seed,
    )


def build_model(cfg: TrainConfig) -> nn.Module:
    """Return the backbone with a head of ``ways`` outputs (1 for sinusoid).

    Args:
        cfg: A resolved configuration (``backbone``, ``hidden``, ``ways``, ``image_size``).

    Returns:
        A :class:`~metacrl.models.Conv4`, :class:`~metacrl.models.ResNet12` or
        :class:`~metacrl.models.MLP`.

    Example:
        >>> build_model(TrainConfig(hidden=16).resolved()).feature_dim   # Conv4-16 at 32x32
        64
    """
    size = cfg.image_size or 32
    running = cfg.backend != "vmap"  # vmap takes TaskBatchNorm, which keeps no running stats
    if cfg.backbone == "mlp":
        return MLP()
    if cfg.backbone == "resnet12":
        return ResNet12(n_way=cfg.ways, image_size=size, track_running_stats=running)
    return Conv4(hidden=cfg.hidden, n_way=cfg.ways, image_size=size, track_running_stats=running)


def build_learner(cfg: TrainConfig, model: nn.Module, metacrl: bool) -> Learner:
    """Return the configured learner on ``model``, wrapped by MetaCRL when ``metacrl``.

    Args:
        cfg: A resolved configuration (learner, inner loop and MetaCRL settings).
        model: The backbone, e.g. from :func:`build_model`.
        metacrl: Wrap the learner with a :class:`~metacrl.MetaCRLRegularizer` built from
            ``cfg`` (``num_factors`` defaults to the backbone's ``feature_dim``).

    Returns:
        The learner, plain or wrapped.

    Example:
        >>> cfg = TrainConfig(hidden=16).resolved()
        >>> learner = build_learner(cfg, build_model(cfg), metacrl=True)
        >>> type(learner).__name__, learner.regularizer.num_factors
        ('MetaCRLLearner', 64)
    """
    loss: LossName = "mse" if cfg.dataset == "sinusoid" else "cross_entropy"
    learner: MetaLearner
    if cfg.learner == "protonet":
        learner = ProtoNet(model)
    else:
        classes: dict[str, type[MAML] | type[ANIL]] = {
            "maml": MAML,
            "anil": ANIL,
            "metasgd": MetaSGD,
        }
        learner = classes[cfg.learner](
            model,
            inner_lr=float(cfg.inner_lr or 0.01),
            inner_steps=cfg.inner_steps,
            first_order=cfg.first_order,
            test_inner_steps=cfg.test_inner_steps,
            loss=loss,
            backend=cfg.backend,  # type: ignore[arg-type]
        )
    if metacrl:
        feature_dim = int(model.feature_dim)  # type: ignore[arg-type]
        reg = MetaCRLRegularizer(
            feature_dim=feature_dim,
            num_factors=cfg.num_factors or feature_dim,
            lambda_orth=cfg.lambda_orth,
            lambda_gate=cfg.lambda_gate,
            lambda_inv=cfg.lambda_inv,
            invariance=cfg.invariance,  # type: ignore[arg-type]
            mode=cfg.mode,  # type: ignore[arg-type]
            crl_steps=cfg.crl_steps,
            replay=cfg.replay,
            use_gates=cfg.gates,
        )
        return reg.wrap(learner)
    return learner
