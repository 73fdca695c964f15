"""The settings of a training run: defaults, a TOML config file and command-line overrides."""

from __future__ import annotations

import dataclasses
import tomllib
import types
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

__all__ = ["DATASETS", "LEARNERS", "BACKBONES", "ConfigError", "TrainConfig", "load_config"]

DATASETS = ("confounded-shapes", "sinusoid", "miniimagenet")
"""The values of ``--dataset``."""
LEARNERS = ("maml", "anil", "metasgd", "protonet")
"""The values of ``--learner``."""
BACKBONES = ("conv4", "resnet12", "mlp")
"""The values of ``--backbone``."""
INVARIANCES = ("irm", "vrex")
SCHEDULES = ("alternating", "joint")
CONFOUNDERS = ("switch", "fixed", "task")
BACKENDS = ("func", "higher", "vmap")


class ConfigError(ValueError):
    """A setting is unknown or invalid (the CLI prints it on one line and exits with code 2).

    Example:
        >>> try:
        ...     TrainConfig(learner="reptile").resolved()
        ... except ConfigError as err:
        ...     print(err)
        unknown learner 'reptile': choose one of maml, anil, metasgd, protonet
    """


@dataclass
class TrainConfig:
    """Every setting of ``metacrl train``; the config file's keys are these names.

    Each field is also a command-line option (``inner_lr`` is ``--inner-lr``). ``None`` means
    "the dataset's default" where noted; :meth:`resolved` fills those in and checks every value.

    Attributes:
        dataset: ``"confounded-shapes"`` (default), ``"sinusoid"`` or ``"miniimagenet"``.
        data_root: The miniImageNet folder (``images/`` plus ``train/val/test.csv``, or the
            ``mini-imagenet-cache-*.pkl`` files); required for ``miniimagenet``.
        learner: ``"maml"`` (default), ``"anil"``, ``"metasgd"`` or ``"protonet"``.
        backbone: ``"conv4"``, ``"resnet12"`` or ``"mlp"`` (default ``None``: ``conv4`` for
            images, ``mlp`` for sinusoid).
        hidden: Channels of each Conv4 block (default 32, MAML's; 64 is ProtoNet's).
        image_size: Image side in pixels (default ``None``: 32 for confounded-shapes, 84 for
            miniimagenet).
        metacrl: ``True`` trains only with MetaCRL, ``False`` only without (default ``None``:
            both, side by side, from the same initialisation and task stream).
        ways: Classes per task, N (default 5).
        shots: Support examples per class, K (default 1).
        queries: Query examples per class (default 15).
        inner_lr: Inner-loop step size (default ``None``: 0.05 on confounded-shapes, 0.01
            otherwise, 0.1 for ANIL).
        inner_steps: Inner-loop steps in meta-training (default 3).
        test_inner_steps: Inner-loop steps at validation and test (default ``None``:
            ``inner_steps``).
        meta_batch: Tasks per meta-batch (default 4).
        iterations: Meta-iterations, i.e. meta-batches (default 300).
        meta_lr: Adam learning rate of the meta-update (default 1e-3).
        first_order: First-order meta-gradients (default ``False``: second order).
        backend: Inner-loop backend, ``"func"`` (default), ``"higher"`` or ``"vmap"`` (all
            tasks of a meta-batch in one vectorised inner loop; MAML, ANIL and Meta-SGD; the
            backbone's BatchNorm then keeps no running statistics).
        rho: ConfoundedShapes: probability that the batch's nuisance follows the label
            (default 0.9; 0 is the unconfounded oracle).
        confounder: ConfoundedShapes: ``"switch"`` (default), ``"fixed"`` or ``"task"``.
        num_factors: MetaCRL: number of factors ``M`` (default ``None``: the backbone's
            ``feature_dim``).
        lambda_inv: MetaCRL: weight of the invariance penalty (default 1.0).
        lambda_orth: MetaCRL: weight of the orthogonality term (default 1e-3).
        lambda_gate: MetaCRL: weight of the gate term (default 0.1).
        invariance: MetaCRL: ``"vrex"`` (default: the validation sweep's winner, see
            ``docs/results.md``) or ``"irm"`` (the library's default, as in the paper).
        mode: MetaCRL: schedule, ``"alternating"`` (default) or ``"joint"``.
        crl_steps: MetaCRL: causal steps per meta-iteration, alternating mode (default 5).
        replay: MetaCRL: earlier meta-batches used as extra environments (default 3).
        gates: MetaCRL: per-task factor gates (default ``True``; ``False`` is the ablation
            with every gate open).
        val_every: Validate (and checkpoint) every this many iterations (default 100).
        val_tasks: Validation episodes (default 100).
        test_tasks: Test episodes of the final table (default 200).
        workers: Data-loading worker processes (default 0).
        device: ``"auto"`` (default: CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: Seed of the initialisation and the task stream (default 0).
        out: Output folder (default ``"runs/metacrl"``).

    Example:
        >>> cfg = TrainConfig(learner="anil", shots=5).resolved()
        >>> cfg.inner_lr, cfg.backbone, cfg.image_size, cfg.arms()
        (0.1, 'conv4', 32, [False, True])
    """

    dataset: str = "confounded-shapes"
    data_root: str | None = None
    learner: str = "maml"
    backbone: str | None = None  # conv4 for images, mlp for sinusoid
    hidden: int = 32
    image_size: int | None = None  # 32 for confounded-shapes, 84 for miniimagenet
    metacrl: bool | None = None  # None: train both, with and without MetaCRL
    ways: int = 5
    shots: int = 1
    queries: int = 15
    inner_lr: float | None = None  # 0.05 confounded-shapes, 0.01 otherwise; ANIL 0.1
    inner_steps: int = 3
    test_inner_steps: int | None = None
    meta_batch: int = 4
    iterations: int = 300
    meta_lr: float = 1e-3
    first_order: bool = False
    backend: str = "func"
    rho: float = 0.9
    confounder: str = "switch"
    num_factors: int | None = None  # the backbone's feature_dim
    lambda_inv: float = 1.0
    lambda_orth: float = 1e-3
    lambda_gate: float = 0.1
    invariance: str = "vrex"
    mode: str = "alternating"
    crl_steps: int = 5
    replay: int = 3
    gates: bool = True
    val_every: int = 100
    val_tasks: int = 100
    test_tasks: int = 200
    workers: int = 0
    device: str = "auto"
    seed: int = 0
    out: str = "runs/metacrl"

    def resolved(self) -> TrainConfig:
        """Return a copy with the dataset-dependent defaults filled in, after checking values.

        Fills ``backbone``, ``image_size``, ``inner_lr`` and ``test_inner_steps`` where they
        are ``None``; ``num_factors=None`` is left for the model builder (the backbone's
        ``feature_dim``). This configuration is not modified.

        Returns:
            The completed, checked copy.

        Raises:
            ConfigError: If a choice is unknown, a count or rate is out of range, or settings
                conflict (e.g. ``protonet`` on ``sinusoid``, ``miniimagenet`` without
                ``data_root``).

        Example:
            >>> cfg = TrainConfig(dataset="sinusoid")
            >>> done = cfg.resolved()
            >>> done.backbone, done.inner_lr, done.test_inner_steps, cfg.backbone
            ('mlp', 0.01, 3, None)
        """
        cfg = dataclasses.replace(self)
        _choice("dataset", cfg.dataset, DATASETS)
        _choice("learner", cfg.learner, LEARNERS)
        _choice("invariance", cfg.invariance, INVARIANCES)
        _choice("mode", cfg.mode, SCHEDULES)
        _choice("confounder", cfg.confounder, CONFOUNDERS)
        _choice("backend", cfg.backend, BACKENDS)
        if cfg.backbone is None:
            cfg.backbone = "mlp" if cfg.dataset == "sinusoid" else "conv4"
        _choice("backbone", cfg.backbone, BACKBONES)
        if cfg.dataset == "sinusoid" and cfg.backbone != "mlp":
            raise ConfigError("--backbone for sinusoid must be mlp")
        if cfg.dataset != "sinusoid" and cfg.backbone == "mlp":
            raise ConfigError(f"--backbone mlp does not take images ({cfg.dataset})")
        if cfg.backend == "vmap" and cfg.learner == "protonet":
            raise ConfigError("--backend vmap is for maml, anil and metasgd, not protonet")
        if cfg.dataset == "sinusoid" and cfg.learner == "protonet":
            raise ConfigError("--learner protonet is a classifier; sinusoid is regression")
        if cfg.dataset == "miniimagenet" and not cfg.data_root:
            raise ConfigError("--dataset miniimagenet needs --data-root PATH")
        if cfg.image_size is None:
            cfg.image_size = 84 if cfg.dataset == "miniimagenet" else 32
        if cfg.inner_lr is None:
            if cfg.learner == "anil":
                cfg.inner_lr = 0.1
            else:
                cfg.inner_lr = 0.05 if cfg.dataset == "confounded-shapes" else 0.01
        if cfg.test_inner_steps is None:
            cfg.test_inner_steps = cfg.inner_steps
        positive = (
            "ways",
            "shots",
            "queries",
            "meta_batch",
            "iterations",
            "hidden",
            "val_every",
            "val_tasks",
            "test_tasks",
            "image_size",
        )
        for name in positive:
            _positive_int(name, getattr(cfg, name))
        if cfg.num_factors is not None:
            _positive_int("num_factors", cfg.num_factors)
        for name in ("inner_steps", "test_inner_steps", "crl_steps", "replay", "workers", "seed"):
            _positive_int(name, getattr(cfg, name), minimum=0)
        for name in ("inner_lr", "meta_lr"):
            value = getattr(cfg, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a number > 0, got {value!r}")
        if not 0.0 <= cfg.rho <= 1.0:
            raise ConfigError(f"--rho must lie in [0, 1], got {cfg.rho!r}")
        return cfg

    def arms(self) -> list[bool]:
        """Which runs to make: ``[False, True]`` (both), ``[True]`` or ``[False]``.

        Returns:
            The ``metacrl`` flag of each run, the run without MetaCRL first.

        Example:
            >>> TrainConfig().arms(), TrainConfig(metacrl=True).arms()
            ([False, True], [True])
        """
        return [False, True] if self.metacrl is None else [bool(self.metacrl)]

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary (for checkpoints and logs).

        Returns:
            ``{field name: value}`` for every field, in declaration order.

        Example:
            >>> d = TrainConfig(learner="anil").as_dict()
            >>> d["learner"], d["inner_lr"], len(d) == len(config_keys())
            ('anil', None, True)
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}"
        )


