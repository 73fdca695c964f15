"""Bad inputs to a learner raise ValueError/TypeError (or NonFiniteLossError) naming the problem.

Shapes, dtypes, labels, non-finite values, constructor arguments and ``fit``. Every
``pytest.raises`` matches the key words of the message (argument name, shapes or offending
value), so a test fails if an error stops saying what is wrong.
"""

from __future__ import annotations

import pytest
import torch

from metacrl import ANIL, MAML, MetaSGD, NonFiniteLossError, ProtoNet

from helpers import (
    ALL_LEARNERS,
    GRADIENT_LEARNERS,
    LABEL_TOO_LARGE,
    _name,
    linear_model,
    make,
    nan_model,
    random_batch,
    tiny_model,
    with_label,
)

NAMES = ("x_spt", "y_spt", "x_qry", "y_qry")


def regression_batch():
    x_spt, y_spt, x_qry, y_qry = random_batch()
    return x_spt, y_spt.double()[..., None], x_qry, y_qry.double()[..., None]


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


# ====================================================================== constructor arguments
@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"inner_lr": 0}, r"inner_lr must be a finite number > 0, got 0"),
        ({"inner_lr": -0.1}, r"inner_lr must be a finite number > 0, got -0\.1"),
        ({"inner_lr": "0.1"}, r"inner_lr must be a finite number > 0, got '0\.1'"),
        ({"inner_lr": True}, r"inner_lr must be a finite number > 0, got True"),
        ({"inner_steps": -1}, r"inner_steps must be an integer >= 0, got -1"),
        ({"test_inner_steps": -1}, r"test_inner_steps must be an integer >= 0, got -1"),
        ({"backend": "jax"}, r"backend must be one of 'func', 'higher', 'vmap', got 'jax'"),
        ({"loss": "hinge"}, r"loss must be one of 'cross_entropy', 'mse', got 'hinge'"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else None,
)
def test_learner_bad_arguments(cls, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(cls, **kwargs)


@pytest.mark.parametrize("cls", GRADIENT_LEARNERS, ids=_name)
def test_learner_non_integer_inner_steps_is_a_type_error(cls):
    with pytest.raises(TypeError, match=r"inner_steps must be an integer >= 0, got 1\.5"):
        make(cls, inner_steps=1.5)


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
    with pytest.raises(TypeError, match=r"inner_steps must be an integer >= 0, got 2\.0"):
        learner.adapt(x_spt[0], y_spt[0], inner_steps=2.0)


# ====================================================================== fit
@pytest.mark.parametrize("cls", ALL_LEARNERS, ids=_name)
def test_fit_bad_meta_batches(cls):
    x_spt, y_spt, x_qry, y_qry = random_batch()
    learner = make(cls)
    with pytest.raises(ValueError, match=r"each meta-batch must be \(x_spt, y_spt, x_qry, y_qry\)"):
        learner.fit([(x_spt, y_spt, x_qry)], progress=False)
    with pytest.raises(ValueError, match=r"iterations must be >= 0, got -1"):
        learner.fit([(x_spt, y_spt, x_qry, y_qry)], iterations=-1, progress=False)
