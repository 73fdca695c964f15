"""Bad inputs raise ValueError/TypeError (or NonFiniteLossError) with a message naming the problem.

Every ``pytest.raises`` matches the key words of the message (argument name, shapes or offending
value), so a test fails if an error stops saying what is wrong.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metacrl import ANIL, MAML, MetaCRLRegularizer, MetaSGD, NonFiniteLossError, ProtoNet
from metacrl.models import FeatureHead

from conftest import random_batch, tiny_model

GRADIENT_LEARNERS = [MAML, ANIL, MetaSGD]
ALL_LEARNERS = [*GRADIENT_LEARNERS, ProtoNet]
NAMES = ("x_spt", "y_spt", "x_qry", "y_qry")
FEATURE_DIM = 5


def _name(value: object) -> str | None:
    return getattr(value, "__name__", None)


def make(cls: type, model: nn.Module | None = None, **kwargs):
    """A learner of class ``cls`` on ``model`` (default: the tiny float64 model), one inner step."""
    model = tiny_model() if model is None else model
    if cls is ProtoNet:
        return ProtoNet(model)
    kwargs.setdefault("inner_lr", 0.1)
    kwargs.setdefault("inner_steps", 1)
    return cls(model, **kwargs)


def regression_batch():
    x_spt, y_spt, x_qry, y_qry = random_batch()
    return x_spt, y_spt.double()[..., None], x_qry, y_qry.double()[..., None]


def linear_model(n_out: int = 3) -> FeatureHead:
    """Unbounded (no tanh) features, so a huge inner step overflows."""
    return FeatureHead(
        nn.Linear(3, FEATURE_DIM), nn.Linear(FEATURE_DIM, n_out), feature_dim=FEATURE_DIM
    ).double()


def nan_model(part: str) -> FeatureHead:
    """The tiny model with NaN biases in ``features`` or ``head``."""
    model = tiny_model()
    layer = model.features[0] if part == "features" else model.head
    with torch.no_grad():
        layer.bias.fill_(float("nan"))
    return model


def wide_model() -> FeatureHead:
    """Declares feature_dim=5 but its features return 7 values per example."""
    return FeatureHead(
        nn.Sequential(nn.Linear(3, 7), nn.Tanh()), nn.Linear(7, 3), feature_dim=FEATURE_DIM
    ).double()


_MISSING = object()


class ContractModel(nn.Module):
    """A model whose ``features``/``head``/``feature_dim`` can be left out or replaced."""

    def __init__(self, features=_MISSING, head=_MISSING, feature_dim=_MISSING) -> None:
        super().__init__()
        parts = {
            "features": nn.Linear(3, FEATURE_DIM) if features is _MISSING else features,
            "head": nn.Linear(FEATURE_DIM, 3) if head is _MISSING else head,
            "feature_dim": FEATURE_DIM if feature_dim is _MISSING else feature_dim,
        }
        for attr, value in parts.items():
            if value is not None:
                setattr(self, attr, value)


def with_label(y: torch.Tensor, value: int, task: int = 0, index: int = 0) -> torch.Tensor:
    y = y.clone()
    y[task, index] = value
    return y


# ====================================================================== shapes
@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize(
    ("cut", "pattern"),
    [
        ("query", r"number of tasks \(first axis\) differs: x_spt=2, y_spt=2, x_qry=1, y_qry=1"),
        ("y_spt", r"number of tasks \(first axis\) differs: x_spt=2, y_spt=1, x_qry=2, y_qry=2"),
        ("y_qry", r"number of tasks \(first axis\) differs: x_spt=2, y_spt=2, x_qry=2, y_qry=1"),
    ],
)
def test_number_of_tasks_differs(cls, cut, pattern):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    if cut == "query":
        x_qry, y_qry = x_qry[:1], y_qry[:1]
    elif cut == "y_spt":
        y_spt = y_spt[:1]
    else:
        y_qry = y_qry[:1]
    with pytest.raises(ValueError, match=pattern):
        make(cls).meta_step(x_spt, y_spt, x_qry, y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize(
    ("which", "pattern"),
    [
        (
            "spt",
            r"y_spt must hold one target per example of x_spt: x_spt is \(2, 6, 3\), "
            r"y_spt is \(2, 5\)",
        ),
        (
            "qry",
            r"y_qry must hold one target per example of x_qry: x_qry is \(2, 9, 3\), "
            r"y_qry is \(2, 8\)",
        ),
    ],
)
def test_labels_length_differs_from_inputs(cls, which, pattern):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    if which == "spt":
        y_spt = y_spt[:, :-1]
    else:
        y_qry = y_qry[:, :-1]
    with pytest.raises(ValueError, match=pattern):
        make(cls).meta_step(x_spt, y_spt, x_qry, y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_labels_without_examples_axis(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    with pytest.raises(
        ValueError, match=r"y_spt must be shaped \[tasks, examples, \.\.\.\].*got shape \(2,\)"
    ):
        make(cls).meta_step(x_spt, y_spt[:, 0], x_qry, y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_class_labels_with_extra_axis(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    with pytest.raises(
        ValueError, match=r"y_spt must be class indices shaped \[tasks, examples\].*\(2, 6, 1\)"
    ):
        make(cls).meta_step(x_spt, y_spt[..., None], x_qry, y_qry[..., None])


def test_scalar_labels_are_rejected_clearly():
    x_spt, _, x_qry, y_qry = random_batch()
    with pytest.raises(ValueError, match=r"y_spt"):
        make(MAML).meta_step(x_spt, torch.tensor(0), x_qry, y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_support_and_query_sample_shapes_differ(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    with pytest.raises(
        ValueError,
        match=r"support and query examples differ in shape: x_spt \(3,\) vs x_qry \(2,\)",
    ):
        make(cls).meta_step(x_spt, y_spt, x_qry[..., :2], y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_missing_task_axis(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(
        ValueError,
        match=r"x_spt must be shaped \[tasks, examples, \*sample_shape\] \(at least 3 dims\), "
        r"got shape \(6, 3\); add a task axis with \.unsqueeze\(0\)",
    ):
        learner.meta_step(x_spt[0], y_spt[0], x_qry[0], y_qry[0])
    with pytest.raises(ValueError, match=r"x_qry must be shaped .*at least 3 dims.*\(9, 3\)"):
        learner.meta_step(x_spt, y_spt, x_qry[0], y_qry)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_regression_outputs_do_not_match_targets(cls):
    x_spt, y_spt, x_qry, y_qry = regression_batch()
    learner = make(cls, tiny_model(n_out=1), loss="mse")
    with pytest.raises(
        ValueError, match=r"model's outputs \(6, 1\) and the regression targets \(6,\)"
    ):
        learner.meta_step(x_spt, y_spt[..., 0], x_qry, y_qry[..., 0])


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_regression_support_and_query_targets_differ(cls):
    x_spt, y_spt, x_qry, y_qry = regression_batch()
    learner = make(cls, tiny_model(n_out=1), loss="mse")
    with pytest.raises(
        ValueError,
        match=r"support and query targets differ in shape: y_spt \(1,\) vs y_qry \(1, 1\)",
    ):
        learner.meta_step(x_spt, y_spt, x_qry, y_qry[..., None])


# ====================================================================== dtypes
@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64], ids=str)
def test_integer_images(cls, dtype):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(TypeError, match=rf"x_spt must be a floating-point tensor, got {dtype}"):
        learner.meta_step(x_spt.to(dtype), y_spt, x_qry.to(dtype), y_qry)
    with pytest.raises(TypeError, match=rf"x_qry must be a floating-point tensor, got {dtype}"):
        learner.meta_step(x_spt, y_spt, x_qry.to(dtype), y_qry)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bool], ids=str)
def test_non_integer_labels_for_cross_entropy(cls, dtype):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(
        TypeError, match=rf"y_spt must hold integer class indices \(torch.long\), got {dtype}"
    ):
        learner.meta_step(x_spt, y_spt.to(dtype), x_qry, y_qry)
    with pytest.raises(TypeError, match=rf"y_qry must hold integer class indices.*{dtype}"):
        learner.meta_step(x_spt, y_spt, x_qry, y_qry.to(dtype))


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_integer_targets_for_mse(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls, tiny_model(n_out=1), loss="mse")
    with pytest.raises(
        TypeError, match=r"y_spt must be floating-point regression targets, got torch.int64"
    ):
        learner.meta_step(x_spt, y_spt[..., None], x_qry, y_qry[..., None].double())
    with pytest.raises(TypeError, match=r"y_qry must be floating-point regression targets"):
        learner.meta_step(x_spt, y_spt[..., None].double(), x_qry, y_qry[..., None])


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize("position", range(4), ids=NAMES)
@pytest.mark.parametrize(
    "convert", [lambda t: t.tolist(), lambda t: t.numpy()], ids=["list", "ndarray"]
)
def test_non_tensor_arguments(cls, position, convert):
    batch = list(random_batch())
    batch[position] = convert(batch[position])
    kind = type(batch[position]).__name__
    with pytest.raises(TypeError, match=rf"{NAMES[position]} must be a torch.Tensor, got {kind}"):
        make(cls).meta_step(*batch)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_non_tensor_arguments_to_adapt_and_evaluate(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(TypeError, match=r"x_spt must be a torch.Tensor, got list"):
        learner.adapt(x_spt[0].tolist(), y_spt[0])
    with pytest.raises(TypeError, match=r"y_spt must be a torch.Tensor, got NoneType"):
        learner.adapt(x_spt[0], None)
    with pytest.raises(TypeError, match=r"y_qry must be a torch.Tensor, got list"):
        learner.evaluate(x_spt, y_spt, x_qry, y_qry.tolist())


# ====================================================================== labels
@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_negative_labels(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.n_way-1, found label -1"):
        learner.meta_step(x_spt, with_label(y_spt, -1), x_qry, y_qry)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.n_way-1, found label -3"):
        learner.evaluate(x_spt, y_spt, x_qry, with_label(y_qry, -3, task=1))


LABEL_TOO_LARGE = r"labels must lie in 0\.\.n_way-1 with n_way=3 \(the model's outputs\), .*label 5"


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
@pytest.mark.parametrize("backend", ["func", "higher"])
@pytest.mark.parametrize("inner_steps", [0, 1])
def test_label_beyond_head_outputs(cls, backend, inner_steps):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls, inner_steps=inner_steps, backend=backend)
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.meta_step(x_spt, with_label(y_spt, 5), x_qry, y_qry)
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.meta_step(x_spt, y_spt, x_qry, with_label(y_qry, 5, task=1))
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.evaluate(x_spt, with_label(y_spt, 5), x_qry, y_qry)
    if inner_steps > 0:  # with no inner step, adapt never scores the support labels
        with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
            learner.adapt(x_spt[0], with_label(y_spt, 5)[0])


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_label_beyond_head_outputs_wrapped_joint(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode="joint")
    learner = reg.wrap(make(cls))
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.meta_step(x_spt, with_label(y_spt, 5), x_qry, y_qry)
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.evaluate(x_spt, with_label(y_spt, 5), x_qry, y_qry)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_label_beyond_head_outputs_wrapped_alternating(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode="alternating", crl_steps=1)
    learner = reg.wrap(make(cls))
    with pytest.raises(ValueError, match=LABEL_TOO_LARGE):
        learner.meta_step(x_spt, with_label(y_spt, 5), x_qry, y_qry)


def test_protonet_support_set_missing_a_class():
    x_spt, y_spt, x_qry, y_qry = random_batch()
    y_spt = y_spt.clone()
    y_spt[1][y_spt[1] == 1] = 0  # task 1 has no support example of class 1
    learner = ProtoNet(tiny_model())
    pattern = r"ProtoNet needs every label of the meta-batch \(0\.\.2\) in each support set: "
    pattern += r"task 1 has no support "
    pattern += r"example of label 1"
    with pytest.raises(ValueError, match=pattern):
        learner.meta_step(x_spt, y_spt, x_qry, y_qry)
    with pytest.raises(ValueError, match=pattern):
        learner.evaluate(x_spt, y_spt, x_qry, y_qry)
    with pytest.raises(ValueError, match=r"task 0 has no support example of label 1"):
        learner.adapt(x_spt[1], y_spt[1])


def test_protonet_query_label_absent_from_support():
    x_spt, y_spt, x_qry, y_qry = random_batch()
    with pytest.raises(
        ValueError, match=r"every label of the meta-batch \(0\.\.5\) in each support set"
    ):
        ProtoNet(tiny_model()).meta_step(x_spt, y_spt, x_qry, with_label(y_qry, 5))


# ====================================================================== non-finite values
@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
@pytest.mark.parametrize("position", [0, 2], ids=["x_spt", "x_qry"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
def test_non_finite_inputs(cls, position, value):
    batch = list(random_batch())
    batch[position] = batch[position].clone()
    batch[position][1, 0, 2] = value
    with pytest.raises(ValueError, match=rf"{NAMES[position]} contains NaN or inf values"):
        make(cls).meta_step(*batch)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
@pytest.mark.parametrize("position", [1, 3], ids=["y_spt", "y_qry"])
def test_non_finite_regression_targets(cls, position):
    batch = list(regression_batch())
    batch[position] = batch[position].clone()
    batch[position][0, 1, 0] = float("nan")
    learner = make(cls, tiny_model(n_out=1), loss="mse")
    with pytest.raises(ValueError, match=rf"{NAMES[position]} contains NaN or inf values"):
        learner.meta_step(*batch)


def test_non_finite_loss_error_is_a_value_error():
    assert issubclass(NonFiniteLossError, ValueError)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_huge_inner_lr_gives_non_finite_meta_loss(cls):
    learner = make(cls, linear_model(n_out=1), inner_lr=1e100, inner_steps=3, loss="mse")
    with pytest.raises(
        NonFiniteLossError, match=r"the meta-loss is (nan|inf): non-finite query loss in task"
    ):
        learner.meta_step(*regression_batch())


@pytest.mark.parametrize(
    ("cls", "part"),
    [(MAML, "head"), (ANIL, "head"), (MetaSGD, "head"), (ProtoNet, "features")],
    ids=_name,
)
def test_model_producing_nan_gives_non_finite_meta_loss(cls, part):
    with pytest.raises(NonFiniteLossError, match=r"the meta-loss is nan.*task\(s\) \[0, 1\]"):
        make(cls, nan_model(part)).meta_step(*random_batch())


@pytest.mark.parametrize(
    ("mode", "pattern"),
    [
        ("alternating", r"the MetaCRL causal objective is nan at causal step 0"),
        ("joint", r"the meta-loss is nan"),
    ],
    ids=["alternating", "joint"],
)
def test_model_producing_nan_wrapped(mode, pattern):
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode=mode, crl_steps=1)
    learner = reg.wrap(make(MAML, nan_model("head")))
    with pytest.raises(NonFiniteLossError, match=pattern):
        learner.meta_step(*random_batch())


def test_non_finite_metacrl_terms_in_joint_mode_are_caught():
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode="joint")
    learner = reg.wrap(make(MAML, linear_model()))
    reg.lambda_inv = math.inf  # the query loss is finite; only the added terms are not
    with pytest.raises(NonFiniteLossError, match=r"the joint MetaCRL loss is (nan|inf) \(task"):
        learner.meta_step(*random_batch())


# ====================================================================== the model contract
def _build_learner(cls):
    return lambda model: make(cls, model)


def _wrap(model):
    return MetaCRLRegularizer(FEATURE_DIM, num_factors=4).wrap(model)


CONSUMERS = [*(_build_learner(c) for c in ALL_LEARNERS), _wrap]
CONSUMER_IDS = [*(c.__name__ for c in ALL_LEARNERS), "reg.wrap"]


@pytest.mark.parametrize("consume", CONSUMERS, ids=CONSUMER_IDS)
@pytest.mark.parametrize(
    ("model", "error", "pattern"),
    [
        (
            ContractModel(features=None),
            TypeError,
            r"must expose `features` as an nn.Module \(missing\)",
        ),
        (ContractModel(head=None), TypeError, r"must expose `head` as an nn.Module \(missing\)"),
        (
            ContractModel(features=torch.tanh),
            TypeError,
            r"`features` as an nn.Module \(builtin_function",
        ),
        (ContractModel(head=torch.tanh), TypeError, r"`head` as an nn.Module \(builtin_function"),
        (ContractModel(feature_dim=None), TypeError, r"integer `feature_dim`.*got None"),
        (ContractModel(feature_dim=5.0), TypeError, r"integer `feature_dim`.*got 5\.0"),
        (ContractModel(feature_dim="5"), TypeError, r"integer `feature_dim`.*got '5'"),
        (ContractModel(feature_dim=True), TypeError, r"integer `feature_dim`.*got True"),
        (ContractModel(feature_dim=0), ValueError, r"model\.feature_dim must be positive, got 0"),
        (ContractModel(feature_dim=-4), ValueError, r"model\.feature_dim must be positive, got -4"),
        (object(), TypeError, r"model must be a torch\.nn\.Module, got object"),
        (lambda x: x, TypeError, r"model must be a torch\.nn\.Module, got function"),
        (nn.Linear(3, 3), TypeError, r"model \(Linear\) must expose `features`"),
    ],
    ids=[
        "no-features",
        "no-head",
        "features-fn",
        "head-fn",
        "no-feature_dim",
        "float-dim",
        "str-dim",
        "bool-dim",
        "zero-dim",
        "negative-dim",
        "object",
        "function",
        "plain-Linear",
    ],
)
def test_model_contract(consume, model, error, pattern):
    with pytest.raises(error, match=pattern):
        consume(model)


@pytest.mark.parametrize(
    ("feature_dim", "error", "pattern"),
    [
        (0, ValueError, r"FeatureHead\.feature_dim must be positive, got 0"),
        (-1, ValueError, r"FeatureHead\.feature_dim must be positive, got -1"),
        (5.0, TypeError, r"integer `feature_dim`.*got 5\.0"),
        (None, TypeError, r"integer `feature_dim`.*got None"),
    ],
)
def test_feature_head_feature_dim(feature_dim, error, pattern):
    with pytest.raises(error, match=pattern):
        FeatureHead(nn.Linear(3, 5), nn.Linear(5, 3), feature_dim=feature_dim)


def test_feature_head_parts_must_be_modules():
    with pytest.raises(TypeError, match=r"`features` as an nn.Module"):
        FeatureHead(torch.tanh, nn.Linear(5, 3), feature_dim=5)
    with pytest.raises(TypeError, match=r"`head` as an nn.Module"):
        FeatureHead(nn.Linear(3, 5), torch.tanh, feature_dim=5)


# ====================================================================== wrapping
FEATURE_DIM_MISMATCH = (
    r"model\.feature_dim is 5 but MetaCRLRegularizer was built with feature_dim=6"
)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_wrap_learner_with_other_feature_dim(cls):
    with pytest.raises(ValueError, match=FEATURE_DIM_MISMATCH):
        MetaCRLRegularizer(feature_dim=6, num_factors=4).wrap(make(cls))


def test_wrap_model_with_other_feature_dim():
    with pytest.raises(ValueError, match=FEATURE_DIM_MISMATCH):
        MetaCRLRegularizer(feature_dim=6, num_factors=4).wrap(tiny_model())


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_wrap_learner_twice(cls):
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4)
    wrapped = reg.wrap(make(cls))
    with pytest.raises(TypeError, match=r"already wrapped by a MetaCRLRegularizer"):
        reg.wrap(wrapped)
    with pytest.raises(TypeError, match=r"already wrapped by a MetaCRLRegularizer"):
        MetaCRLRegularizer(FEATURE_DIM, num_factors=4).wrap(wrapped)


@pytest.mark.parametrize(
    ("target", "kind"),
    [(42, "int"), ("model", "str"), (None, "NoneType"), (torch.zeros(3), "Tensor")],
)
def test_wrap_non_module(target, kind):
    with pytest.raises(TypeError, match=rf"must be a torch\.nn\.Module, got {kind}"):
        MetaCRLRegularizer(FEATURE_DIM, num_factors=4).wrap(target)


FEATURE_WIDTH = (
    r"features must be shaped \[\.\.\., examples, 5\] \(MetaCRLRegularizer\(feature_dim=5\)\), "
    r"got \(6, 7\); does model\.features return flat features of size model\.feature_dim\?"
)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_features_width_differs_from_feature_dim_joint(cls):
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode="joint")
    learner = reg.wrap(make(cls, wide_model()))
    with pytest.raises(ValueError, match=FEATURE_WIDTH):
        learner.meta_step(*random_batch())
    with pytest.raises(ValueError, match=FEATURE_WIDTH):
        learner.evaluate(*random_batch())


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_features_width_differs_from_feature_dim_alternating(cls):
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, mode="alternating", crl_steps=1)
    learner = reg.wrap(make(cls, wide_model()))
    with pytest.raises(ValueError, match=r"features must be shaped \[\.\.\., examples, 5\]"):
        learner.meta_step(*random_batch())


def test_features_width_differs_from_feature_dim_wrapped_model():
    model = wide_model()
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4)
    net = reg.wrap(model)
    x = random_batch()[0][0]
    with pytest.raises(ValueError, match=FEATURE_WIDTH):
        net(x, task=reg.task(model.features(x)))


# ====================================================================== constructor arguments
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"feature_dim": 0}, r"feature_dim must be an integer >= 1, got 0"),
        ({"feature_dim": 5.0}, r"feature_dim must be an integer >= 1, got 5\.0"),
        ({"num_factors": 0}, r"num_factors must be an integer >= 1, got 0"),
        ({"num_factors": -2}, r"num_factors must be an integer >= 1, got -2"),
        ({"num_factors": 4.0}, r"num_factors must be an integer >= 1, got 4\.0"),
        ({"hidden_dim": 0}, r"hidden_dim must be an integer >= 1, got 0"),
        ({"lambda_inv": -1.0}, r"lambda_inv must be a finite number >= 0, got -1\.0"),
        ({"lambda_orth": -1e-3}, r"lambda_orth must be a finite number >= 0, got -0\.001"),
        ({"lambda_gate": -0.1}, r"lambda_gate must be a finite number >= 0, got -0\.1"),
        ({"lambda_inv": float("nan")}, r"lambda_inv must be a finite number >= 0, got nan"),
        ({"lambda_inv": float("inf")}, r"lambda_inv must be a finite number >= 0, got inf"),
        ({"invariance": "irmv2"}, r"invariance must be one of \('irm', 'vrex'\), got 'irmv2'"),
        (
            {"mode": "sequential"},
            r"mode must be one of \('alternating', 'joint'\), got 'sequential'",
        ),
        (
            {"head_input": "logits"},
            r"head_input must be one of \('features', 'factors'\), got 'logits'",
        ),
        ({"gate_init": 0.0}, r"gate_init must lie strictly between 0 and 1, got 0\.0"),
        ({"gate_init": 1.0}, r"gate_init must lie strictly between 0 and 1, got 1\.0"),
        ({"gate_init": 1.5}, r"gate_init must lie strictly between 0 and 1, got 1\.5"),
        ({"gate_init": -0.2}, r"gate_init must lie strictly between 0 and 1, got -0\.2"),
        ({"gate_init": float("nan")}, r"gate_init must lie strictly between 0 and 1, got nan"),
        ({"crl_steps": -1}, r"crl_steps must be an integer >= 0, got -1"),
        ({"xi_lr": 0.0}, r"xi_lr must be a finite number > 0, got 0\.0"),
        ({"gr_lr": -0.01}, r"gr_lr must be a finite number > 0, got -0\.01"),
        ({"replay": -1}, r"replay must be an integer >= 0, got -1"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else None,
)
def test_regularizer_bad_arguments(kwargs, pattern):
    kwargs = {"feature_dim": FEATURE_DIM, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        MetaCRLRegularizer(**kwargs)


def test_regularizer_non_numeric_gate_init():
    with pytest.raises((TypeError, ValueError), match=r"gate_init"):
        MetaCRLRegularizer(FEATURE_DIM, gate_init="0.5")


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"inner_lr": 0}, r"inner_lr must be a finite number > 0, got 0"),
        ({"inner_lr": -0.1}, r"inner_lr must be a finite number > 0, got -0\.1"),
        ({"inner_lr": "0.1"}, r"inner_lr must be a finite number > 0, got '0\.1'"),
        ({"inner_lr": True}, r"inner_lr must be a finite number > 0, got True"),
        ({"inner_steps": -1}, r"inner_steps must be an integer >= 0, got -1"),
        ({"inner_steps": 1.5}, r"inner_steps must be an integer >= 0, got 1\.5"),
        ({"test_inner_steps": -1}, r"test_inner_steps must be an integer >= 0, got -1"),
        ({"backend": "jax"}, r"backend must be one of \('func', 'higher', 'vmap'\), got 'jax'"),
        ({"loss": "hinge"}, r"loss must be one of \('cross_entropy', 'mse'\), got 'hinge'"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else None,
)
def test_learner_bad_arguments(cls, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(cls, **kwargs)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
@pytest.mark.parametrize("inner_lr", [float("nan"), float("inf")], ids=str)
def test_learner_non_finite_inner_lr(cls, inner_lr):
    with pytest.raises(ValueError, match=r"inner_lr"):
        make(cls, inner_lr=inner_lr)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_negative_inner_steps_at_test_time(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(ValueError, match=r"inner_steps must be an integer >= 0, got -1"):
        learner.evaluate(x_spt, y_spt, x_qry, y_qry, inner_steps=-1)
    with pytest.raises(ValueError, match=r"inner_steps must be an integer >= 0, got 2\.0"):
        learner.adapt(x_spt[0], y_spt[0], inner_steps=2.0)


@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_fit_bad_meta_batches(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(ValueError, match=r"each meta-batch must be \(x_spt, y_spt, x_qry, y_qry\)"):
        learner.fit([(x_spt, y_spt, x_qry)], progress=False)
    with pytest.raises(ValueError, match=r"iterations must be >= 0, got -1"):
        learner.fit([(x_spt, y_spt, x_qry, y_qry)], iterations=-1, progress=False)


@pytest.mark.parametrize("target", ["learner", "model"])
def test_head_input_factors_with_head_of_feature_width(target):
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, head_input="factors")
    model = tiny_model()  # head is Linear(5, 3): takes feature_dim, not num_factors, inputs
    with pytest.raises(
        ValueError,
        match=r"head_input='factors' feeds the head 4 gated factors, but the head's first "
        r"Linear takes 5 inputs",
    ):
        reg.wrap(make(MAML, model) if target == "learner" else model)


def test_head_input_factors_with_nested_head():
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, head_input="factors")
    model = FeatureHead(
        nn.Linear(3, FEATURE_DIM),
        nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, 8), nn.Linear(8, 3)),
        feature_dim=FEATURE_DIM,
    )
    with pytest.raises(ValueError, match=r"head's first Linear takes 5 inputs"):
        reg.wrap(model)


# ====================================================================== user-loop API
@pytest.fixture
def user_loop():
    """A wrapped model (float64) and its regularizer, with one meta-batch."""
    model = tiny_model()
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4)
    net = reg.wrap(model)
    return model, reg, net, random_batch()


def _query_loss(model, reg, net, batch, t):
    x_spt, _, x_qry, y_qry = batch
    task = reg.task(model.features(x_spt[t]))
    return F.cross_entropy(net(x_qry[t], task=task), y_qry[t])


def test_penalty_without_open_task(user_loop):
    _, reg, _, _ = user_loop
    with pytest.raises(ValueError, match=r"reg\.penalty: no task is open; call reg\.task"):
        reg.penalty([torch.tensor(1.0)])


def test_penalty_closes_the_tasks(user_loop):
    model, reg, net, batch = user_loop
    losses = [_query_loss(model, reg, net, batch, t) for t in range(2)]
    reg.penalty(losses)
    with pytest.raises(ValueError, match=r"no task is open"):
        reg.penalty(losses)


@pytest.mark.parametrize("n_losses", [1, 3])
def test_penalty_with_other_number_of_losses_than_tasks(user_loop, n_losses):
    model, reg, net, batch = user_loop
    losses = [_query_loss(model, reg, net, batch, t) for t in range(2)]
    losses = (losses * 2)[:n_losses]
    with pytest.raises(
        ValueError,
        match=rf"reg\.penalty got {n_losses} query losses but 2 tasks were opened with reg\.task",
    ):
        reg.penalty(losses)


def test_penalty_irm_without_query_outputs(user_loop):
    model, reg, _, batch = user_loop
    for t in range(2):
        reg.task(model.features(batch[0][t]))
    with pytest.raises(
        ValueError, match=r"IRM penalty needs each task's query outputs: tasks \[0, 1\]"
    ):
        reg.penalty([torch.tensor(1.0), torch.tensor(2.0)])


def test_penalty_irm_with_other_number_of_outputs(user_loop):
    model, reg, net, batch = user_loop
    losses = [_query_loss(model, reg, net, batch, t) for t in range(2)]
    with pytest.raises(ValueError, match=r"got 2 losses but 1 outputs"):
        reg.penalty(losses, [torch.zeros(9, 3)])


def test_penalty_with_a_scalar_loss(user_loop):
    model, reg, net, batch = user_loop
    losses = [_query_loss(model, reg, net, batch, t) for t in range(2)]
    with pytest.raises((TypeError, ValueError), match=r"task_query_losses|per task"):
        reg.penalty(torch.stack(losses).mean())


@pytest.mark.parametrize("shape", [(2, 4, FEATURE_DIM), (FEATURE_DIM,)])
def test_task_with_wrong_number_of_dims(user_loop, shape):
    _, reg, _, _ = user_loop
    dims = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    with pytest.raises(
        ValueError,
        match=rf"reg\.task takes one task's support features \[n_support, feature_dim\], got "
        rf"shape \({dims}\)",
    ):
        reg.task(torch.randn(*shape, dtype=torch.float64))


def test_task_with_wrong_feature_width(user_loop):
    _, reg, _, _ = user_loop
    with pytest.raises(
        ValueError, match=r"features must be shaped \[\.\.\., examples, 5\].*\(4, 6\)"
    ):
        reg.task(torch.randn(4, 6, dtype=torch.float64))


def test_task_with_non_tensor(user_loop):
    _, reg, _, _ = user_loop
    with pytest.raises(TypeError, match=r"support_features"):
        reg.task([[0.0] * FEATURE_DIM] * 4)


def test_wrapped_model_called_without_task(user_loop):
    _, _, net, batch = user_loop
    with pytest.raises(
        ValueError,
        match=r"wrapped by MetaCRLRegularizer: call it as "
        r"net\(x, task=reg\.task\(support_features\)\)",
    ):
        net(batch[0][0])
