"""Meta-gradients through inner loops, checked by central finite differences in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metacrl import ANIL, MAML, MetaCRLRegularizer, MetaSGD, ProtoNet
from metacrl.learners.base import Learner

from conftest import random_batch, tiny_model

EPS = 1e-6


def _grads(learner: Learner, batch) -> dict[str, torch.Tensor]:
    learner.zero_grad(set_to_none=True)
    learner.meta_step(*batch).loss.backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in learner.named_parameters()
    }


def _finite_differences(learner: Learner, batch, names=None) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in learner.named_parameters():
        if names is not None and name not in names:
            continue
        fd = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + EPS
            plus = learner.meta_step(*batch).loss.item()
            flat[i] = old - EPS
            minus = learner.meta_step(*batch).loss.item()
            flat[i] = old
            fd.view(-1)[i] = (plus - minus) / (2 * EPS)
        out[name] = fd
    return out


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


GRADIENT_LEARNERS = {
    "maml": lambda m, **kw: MAML(m, inner_lr=0.5, inner_steps=2, **kw),
    "anil": lambda m, **kw: ANIL(m, inner_lr=0.5, inner_steps=2, **kw),
    "metasgd": lambda m, **kw: MetaSGD(m, inner_lr=0.5, inner_steps=2, **kw),
}


def _learner(name: str, seed: int = 1, **kw) -> Learner:
    torch.manual_seed(seed)
    if name == "protonet":
        return ProtoNet(tiny_model())
    return GRADIENT_LEARNERS[name](tiny_model(), **kw)


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


@pytest.mark.parametrize("invariance", ["irm", "vrex"])
@pytest.mark.parametrize("name", ["maml", "anil", "metasgd", "protonet"])
def test_joint_mode_gradients_of_xi_and_gate_net_match_finite_differences(name, invariance):
    batch = random_batch()
    wrapped = _regularizer("joint", invariance).wrap(_learner(name))
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


def test_causal_objective_gradient_matches_finite_differences():
    reg = _regularizer("alternating")
    learner = _learner("maml")
    envs = learner.environments(learner.as_batch(*random_batch(tasks=3)))
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
    from metacrl.learners.base import MetaLearner

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
