"""MetaCRLRegularizer: gates and transform, the causal step, wrapping, replay."""

from __future__ import annotations

import math

import pytest
import torch

from metacrl import ANIL, MAML, GatedModel, MetaCRLLearner, MetaCRLRegularizer, ProtoNet
from metacrl.regularizer.penalties import gate_loss, orthogonality_loss

from helpers import random_batch, tiny_model


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


@pytest.mark.parametrize("num_factors", [3, 6])
def test_orthonormal_basis_keeps_every_direction_however_xi_moves(num_factors):
    reg = MetaCRLRegularizer(feature_dim=6, num_factors=num_factors, basis="orthonormal").double()
    with torch.no_grad():  # columns turned towards each other, as a causal step can do
        reg.xi.copy_(torch.randn(6, 1).repeat(1, num_factors) + 0.05 * torch.randn(6, num_factors))
    u = reg.factor_directions().detach()
    eye = torch.eye(num_factors, dtype=torch.float64)
    torch.testing.assert_close(u.T @ u, eye, rtol=0, atol=1e-10)
    # U spans Xi's columns, and each U column points along the Gram-Schmidt direction of Xi's
    unit = reg.xi.detach() / reg.xi.detach().norm(dim=0)
    torch.testing.assert_close(u @ (u.T @ unit), unit, rtol=0, atol=1e-10)
    assert float((u[:, 0] * unit[:, 0]).sum()) == pytest.approx(1.0)
    feats = torch.randn(4, 6, dtype=torch.float64)
    out = reg.transform(feats, torch.ones(num_factors, dtype=torch.float64)).detach()
    if num_factors == 6:  # M = d with open gates: the identity, whatever Xi is
        torch.testing.assert_close(out, feats, rtol=0, atol=1e-10)
    else:  # the orthogonal projection onto Xi's columns
        torch.testing.assert_close(out, feats @ u @ u.T, rtol=0, atol=1e-12)
    # the normalized basis of the same Xi loses directions: the case the option is for
    normalized = MetaCRLRegularizer(feature_dim=6, num_factors=num_factors).double()
    normalized.load_state_dict(reg.state_dict())
    assert float(torch.linalg.svdvals(normalized.factor_directions().detach()).min()) < 0.2


def test_orthonormal_basis_starts_at_xi_and_needs_no_more_factors_than_features():
    torch.manual_seed(0)
    reg = MetaCRLRegularizer(feature_dim=8, num_factors=5, basis="orthonormal")
    torch.testing.assert_close(reg.factor_directions().detach(), reg.xi.detach(), atol=1e-5, rtol=0)
    assert "basis='orthonormal'" in repr(reg)
    with pytest.raises(ValueError, match="num_factors <= feature_dim"):
        MetaCRLRegularizer(feature_dim=8, num_factors=9, basis="orthonormal")
    with pytest.raises(ValueError, match="basis"):
        MetaCRLRegularizer(feature_dim=8, basis="polar")  # type: ignore[arg-type]


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
    return learner.task_features(learner.as_batch(*random_batch(tasks=tasks, seed=seed)))


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
    assert wrapped.learner.inner_steps == 5  # the base learner stays reachable


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
        sizes.append(len(wrapped.replayed_environments()))
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
    a, b = stored.replayed_environments(), refreshed.replayed_environments()
    assert torch.equal(a[0].support_features, b[0].support_features)
    with torch.no_grad():  # the backbone moves on: only the refreshed replay follows it
        model.features[0].weight.add_(0.5)
    a, b = stored.replayed_environments(), refreshed.replayed_environments()
    assert not torch.equal(a[0].support_features, b[0].support_features)
    expected = model.features(batch[0][0])
    assert torch.allclose(b[0].support_features, expected)


def test_replay_zero_uses_the_current_batch_only():
    reg = MetaCRLRegularizer(5, num_factors=4, replay=0, crl_steps=1)
    wrapped = reg.wrap(ProtoNet(tiny_model()))
    for seed in range(3):
        wrapped.meta_step(*random_batch(tasks=2, seed=seed))
    assert wrapped.replayed_environments() == []


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


def test_orthogonality_off_by_default_is_exactly_the_term_times_zero():
    class TermTimesZero(MetaCRLRegularizer):
        def disentanglement_loss(self, gates: torch.Tensor) -> torch.Tensor:
            orth = self.lambda_orth * orthogonality_loss(self.xi)
            return orth + self.lambda_gate * gate_loss(gates)

    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.5, inner_steps=2)
    skipped = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, crl_steps=3).double()
    computed = TermTimesZero(5, num_factors=4, hidden_dim=3, crl_steps=3).double()
    computed.load_state_dict(skipped.state_dict())
    assert skipped.lambda_orth == 0.0
    envs = _envs(learner)
    for reg in (skipped, computed):
        reg.causal_step(envs, learner.head_task, learner.task_loss)
    assert torch.equal(skipped.xi, computed.xi)
    for a, b in zip(skipped.f_gr.parameters(), computed.f_gr.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("learner_class", [MAML, ANIL])
def test_the_environments_keep_env_queries_query_examples_spread_over_the_set(learner_class):
    torch.manual_seed(0)
    model = tiny_model()
    reg = MetaCRLRegularizer(5, num_factors=4, crl_steps=1, env_queries=3).double()
    wrapped = reg.wrap(learner_class(model, inner_lr=0.3, inner_steps=1))
    batch = random_batch(tasks=2, k_query=2)  # labels 0, 1, 2, 0, 1, 2 in each query set
    wrapped.meta_step(*batch)
    (envs,) = [value for kind, value in wrapped.get_extra_state()["replay"]]
    with torch.no_grad():
        for t, (f_s, _, f_q, y_q) in enumerate(envs):
            assert y_q.tolist() == batch[3][t][[0, 2, 4]].tolist()
            torch.testing.assert_close(f_q, model.features(batch[2][t][[0, 2, 4]]))
            assert f_s.shape == (6, 5)  # the support set is whole


@pytest.mark.parametrize("learner_class", [MAML, ANIL])
def test_env_queries_of_at_least_every_query_keeps_them_all(learner_class):
    states = []
    for env_queries in (None, 6, 7, 100):  # the batches have 6 query examples a task
        torch.manual_seed(0)
        reg = MetaCRLRegularizer(5, num_factors=4, crl_steps=2, env_queries=env_queries)
        wrapped = reg.double().wrap(learner_class(tiny_model(), inner_lr=0.3, inner_steps=1))
        for seed in range(2):
            wrapped.meta_step(*random_batch(tasks=2, k_query=2, seed=seed)).loss.backward()
        states.append(wrapped.state_dict())
    for state in states[1:]:
        for name, value in states[0].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, state[name]), name


def test_env_queries_below_one_is_refused():
    for bad in (0, -3):
        with pytest.raises(ValueError, match=r"env_queries"):
            MetaCRLRegularizer(5, env_queries=bad)
