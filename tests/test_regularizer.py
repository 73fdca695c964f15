"""MetaCRLRegularizer: loss terms on hand-computed cases, shapes, the causal step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metacrl import MAML, GatedModel, MetaCRLLearner, MetaCRLRegularizer, ProtoNet
from metacrl.regularizer import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)

from conftest import random_batch, tiny_model


def test_orthogonal_xi_has_zero_orthogonality_loss():
    q, _ = torch.linalg.qr(torch.randn(10, 4, dtype=torch.float64))
    assert float(orthogonality_loss(q)) == pytest.approx(0.0, abs=1e-12)
    # scaling columns changes nothing: only directions count
    assert float(orthogonality_loss(q * torch.tensor([1.0, 5.0, 0.1, 2.0]))) < 1e-12


def test_orthogonality_loss_hand_computed():
    xi = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    # columns 0 and 1 meet at 45 degrees (cos = 1/sqrt 2), counted for (0,1) and (1,0)
    assert float(orthogonality_loss(xi)) == pytest.approx(2 / math.sqrt(2), rel=1e-6)
    # opposite directions count as fully coupled
    assert float(orthogonality_loss(torch.tensor([[1.0, -1.0]]))) == pytest.approx(2.0)


def test_gate_loss_hand_computed():
    # one task, gates (1, 0): sparse half, fully decisive -> L1/M = 0.5, entropy ~ 0
    assert float(gate_loss(torch.tensor([[1.0, 0.0]]))) == pytest.approx(0.5, abs=1e-4)
    # gates at 0.5: L1/M = 0.5 and H_b/M = log 2
    assert float(gate_loss(torch.full((3, 4), 0.5))) == pytest.approx(0.5 + math.log(2))
    # mean over tasks
    two = gate_loss(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert float(two) == pytest.approx(0.25, abs=1e-4)


def test_gate_loss_prefers_sparse_decisive_gates():
    assert gate_loss(torch.tensor([[0.01, 0.01]])) < gate_loss(torch.tensor([[0.5, 0.5]]))
    assert gate_loss(torch.tensor([[0.99, 0.01]])) < gate_loss(torch.tensor([[0.6, 0.4]]))


def test_irm_penalty_hand_computed_for_binary_cross_entropy():
    a = 1.7
    logits = torch.tensor([[a, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(logits, torch.tensor([0]))
    # L(s) = log(1 + exp(-s a))  =>  dL/ds at 1 = -a * sigmoid(-a)
    expected = (a * torch.sigmoid(torch.tensor(-a, dtype=torch.float64))) ** 2
    assert float(irm_penalty([loss], [logits]).detach()) == pytest.approx(
        float(expected), rel=1e-10
    )


def test_irm_penalty_is_zero_when_every_loss_is_stationary_in_the_scale():
    # zero logits: L(s * 0) does not depend on s
    zero = torch.zeros(4, 3, requires_grad=True)
    loss0 = F.cross_entropy(zero, torch.tensor([0, 1, 2, 0]))
    # least-squares optimal scale: o = y / 2 has dL/ds = 2 mean((s o - y) o) != 0, but o = y is
    # a perfect fit whose loss is minimal, hence stationary, in s
    y = torch.tensor([[1.0], [-2.0], [0.5]])
    out = y.clone().requires_grad_()
    loss1 = F.mse_loss(out, y)
    assert float(irm_penalty([loss0, loss1], [zero, out]).detach()) == pytest.approx(0.0, abs=1e-12)
    half = (y / 2).requires_grad_()
    assert float(irm_penalty([F.mse_loss(half, y)], [half]).detach()) > 0.1


def test_irm_penalty_keeps_the_graph_for_a_second_derivative():
    w = torch.tensor(0.7, requires_grad=True)
    out = w * torch.tensor([[1.0, -1.0]])
    pen = irm_penalty([F.cross_entropy(out, torch.tensor([0]))], [out])
    (g,) = torch.autograd.grad(pen, w)
    assert g.abs() > 0


def test_vrex_penalty_is_the_population_variance():
    assert float(vrex_penalty([torch.tensor(1.0), torch.tensor(3.0)])) == pytest.approx(1.0)
    assert float(vrex_penalty(torch.tensor([2.0]))) == 0.0


def test_gates_and_transform_shapes():
    reg = MetaCRLRegularizer(feature_dim=6, num_factors=4)
    one = reg.gates(torch.randn(5, 6))
    many = reg.gates(torch.randn(3, 5, 6))
    assert one.shape == (4,) and many.shape == (3, 4)
    assert bool(((one > 0) & (one < 1)).all())
    assert reg.transform(torch.randn(7, 6), one).shape == (7, 6)
    assert reg.transform(torch.randn(3, 7, 6), many).shape == (3, 7, 6)
    narrow = MetaCRLRegularizer(feature_dim=6, num_factors=4, head_input="factors")
    assert narrow.transform(torch.randn(7, 6), one).shape == (7, 4)


def test_initial_gates_follow_gate_init_and_open_gates_keep_the_factor_subspace():
    reg = MetaCRLRegularizer(feature_dim=6, num_factors=6, gate_init=0.9).double()
    w = reg.gates(torch.randn(5, 6, dtype=torch.float64))
    assert torch.allclose(w, torch.full_like(w, 0.9), atol=0.05)
    # with M = d, orthonormal Xi and all gates at 1 the transform is the identity
    feats = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(
        reg.transform(feats, torch.ones(6, dtype=torch.float64)), feats, atol=1e-5
    )


def _unit_columns(*shape, seed=0):
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return m / m.norm(dim=0)


@pytest.mark.parametrize("shape", [(6, 6), (12, 30), (30, 12), (128, 128)])
def test_spectral_norm_estimate_is_close_to_the_largest_singular_value(shape):
    m = _unit_columns(*shape)
    true = float(torch.linalg.matrix_norm(m, ord=2))
    estimate = float(spectral_norm_estimate(m))
    assert estimate <= true * (1 + 1e-9)  # a Rayleigh quotient never overshoots
    assert estimate > 0.9 * true


def test_spectral_norm_estimate_of_collapsed_and_orthonormal_columns():
    same = torch.ones(5, 4, dtype=torch.float64) / math.sqrt(5)  # four equal columns
    assert float(spectral_norm_estimate(same)) == pytest.approx(2.0)  # sqrt(M)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert float(spectral_norm_estimate(q)) == pytest.approx(1.0)
    # the floor sqrt(M / min(d, M)) holds even when the start vector misses the top direction
    odd = torch.zeros(4, 2, dtype=torch.float64)
    odd[0, 0], odd[0, 1] = 1.0, -1.0  # the ones start vector is orthogonal to the top one
    assert float(spectral_norm_estimate(odd)) >= 1.0  # floor sqrt(2 / 2)


def test_spectral_norm_estimate_has_correct_first_and_second_derivatives():
    m = _unit_columns(5, 4, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(spectral_norm_estimate, (m,))
    assert torch.autograd.gradgradcheck(spectral_norm_estimate, (m,))
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))  # all singular values 1
    assert torch.autograd.gradgradcheck(spectral_norm_estimate, (q.requires_grad_(),))


def test_transform_never_lengthens_features_even_when_the_factors_collapse():
    reg = MetaCRLRegularizer(feature_dim=16, num_factors=32).double()
    with torch.no_grad():  # columns nearly all along one direction (a bad causal step)
        reg.xi.copy_(torch.randn(16, 1).repeat(1, 32) + 0.01 * torch.randn(16, 32))
    feats = torch.randn(10, 16, dtype=torch.float64)
    feats[:, :] += reg.xi[:, 0].detach()  # give the features a large part along that direction
    with torch.no_grad():
        out = reg.transform(feats, torch.ones(32, dtype=torch.float64))
        unit = reg.xi / reg.xi.norm(dim=0)
    assert bool((out.norm(dim=-1) <= feats.norm(dim=-1) * 1.001).all())
    # the unnormalised unit-column map would have multiplied them by about M = 32
    raw = feats @ unit @ unit.T
    assert float(raw.norm(dim=-1).max()) > 10 * float(feats.norm(dim=-1).max())


def test_frozen_directions_follow_every_change_of_xi():
    """The frozen directions are cached; in-place steps, loading and casting refresh them."""
    reg = MetaCRLRegularizer(feature_dim=6, num_factors=4)

    def fresh() -> torch.Tensor:
        return reg._directions(reg.xi.detach())

    first = reg.factor_directions(frozen=True)
    assert first is reg.factor_directions(frozen=True)  # cached
    assert not first.requires_grad
    torch.testing.assert_close(first, fresh(), rtol=0, atol=0)
    opt = torch.optim.SGD(reg.parameters(), lr=0.5)
    reg.xi.grad = torch.randn_like(reg.xi)
    opt.step()  # an optimiser's in-place update
    torch.testing.assert_close(reg.factor_directions(frozen=True), fresh(), rtol=0, atol=0)
    assert not torch.allclose(reg.factor_directions(frozen=True), first)
    reg.load_state_dict(MetaCRLRegularizer(feature_dim=6, num_factors=4).state_dict())
    torch.testing.assert_close(reg.factor_directions(frozen=True), fresh(), rtol=0, atol=0)
    reg.double()
    assert reg.factor_directions(frozen=True).dtype == torch.float64


def test_closed_gates_cut_the_features():
    reg = MetaCRLRegularizer(feature_dim=6, num_factors=6)
    out = reg.transform(torch.randn(4, 6), torch.zeros(6))
    assert float(out.detach().abs().max()) == 0.0


def _envs(learner, tasks=3, seed=0):
    return learner.environments(learner.as_batch(*random_batch(tasks=tasks, seed=seed)))


def test_causal_step_changes_xi_and_gate_net_but_not_theta():
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.5, inner_steps=2)
    reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, crl_steps=3).double()
    theta = {n: p.detach().clone() for n, p in learner.named_parameters()}
    xi = reg.xi.detach().clone()
    gr = [p.detach().clone() for p in reg.f_gr.parameters()]
    terms = reg.causal_step(_envs(learner), learner.head_task, learner.task_loss)
    assert not torch.equal(reg.xi, xi)
    assert all(not torch.equal(a, b) for a, b in zip(reg.f_gr.parameters(), gr, strict=True))
    assert all(torch.equal(p, theta[n]) for n, p in learner.named_parameters())
    assert terms.gates.shape == (3, 4)
    assert math.isfinite(float(terms.total))


def test_causal_steps_lower_the_causal_objective():
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.5, inner_steps=2)
    reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, crl_steps=1, xi_lr=0.05, gr_lr=0.05)
    reg = reg.double()
    envs = _envs(learner, tasks=4)
    first = float(reg.causal_objective(envs, learner.head_task, learner.task_loss).total.detach())
    for _ in range(30):
        reg.causal_step(envs, learner.head_task, learner.task_loss)
    last = float(reg.causal_objective(envs, learner.head_task, learner.task_loss).total.detach())
    assert last < first - 1e-3


def test_alternating_meta_step_updates_xi_internally_and_leaves_theta_to_the_optimizer():
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.5, inner_steps=2)
    reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, crl_steps=2)
    wrapped = reg.wrap(learner)
    theta = {n: p.detach().clone() for n, p in learner.named_parameters()}
    xi = reg.xi.detach().clone()
    out = wrapped.meta_step(*random_batch())
    assert not torch.equal(reg.xi, xi)
    assert all(torch.equal(p, theta[n]) for n, p in learner.named_parameters())
    out.loss.backward()
    assert reg.xi.grad is None and all(p.grad is None for p in reg.f_gr.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.parameters())


def test_joint_meta_step_sends_gradients_to_xi_gate_net_and_theta():
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.5, inner_steps=2)
    reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, mode="joint")
    wrapped = reg.wrap(learner)
    xi = reg.xi.detach().clone()
    out = wrapped.meta_step(*random_batch())
    assert torch.equal(reg.xi, xi)  # nothing moves before the optimiser steps
    out.loss.backward()
    for name, p in wrapped.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    assert out.loss > out.query_loss  # carries the MetaCRL terms


def test_wrapped_learner_parameters_include_xi_and_gate_net():
    reg = MetaCRLRegularizer(5, num_factors=4)
    wrapped = reg.wrap(MAML(tiny_model()))
    assert isinstance(wrapped, MetaCRLLearner)
    params = {id(p) for p in wrapped.parameters()}
    assert id(reg.xi) in params
    assert all(id(p) in params for p in reg.f_gr.parameters())
    assert reg.xi.dtype == torch.float64  # moved to the model's dtype
    assert wrapped.inner_steps == 5  # the base learner's settings are reachable


def test_wrap_module_returns_a_gated_model_that_includes_the_regularizer():
    model = tiny_model()
    reg = MetaCRLRegularizer(5, num_factors=4)
    net = reg.wrap(model)
    assert isinstance(net, GatedModel)
    assert any(p is reg.xi for p in net.parameters())
    x = torch.randn(6, 3, dtype=torch.float64)
    task = reg.task(model.features(x))
    out = net(x, task=task)
    assert out.shape == (6, 3)
    assert task.last_output is out


@pytest.mark.parametrize("refresh", [False, True])
def test_replay_adds_earlier_meta_batches_as_environments(refresh):
    torch.manual_seed(0)
    reg = MetaCRLRegularizer(5, num_factors=4, replay=2, crl_steps=1, refresh_replay=refresh)
    wrapped = reg.wrap(ProtoNet(tiny_model()))
    sizes = []
    for seed in range(4):
        sizes.append(len(wrapped._replayed_environments()))
        wrapped.meta_step(*random_batch(tasks=2, seed=seed))
    assert sizes == [0, 2, 4, 4]  # up to 2 earlier batches of 2 tasks each


def test_replayed_features_are_kept_or_refreshed():
    torch.manual_seed(0)
    model = tiny_model()
    stored = MetaCRLRegularizer(5, num_factors=4, replay=1).wrap(ProtoNet(model))
    refreshed = MetaCRLRegularizer(5, num_factors=4, replay=1, refresh_replay=True).wrap(
        ProtoNet(model)
    )
    batch = random_batch(tasks=2)
    stored.meta_step(*batch)
    refreshed.meta_step(*batch)
    a, b = stored._replayed_environments(), refreshed._replayed_environments()
    assert torch.equal(a[0].support_features, b[0].support_features)
    with torch.no_grad():  # the backbone moves on: only the refreshed replay follows it
        model.features[0].weight.add_(0.5)
    a, b = stored._replayed_environments(), refreshed._replayed_environments()
    assert not torch.equal(a[0].support_features, b[0].support_features)
    expected = model.features(batch[0][0])
    assert torch.allclose(b[0].support_features, expected)


def test_replay_zero_uses_the_current_batch_only():
    reg = MetaCRLRegularizer(5, num_factors=4, replay=0, crl_steps=1)
    wrapped = reg.wrap(ProtoNet(tiny_model()))
    for seed in range(3):
        wrapped.meta_step(*random_batch(tasks=2, seed=seed))
    assert wrapped._replayed_environments() == []


@pytest.mark.parametrize("refresh", [False, True])
def test_replay_is_saved_and_restored_with_the_state_dict(refresh):
    torch.manual_seed(0)
    reg = MetaCRLRegularizer(5, num_factors=4, replay=2, crl_steps=1, refresh_replay=refresh)
    wrapped = reg.wrap(MAML(tiny_model(), inner_lr=0.3, inner_steps=1))
    for seed in range(3):
        wrapped.meta_step(*random_batch(seed=seed))
    state = wrapped.state_dict()

    torch.manual_seed(1)
    other = MetaCRLRegularizer(
        5, num_factors=4, replay=2, crl_steps=1, refresh_replay=refresh
    ).wrap(MAML(tiny_model(), inner_lr=0.3, inner_steps=1))
    other.load_state_dict(state)
    nxt = random_batch(seed=9)
    a, b = wrapped.meta_step(*nxt), other.meta_step(*nxt)
    assert a.loss.item() == b.loss.item()
    assert torch.equal(reg.xi, other.regularizer.xi)