def config_keys() -> set[str]:
    """The names a config file may set."""
    return {f.name for f in fields(TrainConfig)}


def check_types(values: dict[str, Any], source: str) -> None:
    """Raise :class:`ConfigError` if a value does not have its setting's type."""
    hints = get_type_hints(TrainConfig)
    for name, value in values.items():
        hint = hints[name]
        allowed = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if float in allowed:
            allowed = (*allowed, int)
        ok = any(
            (value is None and kind is type(None))
            or (isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool))
            for kind in allowed
            if isinstance(kind, type)
        )
        if not ok:
            names = " or ".join("none" if k is type(None) else k.__name__ for k in allowed)
            raise ConfigError(f"{source}: {name} must be {names}, got {value!r}")


def load_config(path: str | Path) -> dict[str, Any]:
    r"""Read a TOML config file; every key must be a :class:`TrainConfig` field.

    Keys may use dashes or underscores (``inner-lr`` or ``inner_lr``). Values are type-checked
    here; ranges are checked by :meth:`TrainConfig.resolved`.

    Args:
        path: The TOML file.

    Returns:
        The settings it makes, keyed by field name (underscores).

    Raises:
        ConfigError: If the file is missing, is not valid TOML, sets an unknown key, or gives
            a value of the wrong type.

    Example:
        >>> import tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = os.path.join(d, "run.toml")
        ...     _ = open(path, "w").write('learner = "protonet"\ninner-steps = 5\n')
        ...     load_config(path)
        {'learner': 'protonet', 'inner_steps': 5}
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    try:
        raw = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {file} is not valid TOML: {err}") from err
    known = config_keys()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(
                f"config file {file}: unknown key {key!r} (known keys: {', '.join(sorted(known))})"
            )
        values[name] = value
    check_types(values, f"config file {file}")
    return values
