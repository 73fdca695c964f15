"""The settings of a training run: their types, help, defaults and checks.

Each setting is a :class:`TrainConfig` field whose metadata holds its help text (and, for
numbers, its allowed range). ``metacrl train --help``, the class's ``Attributes`` and the
options table of ``docs/cli.md`` are all made from it (see :mod:`metacrl.cli.options`); the
config file and the command line are read by :mod:`metacrl.cli.sources`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from metacrl.regularizer.defaults import DEFAULTS
from metacrl.typing import (
    Backend,
    ConfounderKind,
    EvalConfounding,
    FactorBasis,
    Invariance,
    Schedule,
)
from metacrl.validation import check_choice, check_float, check_int, check_probability

if TYPE_CHECKING:
    from metacrl.train.settings import Metric

__all__ = [
    "BENCHMARK_DATASETS",
    "CONFOUNDED_DATASETS",
    "BackboneName",
    "ConfigError",
    "DatasetName",
    "LearnerName",
    "OptionType",
    "TrainConfig",
    "check_values",
    "config_errors",
    "config_keys",
    "dataset_default",
    "describe_default",
    "option_flag",
    "option_help",
    "option_type",
]

DatasetName = Literal[
    "confounded-shapes",
    "confounded-clipart",
    "sinusoid",
    "miniimagenet",
    "omniglot",
    "cifar-fs",
    "fc100",
    "tiered-imagenet",
]
"""The values of ``--dataset``."""
LearnerName = Literal["maml", "anil", "metasgd", "protonet"]
"""The values of ``--learner``."""
BackboneName = Literal["conv4", "resnet12", "mlp"]
"""The values of ``--backbone``."""
CONFOUNDED_DATASETS: tuple[DatasetName, ...] = ("confounded-shapes", "confounded-clipart")
"""The datasets whose training tasks tie a nuisance to the label (``--rho``, ``--confounder``,
``--test-confounding``)."""
BENCHMARK_DATASETS: tuple[DatasetName, ...] = (
    "miniimagenet",
    "omniglot",
    "cifar-fs",
    "fc100",
    "tiered-imagenet",
)
"""The standard few-shot benchmarks, read from the user's files (``--data-root`` required)."""

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is unknown or invalid (the CLI prints it on one line and exits with code 2).

    Example:
        >>> try:
        ...     TrainConfig(learner="reptile").resolved()
        ... except ConfigError as err:
        ...     print(err)
        --learner must be one of 'maml', 'anil', 'metasgd', 'protonet', got 'reptile'
    """


@contextmanager
def config_errors(source: str = "") -> Iterator[None]:
    """Turn a ``ValueError``, ``TypeError`` or ``OSError`` inside into a :class:`ConfigError`.

    The one place where the argument checks of :mod:`metacrl.validation` (and the errors of
    the objects the settings build) become the one-line errors of the command line.

    Args:
        source: Put before the message, e.g. ``"config file run.toml: "`` (default: nothing).

    Yields:
        Nothing; the body runs inside.

    Raises:
        ConfigError: The error raised inside, with its message (a ``ConfigError`` passes).

    Example:
        >>> with config_errors("run.toml: "):
        ...     check_int("--ways", 0)
        Traceback (most recent call last):
            ...
        metacrl.cli.config.ConfigError: run.toml: --ways must be an integer >= 1, got 0
    """
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, OSError) as err:
        raise ConfigError(f"{source}{err}") from err


# ---------------------------------------------------------------- dataset-dependent defaults
_BY_DATASET: Mapping[str, Mapping[DatasetName, Any]] = types.MappingProxyType(
    {
        "backbone": {
            "confounded-shapes": "conv4",
            "confounded-clipart": "conv4",
            "sinusoid": "mlp",
            "miniimagenet": "conv4",
            "omniglot": "conv4",
            "cifar-fs": "conv4",
            "fc100": "conv4",
            "tiered-imagenet": "conv4",
        },
        "image_size": {
            "confounded-shapes": 32,
            "confounded-clipart": 32,
            "sinusoid": 32,
            "miniimagenet": 84,
            "omniglot": 28,
            "cifar-fs": 32,
            "fc100": 32,
            "tiered-imagenet": 84,
        },
        "inner_lr": {
            "confounded-shapes": 0.05,
            "confounded-clipart": 0.05,
            "sinusoid": 0.01,
            "miniimagenet": 0.01,
            "omniglot": 0.4,
            "cifar-fs": 0.01,
            "fc100": 0.01,
            "tiered-imagenet": 0.01,
        },
    }
)
_BY_LEARNER: Mapping[str, Mapping[LearnerName, Any]] = types.MappingProxyType(
    {"inner_lr": {"anil": 0.1}}
)
_METRIC: Mapping[DatasetName, Metric] = types.MappingProxyType(
    {
        "confounded-shapes": "accuracy",
        "confounded-clipart": "accuracy",
        "sinusoid": "mse",
        "miniimagenet": "accuracy",
        "omniglot": "accuracy",
        "cifar-fs": "accuracy",
        "fc100": "accuracy",
        "tiered-imagenet": "accuracy",
    }
)


def dataset_default(name: str, dataset: DatasetName, learner: LearnerName) -> Any:
    """Return the default of a setting that depends on the dataset (and maybe the learner).

    The one home of those rules: :meth:`TrainConfig.resolved` fills ``None`` settings from
    it, and :func:`describe_default` describes it for ``--help`` and the docs.

    Args:
        name: ``"backbone"``, ``"image_size"`` or ``"inner_lr"``.
        dataset: The dataset.
        learner: The learner (ANIL has its own ``inner_lr``).

    Returns:
        The default value.

    Raises:
        KeyError: If ``name`` does not depend on the dataset.

    Example:
        >>> dataset_default("inner_lr", "sinusoid", "maml")
        0.01
        >>> dataset_default("inner_lr", "sinusoid", "anil")
        0.1
    """
    by_learner = _BY_LEARNER.get(name, {})
    return by_learner[learner] if learner in by_learner else _BY_DATASET[name][dataset]


# ---------------------------------------------------------------- the settings
def _option(default: T, help_text: str, **rules: Any) -> T:
    """A :class:`TrainConfig` field: its default, help text and value rules.

    ``rules``: ``minimum`` (integers; default 1), ``above`` / ``at_least`` / ``probability``
    (numbers), ``default_text`` (the default in words, when it is ``None``) and ``metavar``
    (the argument's name in ``--help``, for a plain string).
    """
    return dataclasses.field(default=default, metadata={"help": help_text, **rules})


@dataclass
class TrainConfig:
    """Every setting of ``metacrl train``; the config file's keys are these names.

    Each field is also a command-line option (``inner_lr`` is ``--inner-lr``). ``None`` means
    a default that depends on other settings, e.g. the dataset's; :meth:`resolved` fills those
    in and checks every value. The ``Attributes`` section is generated at import from each
    field's help text (:func:`option_help`), as are ``--help`` and the docs' options table.

    Example:
        >>> cfg = TrainConfig(learner="anil", shots=5).resolved()
        >>> cfg.inner_lr, cfg.backbone, cfg.image_size, cfg.arms()
        (0.1, 'conv4', 32, [False, True])
    """

    dataset: DatasetName = _option("confounded-shapes", "the task distribution")
    data_root: str | None = _option(
        None,
        "the data folder (required for the benchmarks): miniimagenet's (images/ plus "
        "train/val/test.csv, or the mini-imagenet-cache-*.pkl files), omniglot's (torchvision's "
        "root, holding omniglot-py/), cifar-fs's and fc100's (torchvision's root, holding "
        "cifar-100-python/), tiered-imagenet's ({train,val,test}_images.npz and _labels.pkl), "
        "or confounded-clipart's drawings",
        default_text="/usr/share/openclipart/png for confounded-clipart",
        metavar="PATH",
    )
    learner: LearnerName = _option("maml", "the meta-learner; protonet is for classification")
    backbone: BackboneName | None = _option(None, "the network")
    hidden: int = _option(32, "channels of each Conv4 block; 32 is MAML's network, 64 ProtoNet's")
    image_size: int | None = _option(None, "image side in pixels")
    metacrl: bool | None = _option(
        None,
        "train only with MetaCRL (--metacrl), or only without it (--no-metacrl)",
        default_text="both, side by side, from the same initialisation and task stream",
    )
    ways: int = _option(5, "classes per task (N-way)")
    shots: int = _option(1, "support examples per class (K-shot)")
    queries: int = _option(15, "query examples per class")
    inner_lr: float | None = _option(None, "inner-loop step size", above=0)
    inner_steps: int = _option(3, "inner-loop steps in meta-training", minimum=0)
    test_inner_steps: int | None = _option(
        None, "inner-loop steps at validation and test", minimum=0, default_text="--inner-steps"
    )
    meta_batch: int = _option(4, "tasks per meta-batch")
    iterations: int = _option(300, "meta-iterations, i.e. meta-batches; 300 take minutes on a CPU")
    meta_lr: float = _option(1e-3, "Adam learning rate of the meta-update", above=0)
    first_order: bool = _option(False, "first-order meta-gradients (FOMAML)")
    backend: Backend = _option(
        "func",
        "inner-loop backend: torch.func, higher, or vmap, which runs all tasks of a "
        "meta-batch in one vectorised inner loop (maml, anil and metasgd; the backbone then "
        "uses TaskBatchNorm, without running statistics)",
    )
    linear_map: bool = _option(
        False,
        "the run without MetaCRL gets a meta-learned d x d linear map before the head, held "
        "fixed in the inner loop and trained by the meta-loss only: the capacity control for "
        "MetaCRL's extra parameters",
    )
    rho: float = _option(
        0.9,
        "probability that the batch's tied nuisance follows the label; 0 is the unconfounded "
        "oracle",
        probability=True,
    )
    confounder: ConfounderKind = _option(
        "switch",
        "how the nuisance is tied to the label: a new one per meta-batch (switch), always the "
        "same (fixed), or one per task (task)",
    )
    test_confounding: EvalConfounding = _option(
        "neutral",
        "the test tasks: every nuisance independent of the label (neutral), or one tied to it "
        "by one mapping in the support set and another in the query set (conflict: the drop "
        "from neutral measures reliance on the nuisance); validation stays neutral",
    )
    num_factors: int | None = _option(
        DEFAULTS.num_factors,
        "number of factors M",
        default_text="the backbone's feature size (feature_dim)",
    )
    lambda_inv: float = _option(DEFAULTS.lambda_inv, "weight of the invariance penalty", at_least=0)
    lambda_orth: float = _option(
        DEFAULTS.lambda_orth, "weight of the orthogonality term", at_least=0
    )
    lambda_gate: float = _option(
        DEFAULTS.lambda_gate, "weight of the gate sparsity term", at_least=0
    )
    invariance: Invariance = _option(
        DEFAULTS.invariance,
        "invariance penalty: V-REx (vrex, the variance of the tasks' losses) or IRMv1 (irm)",
    )
    mode: Schedule = _option(
        DEFAULTS.mode,
        "schedule: causal steps before each meta-update (alternating), or one joint step",
    )
    crl_steps: int = _option(
        DEFAULTS.crl_steps, "causal steps per meta-iteration (alternating mode)", minimum=0
    )
    xi_lr: float = _option(DEFAULTS.xi_lr, "step size of the causal steps for Xi", above=0)
    gr_lr: float = _option(
        DEFAULTS.gr_lr, "step size of the causal steps for the gate network f_gr", above=0
    )
    basis: FactorBasis = _option(
        DEFAULTS.basis,
        "factor directions from Xi: unit columns scaled to spectral norm one (normalized), or "
        "an orthonormal basis of its columns (orthonormal, needs num_factors <= feature_dim)",
    )
    replay: int = _option(
        DEFAULTS.replay, "earlier meta-batches used as extra environments", minimum=0
    )
    env_queries: int | None = _option(
        DEFAULTS.env_queries,
        "at most this many query examples per task in the environments, evenly spread "
        "(fewer: a cheaper causal step; at least the queries a task has: all of them)",
    )
    gates: bool = _option(
        DEFAULTS.use_gates, "per-task factor gates (--no-gates opens every gate: an ablation)"
    )
    val_every: int = _option(
        100, "validate, keep the best model and write checkpoint.pt every this many iterations"
    )
    val_tasks: int = _option(100, "validation episodes")
    test_tasks: int = _option(200, "test episodes of the final table; 600 for a paper's table")
    workers: int = _option(
        0,
        "data-loading worker processes (the task stream is the same for any number)",
        minimum=0,
    )
    device: str = _option(
        "auto",
        "the device: auto (CUDA when present), cpu, cuda, cuda:1 and so on",
        metavar="DEVICE",
    )
    seed: int = _option(0, "seed of the initialisation and the training task stream", minimum=0)
    out: str = _option("runs/metacrl", "output folder", metavar="PATH")
    cache_dir: str | None = _option(
        None,
        "where decoded images are cached (the benchmarks, except miniimagenet's pickles, and "
        "confounded-clipart): a folder shared between accounts, or on a faster disk",
        default_text="DATA_ROOT/cache for the benchmarks, $XDG_CACHE_HOME/metacrl (else "
        "~/.cache/metacrl) for confounded-clipart",
        metavar="PATH",
    )

    @property
    def metric(self) -> Metric:
        """The score of the dataset's tasks: ``"mse"`` (sinusoid) or ``"accuracy"``.

        Example:
            >>> TrainConfig().metric, TrainConfig(dataset="sinusoid").metric
            ('accuracy', 'mse')
        """
        return _METRIC[self.dataset]

    def resolved(self) -> TrainConfig:
        """Return a copy with the defaults that depend on other settings filled in, checked.

        Fills ``backbone``, ``image_size`` and ``inner_lr`` (:func:`dataset_default`) and
        ``test_inner_steps`` (``inner_steps``) where they are ``None``; ``num_factors=None``
        is left for the model builder (the backbone's ``feature_dim``). Numbers are converted
        to ``int`` or ``float``. This configuration is not modified.

        Returns:
            The completed, checked copy.

        Raises:
            ConfigError: If a choice is unknown, a value has the wrong type or is out of
                range, or settings conflict (e.g. ``protonet`` on ``sinusoid``, a benchmark
                such as ``miniimagenet`` without ``data_root``, conflict test tasks on a
                dataset without nuisances).

        Example:
            >>> cfg = TrainConfig(dataset="sinusoid")
            >>> done = cfg.resolved()
            >>> done.backbone, done.inner_lr, done.test_inner_steps, cfg.backbone
            ('mlp', 0.01, 3, None)
        """
        cfg = TrainConfig(**check_values(self.as_dict()))
        filled: dict[str, Any] = {
            name: dataset_default(name, cfg.dataset, cfg.learner)
            for name in _BY_DATASET
            if getattr(cfg, name) is None
        }
        if cfg.test_inner_steps is None:
            filled["test_inner_steps"] = cfg.inner_steps
        cfg = dataclasses.replace(cfg, **filled)
        if cfg.dataset == "sinusoid" and cfg.backbone != "mlp":
            raise ConfigError("--backbone for sinusoid must be mlp")
        if cfg.dataset != "sinusoid" and cfg.backbone == "mlp":
            raise ConfigError(f"--backbone mlp does not take images ({cfg.dataset})")
        if cfg.backend == "vmap" and cfg.learner == "protonet":
            raise ConfigError("--backend vmap is for maml, anil and metasgd, not protonet")
        if cfg.metric == "mse" and cfg.learner == "protonet":
            raise ConfigError(f"--learner protonet is a classifier; {cfg.dataset} is regression")
        if cfg.dataset in BENCHMARK_DATASETS and not cfg.data_root:
            raise ConfigError(f"--dataset {cfg.dataset} needs --data-root PATH")
        if cfg.test_confounding != "neutral" and cfg.dataset not in CONFOUNDED_DATASETS:
            confounded = _and(list(CONFOUNDED_DATASETS))
            raise ConfigError(
                f"--test-confounding {cfg.test_confounding} is for {confounded}, not {cfg.dataset}"
            )
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


_FIELDS: Mapping[str, dataclasses.Field[Any]] = types.MappingProxyType(
    {f.name: f for f in fields(TrainConfig)}
)


# ---------------------------------------------------------------- what each field says
class OptionType(NamedTuple):
    """The type of a setting, as the command line and the config file read it.

    Attributes:
        kind: ``bool``, ``int``, ``float`` or ``str``.
        choices: The allowed strings of a ``Literal`` setting (otherwise empty).
        optional: Whether ``None`` is allowed (a default that depends on other settings).

    Example:
        >>> option_type("backbone")
        OptionType(kind=<class 'str'>, choices=('conv4', 'resnet12', 'mlp'), optional=True)
    """

    kind: type
    choices: tuple[str, ...]
    optional: bool


def option_type(name: str) -> OptionType:
    """Return the type of setting ``name``, read from its annotation.

    Args:
        name: A :class:`TrainConfig` field name.

    Returns:
        Its scalar kind, its choices (for a ``Literal``) and whether it may be ``None``.

    Raises:
        KeyError: If ``name`` is not a setting.

    Example:
        >>> option_type("inner_lr")
        OptionType(kind=<class 'float'>, choices=(), optional=True)
    """
    hint = _HINTS[name]
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    optional = type(None) in args
    (hint,) = [a for a in args if a is not type(None)]
    if get_origin(hint) is Literal:
        return OptionType(str, get_args(hint), optional)
    return OptionType(hint, (), optional)


def option_flag(name: str) -> str:
    """Return the command-line flag of setting ``name``.

    Args:
        name: A :class:`TrainConfig` field name.

    Returns:
        ``--`` and the name with dashes.

    Example:
        >>> option_flag("inner_lr")
        '--inner-lr'
    """
    return "--" + name.replace("_", "-")


def describe_default(name: str) -> str:
    """Return the default of setting ``name`` in words ("" where there is none).

    Args:
        name: A :class:`TrainConfig` field name.

    Returns:
        The value, the flag that is on by default (for a switch), the rule of
        :func:`dataset_default`, or the description in the field's metadata.

    Raises:
        KeyError: If ``name`` is not a setting.

    Example:
        >>> describe_default("image_size")  # doctest: +ELLIPSIS
        '32 on confounded-shapes, ..., 84 on miniimagenet and tiered-imagenet, 28 on omniglot'
        >>> describe_default("first_order"), describe_default("meta_lr")
        ('--no-first-order', '0.001')
    """
    field = _FIELDS[name]
    if name in _BY_DATASET:
        datasets: dict[str, list[str]] = {}
        for dataset, value in _BY_DATASET[name].items():
            datasets.setdefault(str(value), []).append(dataset)
        text = ", ".join(f"{v} on {_and(d)}" for v, d in datasets.items())
        learners = _BY_LEARNER.get(name, {}).items()
        return text + "".join(f"; {v} for {learner}" for learner, v in learners)
    if field.default is None:
        return str(field.metadata["default_text"])
    if isinstance(field.default, bool):
        return option_flag(name if field.default else f"no_{name}")
    return str(field.default)


def _and(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def option_help(name: str) -> str:
    """Return the help text of setting ``name``: what it does, then its default.

    Args:
        name: A :class:`TrainConfig` field name.

    Returns:
        The field's ``help`` metadata and ``(default: ...)`` when there is a default.

    Raises:
        KeyError: If ``name`` is not a setting.

    Example:
        >>> option_help("ways")
        'classes per task (N-way) (default: 5)'
    """
    default = describe_default(name)
    text = str(_FIELDS[name].metadata["help"])
    return f"{text} (default: {default})" if default else text


def _attributes_doc(doc: str) -> str:
    """``doc`` with an ``Attributes:`` section (every field's help) before its example."""
    lines = doc.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "Example:")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    section = [f"{indent}Attributes:"]
    for name in _FIELDS:
        choices = option_type(name).choices
        help_text = option_help(name)
        if choices:
            help_text += f"; one of {', '.join(choices)}"
        section.append(f"{indent}    {name}: {help_text[0].upper()}{help_text[1:]}.")
    return "\n".join([*lines[:at], *section, "", *lines[at:]])


_HINTS: Mapping[str, Any] = types.MappingProxyType(get_type_hints(TrainConfig))
TrainConfig.__doc__ = _attributes_doc(TrainConfig.__doc__ or "")


# ---------------------------------------------------------------- reading and checking
def config_keys() -> set[str]:
    """Return the names a config file may set: the :class:`TrainConfig` fields.

    Returns:
        The field names.

    Example:
        >>> {"inner_lr", "seed"} <= config_keys(), "metric" in config_keys()
        (True, False)
    """
    return set(_FIELDS)


def _checked(name: str, value: Any) -> Any:
    """``value`` checked against setting ``name``'s type and rules (converted to int/float)."""
    kind, choices, optional = option_type(name)
    rules = _FIELDS[name].metadata
    flag = option_flag(name)
    if value is None and optional:
        return None
    if choices:
        return check_choice(flag, value, choices)
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be true or false, got {value!r}")
        return value
    if kind is int:
        return check_int(flag, value, minimum=rules.get("minimum", 1))
    if kind is float:
        if rules.get("probability"):
            return check_probability(flag, value)
        return check_float(flag, value, above=rules.get("above"), at_least=rules.get("at_least"))
    if not isinstance(value, str):
        raise TypeError(f"{flag} must be a string, got {value!r}")
    return value


def check_values(values: Mapping[str, Any], source: str = "") -> dict[str, Any]:
    """Check settings against their types and rules; return them converted.

    Args:
        values: Settings keyed by field name.
        source: Where they come from, put before an error message (default: nothing).

    Returns:
        The settings, with numbers as ``int`` or ``float``.

    Raises:
        ConfigError: If a value has the wrong type, is out of range or is not a choice.

    Example:
        >>> check_values({"inner_lr": 1, "ways": 5})
        {'inner_lr': 1.0, 'ways': 5}
        >>> check_values({"inner_steps": -1}, "run.toml: ")
        Traceback (most recent call last):
            ...
        metacrl.cli.config.ConfigError: run.toml: --inner-steps must be an integer >= 0, got -1
    """
    with config_errors(source):
        return {name: _checked(name, value) for name, value in values.items()}
