"""The learners' meta-gradients through inner loops: finite differences, backends, vmap."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metacrl import MAML, MetaCRLRegularizer, MetaSGD, ProtoNet

from gradcheck import GRADIENT_LEARNERS, _finite_differences, _grads, _learner, _max_diff
from helpers import random_batch, tiny_model


@pytest.mark.parametrize("name", [*GRADIENT_LEARNERS, "protonet"])
def test_second_order_meta_gradient_matches_finite_differences(name):
    batch = random_batch()
    learner = _learner(name)
    analytic = _grads(learner, batch)
    numeric = _finite_differences(learner, batch)
    assert _max_diff(analytic, numeric) < 1e-7
    # the check is not vacuous: gradients are far from zero
    assert max(float(g.abs().max()) for g in analytic.values()) > 1e-2


@pytest.mark.parametrize("name", list(GRADIENT_LEARNERS))
def test_first_order_meta_gradient_differs_from_true_gradient(name):
    batch = random_batch()
    numeric = _finite_differences(_learner(name), batch)
    first_order = _grads(_learner(name, first_order=True), batch)
    assert _max_diff(first_order, numeric) > 1e-3
    # ... but it is an approximation of it, not noise
    flat_fo = torch.cat([g.flatten() for g in first_order.values()])
    flat_true = torch.cat([g.flatten() for g in numeric.values()])
    assert torch.nn.functional.cosine_similarity(flat_fo, flat_true, dim=0) > 0.5


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("name", list(GRADIENT_LEARNERS))
def test_func_and_higher_backends_give_the_same_gradients(name, first_order):
    batch = random_batch()
    func = _grads(_learner(name, first_order=first_order, backend="func"), batch)
    hig = _grads(_learner(name, first_order=first_order, backend="higher"), batch)
    assert _max_diff(func, hig) < 1e-6


def test_meta_gradient_flows_through_batchnorm_in_the_inner_loop():
    torch.manual_seed(0)
    model = tiny_model()
    model.features = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh()).double()
    batch = random_batch()
    func = _grads(MAML(model, inner_lr=0.5, inner_steps=2), batch)
    hig = _grads(MAML(model, inner_lr=0.5, inner_steps=2, backend="higher"), batch)
    assert _max_diff(func, hig) < 1e-6


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("cls", [MAML, MetaSGD])
def test_batched_linear_head_path_equals_the_generic_inner_loop(cls, loss):
    """The causal step's closed-form path for nn.Linear heads is the inner loop, exactly."""
    torch.manual_seed(0)
    n_out = 3
    linear = tiny_model(n_out=n_out)
    generic = tiny_model(n_out=n_out)
    generic.head = nn.Sequential(nn.Linear(5, n_out)).double()  # not a bare Linear: loop path
    generic.head[0].load_state_dict(linear.head.state_dict())
    fast = cls(linear, inner_lr=0.4, inner_steps=3, loss=loss)
    slow = cls(generic, inner_lr=0.4, inner_steps=3, loss=loss)
    if cls is MetaSGD:  # distinct per-element step sizes, shared by both
        with torch.no_grad():
            for name, rate in fast.lrs.items():
                rate.uniform_(0.1, 0.6)
                slow.lrs[name.replace("head__", "head__0__")].copy_(rate)
    h_spt = torch.randn(4, 6, 5, dtype=torch.float64, requires_grad=True)
    h_qry = torch.randn(4, 9, 5, dtype=torch.float64, requires_grad=True)
    if loss == "cross_entropy":
        y_spt = torch.randint(0, n_out, (4, 6))
    else:
        y_spt = torch.randn(4, 6, n_out, dtype=torch.float64)
    out_fast = fast.head_task(h_spt, y_spt, h_qry, fast.task_loss)
    out_slow = slow.head_task(h_spt, y_spt, h_qry, slow.task_loss)
    assert torch.allclose(out_fast, out_slow, atol=1e-12)
    # first and second derivatives with respect to the inputs agree too
    probe = torch.randn_like(out_fast)
    g_fast = torch.autograd.grad((out_fast * probe).sum(), [h_spt, h_qry], create_graph=True)
    g_slow = torch.autograd.grad((out_slow * probe).sum(), [h_spt, h_qry], create_graph=True)
    for a, b in zip(g_fast, g_slow, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    gg_fast = torch.autograd.grad(g_fast[0].square().sum(), h_spt)[0]
    gg_slow = torch.autograd.grad(g_slow[0].square().sum(), h_spt)[0]
    assert torch.allclose(gg_fast, gg_slow, atol=1e-10)
    assert float(gg_fast.abs().max()) > 0


@pytest.mark.parametrize("mode", [None, "alternating", "joint"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("name", list(GRADIENT_LEARNERS))
def test_vmap_backend_gives_the_func_backend_results(name, first_order, mode):
    batch = random_batch(tasks=3)

    def run(backend):
        learner = _learner(name, first_order=first_order, backend=backend)
        if mode is not None:
            torch.manual_seed(2)
            reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, mode=mode, crl_steps=1)
            learner = reg.wrap(learner)
        grads = _grads(learner, batch)
        return grads, learner.evaluate(*batch, inner_steps=3)

    (g_func, ev_func), (g_vmap, ev_vmap) = run("func"), run("vmap")
    assert _max_diff(g_func, g_vmap) < 1e-10
    assert torch.allclose(ev_func.task_losses, ev_vmap.task_losses, atol=1e-12)
    assert torch.equal(ev_func.task_scores, ev_vmap.task_scores)


def test_vmap_backend_is_exact_through_task_batchnorm_in_a_conv_net():
    from metacrl.models import Conv4

    torch.manual_seed(0)
    model = Conv4(hidden=4, n_way=3, image_size=16, track_running_stats=False).double()
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(2, 3, 3, 16, 16, generator=g, dtype=torch.float64),
        torch.arange(3).expand(2, 3),
        torch.randn(2, 6, 3, 16, 16, generator=g, dtype=torch.float64),
        torch.arange(3).repeat(2).expand(2, 6),
    )
    loop = _grads(MAML(model, inner_lr=0.1, inner_steps=2), batch)
    batched = _grads(MAML(model, inner_lr=0.1, inner_steps=2, backend="vmap"), batch)
    assert _max_diff(loop, batched) < 1e-10


def test_vmap_backend_refuses_torch_batchnorm():
    model = tiny_model()
    model.features = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh()).double()
    with pytest.raises(ValueError, match="backend='vmap' cannot take features.1 \\(BatchNorm1d\\)"):
        MAML(model, backend="vmap")
    from metacrl.learners import MetaLearner

    class Prototypes(ProtoNet):  # a learner without a batched implementation
        def __init__(self, m):
            MetaLearner.__init__(self, m, backend="vmap")

    with pytest.raises(ValueError, match="backend='vmap' is not available for Prototypes"):
        Prototypes(tiny_model())


def test_batched_linear_head_path_keeps_a_frozen_bias_fixed():
    """As in the generic inner loop, a bias with requires_grad=False is not adapted."""
    torch.manual_seed(0)
    linear, generic = tiny_model(n_out=3), tiny_model(n_out=3)
    generic.head = nn.Sequential(nn.Linear(5, 3)).double()  # not a bare Linear: loop path
    generic.head[0].load_state_dict(linear.head.state_dict())
    linear.head.bias.requires_grad_(False)
    generic.head[0].bias.requires_grad_(False)
    fast = MAML(linear, inner_lr=0.4, inner_steps=3)
    slow = MAML(generic, inner_lr=0.4, inner_steps=3)
    h_spt = torch.randn(4, 6, 5, dtype=torch.float64)
    h_qry = torch.randn(4, 9, 5, dtype=torch.float64)
    y_spt = torch.randint(0, 3, (4, 6))
    out_fast = fast.head_task(h_spt, y_spt, h_qry, fast.task_loss)
    out_slow = slow.head_task(h_spt, y_spt, h_qry, slow.task_loss)
    torch.testing.assert_close(out_fast, out_slow, rtol=0, atol=1e-12)
