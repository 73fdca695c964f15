"""Bad uses of MetaCRLRegularizer raise ValueError/TypeError (or NonFiniteLossError) clearly.

Wrapping, feature width, constructor arguments, wrapped learners' label and non-finite errors,
and the user-loop API. Every ``pytest.raises`` matches the key words of the message, so a test
fails if an error stops saying what is wrong.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metacrl import MAML, MetaCRLRegularizer, NonFiniteLossError
from metacrl.models import FeatureHead

from helpers import (
    ALL_LEARNERS,
    FEATURE_DIM,
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


def wide_model() -> FeatureHead:
    """Declares feature_dim=5 but its features return 7 values per example."""
    return FeatureHead(
        nn.Sequential(nn.Linear(3, 7), nn.Tanh()), nn.Linear(7, 3), feature_dim=FEATURE_DIM
    ).double()


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


# ====================================================================== feature width
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
        ({"num_factors": 0}, r"num_factors must be an integer >= 1, got 0"),
        ({"num_factors": -2}, r"num_factors must be an integer >= 1, got -2"),
        ({"hidden_dim": 0}, r"hidden_dim must be an integer >= 1, got 0"),
        ({"lambda_inv": -1.0}, r"lambda_inv must be a finite number >= 0, got -1\.0"),
        ({"lambda_orth": -1e-3}, r"lambda_orth must be a finite number >= 0, got -0\.001"),
        ({"lambda_gate": -0.1}, r"lambda_gate must be a finite number >= 0, got -0\.1"),
        ({"lambda_inv": float("nan")}, r"lambda_inv must be a finite number >= 0, got nan"),
        ({"lambda_inv": float("inf")}, r"lambda_inv must be a finite number >= 0, got inf"),
        ({"invariance": "irmv2"}, r"invariance must be one of 'irm', 'vrex', got 'irmv2'"),
        (
            {"mode": "sequential"},
            r"mode must be one of 'alternating', 'joint', got 'sequential'",
        ),
        (
            {"head_input": "logits"},
            r"head_input must be one of 'features', 'factors', got 'logits'",
        ),
        ({"gate_init": 0.0}, r"gate_init must be a finite number > 0 and < 1, got 0\.0"),
        ({"gate_init": 1.0}, r"gate_init must be a finite number > 0 and < 1, got 1\.0"),
        ({"gate_init": 1.5}, r"gate_init must be a finite number > 0 and < 1, got 1\.5"),
        ({"gate_init": -0.2}, r"gate_init must be a finite number > 0 and < 1, got -0\.2"),
        ({"gate_init": float("nan")}, r"gate_init must be a finite number > 0 and < 1, got nan"),
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


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"feature_dim": 5.0}, r"feature_dim must be an integer >= 1, got 5\.0"),
        ({"num_factors": 4.0}, r"num_factors must be an integer >= 1, got 4\.0"),
        ({"crl_steps": True}, r"crl_steps must be an integer >= 0, got True"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else None,
)
def test_regularizer_non_integer_counts_are_type_errors(kwargs, pattern):
    kwargs = {"feature_dim": FEATURE_DIM, **kwargs}
    with pytest.raises(TypeError, match=pattern):
        MetaCRLRegularizer(**kwargs)


def test_regularizer_non_numeric_gate_init():
    with pytest.raises((TypeError, ValueError), match=r"gate_init"):
        MetaCRLRegularizer(FEATURE_DIM, gate_init="0.5")


# ====================================================================== wrapped learners' errors
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


# ====================================================================== user-loop API
@pytest.fixture
def user_loop():
    """A wrapped model (float64) and its regularizer, with one meta-batch."""
    model = tiny_model()
    reg = MetaCRLRegularizer(FEATURE_DIM, num_factors=4, invariance="irm")  # needs outputs
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
        reg.penalty([torch.tensor(v, requires_grad=True) for v in (1.0, 2.0)])


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


def test_a_task_opened_at_meta_test_without_track_false_is_named_in_the_next_penalty(user_loop):
    model, reg, net, batch = user_loop
    x_spt = batch[0]
    reg.task(model.features(x_spt[0]).detach())  # meta-test, track=False forgotten
    losses = [_query_loss(model, reg, net, batch, t) for t in range(2)]
    with pytest.raises(ValueError, match=r"3 tasks were opened .*track=False \(meta-test\)"):
        reg.penalty(losses)


def test_a_whole_meta_batch_opened_as_one_task_is_named_in_the_penalty(user_loop):
    model, reg, net, batch = user_loop
    x_spt = batch[0]
    reg.task(model.features(x_spt.flatten(0, 1)))  # [T * n, d]: one set of gates for all
    losses = [torch.tensor(1.0, requires_grad=True)] * 2
    with pytest.raises(ValueError, match=r"not a whole meta-batch's features"):
        reg.penalty(losses)


def test_penalty_of_detached_losses_names_the_fix(user_loop):
    model, reg, net, batch = user_loop
    losses = [_query_loss(model, reg, net, batch, t).detach() for t in range(2)]
    with pytest.raises(ValueError, match=r"with their graph .*\.detach\(\)"):
        reg.penalty(losses)
