"""Meta-gradients of learners wrapped by MetaCRL and of the causal objective, in float64."""

from __future__ import annotations

import pytest
import torch

from metacrl import MetaCRLRegularizer

from gradcheck import EPS, GRADIENT_LEARNERS, _finite_differences, _grads, _learner, _max_diff
from helpers import random_batch


@pytest.mark.parametrize("mode", ["alternating", "joint"])
@pytest.mark.parametrize("name", list(GRADIENT_LEARNERS))
def test_backends_agree_through_a_wrapped_learner(name, mode):
    batch = random_batch()

    def run(backend):
        learner = _learner(name, backend=backend)
        torch.manual_seed(2)
        reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, mode=mode, crl_steps=2)
        wrapped = reg.wrap(learner)
        grads = _grads(wrapped, batch)
        return grads, {n: p.detach().clone() for n, p in wrapped.named_parameters()}

    (g_func, p_func), (g_hig, p_hig) = run("func"), run("higher")
    assert _max_diff(g_func, g_hig) < 1e-6
    assert _max_diff(p_func, p_hig) < 1e-9  # the causal steps moved Xi/f_gr identically


def _regularizer(mode: str, invariance: str = "irm", **kw) -> MetaCRLRegularizer:
    torch.manual_seed(3)
    reg = MetaCRLRegularizer(
        5,
        num_factors=4,
        hidden_dim=3,
        mode=mode,
        invariance=invariance,
        replay=0,
        lambda_orth=0.1,
        lambda_gate=0.5,
        **kw,
    ).double()
    with torch.no_grad():  # leave the orthogonal start so that every term has a gradient
        reg.xi.add_(0.3 * torch.randn_like(reg.xi))
    return reg


@pytest.mark.parametrize(
    ("invariance", "basis"),
    [("irm", "normalized"), ("vrex", "normalized"), ("vrex", "orthonormal")],
)
@pytest.mark.parametrize("name", ["maml", "anil", "metasgd", "protonet"])
def test_joint_mode_gradients_of_xi_and_gate_net_match_finite_differences(name, invariance, basis):
    batch = random_batch()
    wrapped = _regularizer("joint", invariance, basis=basis).wrap(_learner(name))
    analytic = _grads(wrapped, batch)
    reg_names = [n for n in analytic if n.startswith("regularizer.")]
    numeric = _finite_differences(wrapped, batch, names=reg_names)
    assert _max_diff({n: analytic[n] for n in reg_names}, numeric) < 1e-6
    for n in reg_names:
        assert float(analytic[n].abs().max()) > 0, n


@pytest.mark.parametrize("name", ["maml", "anil", "metasgd", "protonet"])
def test_invariance_terms_do_not_reach_the_backbone(name):
    """MetaCRL's penalties act through Xi and f_gr only: θ's gradient ignores their weights."""
    batch = random_batch()

    def theta_grads(**weights):
        reg = _regularizer("joint", **weights)
        grads = _grads(reg.wrap(_learner(name)), batch)
        return {n: g for n, g in grads.items() if n.startswith("learner.")}

    with_terms = theta_grads(lambda_inv=5.0)
    without = theta_grads(lambda_inv=0.0)
    assert _max_diff(with_terms, without) < 1e-12


@pytest.mark.parametrize("name", ["maml", "anil", "metasgd"])
def test_wrapped_theta_gradient_matches_finite_differences(name):
    """Through the gated factors (Xi, f_gr frozen), θ's meta-gradient is still exact."""
    batch = random_batch()
    wrapped = _regularizer("alternating", crl_steps=0).wrap(_learner(name))
    analytic = _grads(wrapped, batch)
    theta = [n for n in analytic if n.startswith("learner.")]
    numeric = _finite_differences(wrapped, batch, names=theta)
    assert _max_diff({n: analytic[n] for n in theta}, numeric) < 1e-7
    assert all(float(analytic[n].abs().max()) == 0 for n in analytic if n not in theta)


@pytest.mark.parametrize("basis", ["normalized", "orthonormal"])
def test_causal_objective_gradient_matches_finite_differences(basis):
    reg = _regularizer("alternating", basis=basis)
    learner = _learner("maml")
    envs = learner.task_features(learner.as_batch(*random_batch(tasks=3)))
    params = [reg.xi, *reg.f_gr.parameters()]

    def objective() -> torch.Tensor:
        return reg.causal_objective(envs, learner.head_task, learner.task_loss).total

    grads = torch.autograd.grad(objective(), params)
    for p, g in zip(params, grads, strict=True):
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + EPS
            plus = objective().item()
            flat[i] = old - EPS
            minus = objective().item()
            flat[i] = old
            assert abs((plus - minus) / (2 * EPS) - float(g.view(-1)[i])) < 1e-7
