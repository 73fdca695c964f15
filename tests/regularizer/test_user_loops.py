"""MetaCRL inside a user's own inner loop: higher, and torch.func."""

from __future__ import annotations

import higher
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metacrl import MAML, MetaCRLRegularizer, TaskFactors

from helpers import ClusterTasks, cluster_model, random_batch, tiny_model


def higher_meta_step(model, reg, net, inner_opt, batch, inner_steps=2):
    """A complete MAML meta-step written by a user on higher, with MetaCRL added."""
    x_spt, y_spt, x_qry, y_qry = batch
    query_losses = []
    for t in range(x_spt.shape[0]):
        task = reg.task(model.features(x_spt[t]))  # the task's gates, from its support set
        with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, diffopt):
            for _ in range(inner_steps):
                diffopt.step(F.cross_entropy(fnet(x_spt[t], task=task), y_spt[t]))
            query_losses.append(F.cross_entropy(fnet(x_qry[t], task=task), y_qry[t]))
    return torch.stack(query_losses).mean() + reg.penalty(query_losses)


def test_a_user_written_higher_loop_trains_with_metacrl():
    torch.manual_seed(0)
    model = cluster_model()
    reg = MetaCRLRegularizer(feature_dim=16, num_factors=16)
    net = reg.wrap(model)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.3)  # the lower level adapts θ only
    meta_opt = torch.optim.Adam(net.parameters(), lr=3e-3)  # θ, Xi and f_gr
    problem = ClusterTasks()
    stream = problem.stream(4, seed=1)
    test = problem.batch(8, torch.Generator().manual_seed(7))

    def test_loss():
        xs, ys, xq, yq = test
        losses = []
        for t in range(xs.shape[0]):
            task = reg.task(model.features(xs[t]).detach(), track=False)
            with higher.innerloop_ctx(
                net, inner_opt, copy_initial_weights=True, track_higher_grads=False
            ) as (fnet, diffopt):
                for _ in range(2):
                    diffopt.step(F.cross_entropy(fnet(xs[t], task=task), ys[t]))
                losses.append(F.cross_entropy(fnet(xq[t], task=task), yq[t]).item())
        return sum(losses) / len(losses)

    before = test_loss()
    xi_start = reg.xi.detach().clone()
    for _ in range(25):
        meta_opt.zero_grad()
        loss = higher_meta_step(model, reg, net, inner_opt, next(stream))
        loss.backward()
        assert reg.xi.grad is not None and float(reg.xi.grad.abs().sum()) > 0
        assert all(p.grad is not None for p in reg.f_gr.parameters())
        assert all(p.grad is not None for p in model.parameters())
        meta_opt.step()
    assert not torch.equal(reg.xi, xi_start)
    assert test_loss() < 0.8 * before


def test_higher_loop_matches_the_wrapped_maml_learner():
    """The same MAML+MetaCRL (joint) written by hand on higher gives the library's gradients."""
    batch = random_batch()
    torch.manual_seed(0)
    model = tiny_model()
    torch.manual_seed(1)
    reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, mode="joint", replay=0).double()

    # by hand: the library's joint loss is the mean query loss plus lambda_inv * L_inv + L_dis,
    # with L_inv computed by the causal proxy; compare the θ-part only: mean query loss
    net = reg.wrap(model)
    inner_opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xs, ys, xq, yq = batch
    losses = []
    for t in range(xs.shape[0]):
        task = reg.task(model.features(xs[t]), track=False)
        with higher.innerloop_ctx(net, inner_opt, copy_initial_weights=False) as (fnet, diffopt):
            for _ in range(2):
                diffopt.step(F.cross_entropy(fnet(xs[t], task=task), ys[t]))
            losses.append(F.cross_entropy(fnet(xq[t], task=task), yq[t]))
    by_hand = torch.autograd.grad(torch.stack(losses).mean(), list(model.parameters()))

    learner = MAML(model, inner_lr=0.5, inner_steps=2)
    out = learner.meta_step_on(learner.as_batch(*batch), lambda: TaskFactors(reg))
    library = torch.autograd.grad(out.loss, list(model.parameters()))
    for a, b in zip(by_hand, library, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("invariance", ["irm", "vrex"])
def test_a_user_written_torch_func_loop(invariance):
    torch.manual_seed(0)
    model = tiny_model()
    reg = MetaCRLRegularizer(5, num_factors=4, invariance=invariance).double()
    net = reg.wrap(model)
    xs, ys, xq, yq = random_batch()
    losses = []
    for t in range(xs.shape[0]):
        task = reg.task(model.features(xs[t]))
        params = {n: p for n, p in model.named_parameters()}
        loss = F.cross_entropy(functional_call(net, params, (xs[t],), {"task": task}), ys[t])
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {n: p - 0.5 * g for (n, p), g in zip(params.items(), grads, strict=True)}
        out = functional_call(net, params, (xq[t],), {"task": task})
        losses.append(F.cross_entropy(out, yq[t]))
    penalty = reg.penalty(losses)
    assert float(penalty.detach()) > 0
    (torch.stack(losses).mean() + penalty).backward()
    assert float(reg.xi.grad.abs().sum()) > 0


def test_untracked_and_reset_tasks_stay_out_of_the_penalty():
    reg = MetaCRLRegularizer(5, num_factors=4).double()
    feats = torch.randn(4, 5, dtype=torch.float64)
    reg.task(feats, track=False)
    reg.task(feats)
    reg.reset_tasks()
    with pytest.raises(ValueError, match="no task is open"):
        reg.penalty([torch.tensor(1.0)])


def test_penalty_uses_the_recorded_query_outputs_for_irm():
    torch.manual_seed(0)
    model = tiny_model()
    reg = MetaCRLRegularizer(5, num_factors=4, lambda_orth=0.0, lambda_gate=0.0).double()
    net = reg.wrap(model)
    xs, ys, xq, yq = random_batch()
    outs, losses = [], []
    for t in range(2):
        task = reg.task(model.features(xs[t]))
        net(xs[t], task=task)  # a support forward first ...
        outs.append(net(xq[t], task=task))  # ... the query forward is the last one recorded
        losses.append(F.cross_entropy(outs[-1], yq[t]))
    implicit = reg.penalty(losses)
    for t in range(2):
        reg.task(model.features(xs[t]))
    explicit = reg.penalty(losses, outs)
    assert float(implicit.detach()) == pytest.approx(float(explicit.detach()))
    assert float(implicit.detach()) > 0
