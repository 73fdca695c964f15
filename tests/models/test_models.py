"""Backbones: published shapes and sizes, the features/head split, learners on each backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from metacrl import MAML
from metacrl.models import MLP, Conv4, DropBlock, ResNet12, check_model

from helpers import _few_shot_batch


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("model", "sample", "feature_dim", "feature_params", "total_params"),
    [
        # MAML's miniImageNet net: 32 filters, 800 features, 5-way head
        (lambda: Conv4(hidden=32, n_way=5, image_size=84), (3, 84, 84), 800, 28_896, 32_901),
        # ProtoNet's Conv4-64: 1,600 features, 113,088 parameters in the embedding
        (lambda: Conv4(hidden=64, n_way=5, image_size=84), (3, 84, 84), 1600, 113_088, None),
        # MetaOptNet/FEAT ResNet-12 (64-160-320-640): 12.4M parameters, 640 features
        (lambda: ResNet12(n_way=5, image_size=84), (3, 84, 84), 640, 12_424_320, None),
        # MAML's sinusoid MLP: 1-40-40-1
        (lambda: MLP(), (1,), 40, 1_720, 1_761),
    ],
)
def test_published_shapes_and_parameter_counts(
    model, sample, feature_dim, feature_params, total_params
):
    torch.manual_seed(0)
    net = check_model(model())
    assert net.feature_dim == feature_dim
    assert n_params(net.features) == feature_params
    if total_params is not None:
        assert n_params(net) == total_params
    net.eval()
    x = torch.randn(2, *sample)
    with torch.no_grad():
        feats = net.features(x)
        assert feats.shape == (2, feature_dim)
        # features/head composition is the full forward
        assert torch.equal(net.head(feats), net(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv4(hidden=8, image_size=32),
        lambda: ResNet12(image_size=32, channels=(8, 8, 16, 16)),
        lambda: MLP(in_features=3),
    ],
)
def test_forward_is_deterministic_for_a_seed(make):
    def run():
        torch.manual_seed(3)
        net = make()  # train mode: ResNet12's dropout/DropBlock draw from the seed too
        sample = (3,) if isinstance(net, MLP) else (3, 32, 32)
        return net(torch.randn(4, *sample))

    assert torch.equal(run(), run())


def test_wrong_input_shape_is_named():
    with pytest.raises(
        ValueError, match=r"Conv4 expects inputs \[batch, 3, 84, 84\], got \(2, 3, 32, 32\)"
    ):
        Conv4(image_size=84).features(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"ResNet12 expects inputs \[batch, 1, 32, 32\]"):
        ResNet12(in_channels=1, image_size=32)(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"MLP expects inputs \[batch, 1\], got \(5,\)"):
        MLP()(torch.zeros(5))
    with pytest.raises(ValueError, match="image_size must be an integer >= 16"):
        Conv4(image_size=8)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        Conv4(hidden=0)


BACKBONES = {
    "conv4": (lambda: Conv4(hidden=16, n_way=3, image_size=32), (3, 32, 32), "cross_entropy"),
    "resnet12": (
        lambda: ResNet12(n_way=3, image_size=16, drop_rate=0.0),
        (3, 16, 16),
        "cross_entropy",
    ),
    "mlp": (lambda: MLP(), (1,), "mse"),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_trains_one_maml_step_under_both_backends(name):
    make, sample, loss = BACKBONES[name]
    batch = _few_shot_batch(sample)
    if loss == "mse":
        batch = (batch[0], batch[1].float()[..., None], batch[2], batch[3].float()[..., None])
    grads, params = {}, {}
    for backend in ("func", "higher"):
        torch.manual_seed(0)
        model = make().double()
        learner = MAML(model, inner_lr=0.05, inner_steps=2, loss=loss, backend=backend)
        opt = torch.optim.SGD(learner.parameters(), lr=0.1)
        out = learner.meta_step(*batch)
        out.loss.backward()
        grads[backend] = [p.grad.clone() for p in learner.parameters()]
        opt.step()
        params[backend] = [p.detach().clone() for p in learner.parameters()]
        assert all(torch.isfinite(g).all() for g in grads[backend])
        assert any(float(g.abs().max()) > 0 for g in grads[backend])
    for a, b in zip(grads["func"], grads["higher"], strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_without_running_stats_the_model_has_no_buffers_and_vmaps_over_tasks():
    torch.manual_seed(0)
    net = Conv4(hidden=8, n_way=3, image_size=32, track_running_stats=False)
    assert list(net.buffers()) == []
    params = dict(net.named_parameters())
    tasks = torch.randn(4, 5, 3, 32, 32)
    batched = vmap(lambda x: functional_call(net, params, (x,)))(tasks)
    looped = torch.stack([net(x) for x in tasks])
    assert torch.allclose(batched, looped, atol=1e-5)
    # each task is normalised with its own statistics: stacking tasks in one batch differs
    assert not torch.allclose(net(tasks.flatten(0, 1)).view(4, 5, 3), looped, atol=1e-3)


def test_running_stats_are_kept_for_eval_mode():
    net = Conv4(hidden=8, n_way=3, image_size=32)
    bn = net.features[0][1]
    before = bn.running_mean.clone()
    net(torch.randn(5, 3, 32, 32) + 2.0)
    assert not torch.equal(bn.running_mean, before)


def _maml_step(model, batch, first_order=False, **autocast):
    learner = MAML(model, inner_lr=0.05, inner_steps=2, first_order=first_order)
    learner.zero_grad()
    with torch.autocast("cpu", enabled=bool(autocast), **autocast):
        out = learner.meta_step(*batch)
    out.loss.backward()
    return out.loss.item(), torch.cat([p.grad.flatten() for p in learner.parameters()])


def test_bf16_autocast_works_through_a_second_order_inner_loop():
    torch.manual_seed(0)
    model = Conv4(hidden=8, n_way=3, image_size=32)
    batch = _few_shot_batch((3, 32, 32))
    cosine = {}
    for first_order in (False, True):
        loss, full = _maml_step(model, batch, first_order)
        loss_bf16, bf16 = _maml_step(model, batch, first_order, dtype=torch.bfloat16)
        assert torch.isfinite(bf16).all()
        assert not torch.equal(full, bf16)  # autocast really ran in bfloat16
        assert loss_bf16 == pytest.approx(loss, rel=0.02)
        cosine[first_order] = float(torch.nn.functional.cosine_similarity(full, bf16, dim=0))
    # bf16 rounding (about 3 digits) perturbs these small random-data gradients; the
    # second-order terms add no error of their own beyond what first-order sees
    assert cosine[False] > 0.7
    assert abs(cosine[False] - cosine[True]) < 0.05


def test_float16_autocast_is_refused_in_second_order_mode():
    model = Conv4(hidden=8, n_way=3, image_size=32)
    batch = _few_shot_batch((3, 32, 32))
    with (
        pytest.raises(ValueError, match="float16 autocast gives NaN in second-order"),
        torch.autocast("cpu", dtype=torch.float16),
    ):
        MAML(model).meta_step(*batch)
    with torch.autocast("cpu", dtype=torch.float16):  # first-order has no double backward
        MAML(model, first_order=True).meta_step(*batch)


def test_channels_last_gives_the_same_meta_gradients():
    torch.manual_seed(0)
    model = Conv4(hidden=8, n_way=3, image_size=32)
    batch = _few_shot_batch((3, 32, 32))
    _, plain = _maml_step(model, batch)
    model = model.to(memory_format=torch.channels_last)
    assert model.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(_maml_step(model, batch)[1], plain, atol=1e-5)


def test_dropblock_drops_about_the_rate_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = DropBlock(drop_rate=0.2, block_size=3)
    x = torch.ones(8, 16, 12, 12)
    y = drop(x)
    dropped = float((y == 0).float().mean())
    assert 0.1 < dropped < 0.3
    assert float(y.mean()) == pytest.approx(1.0, abs=1e-5)  # kept units are rescaled
    # zeros come in 3x3 blocks: a dropped pixel has at least 3 dropped pixels in its window
    zero = (y == 0).float().flatten(0, 1).unsqueeze(1)
    counts = torch.nn.functional.avg_pool2d(zero, 3, 1, 1) * 9
    assert bool((counts[zero == 1] >= 3 - 1e-4).all())
    # plain dropout of the same rate would leave most dropped pixels isolated
    scattered = (torch.rand_like(x) < 0.2).float().flatten(0, 1).unsqueeze(1)
    scattered_counts = torch.nn.functional.avg_pool2d(scattered, 3, 1, 1) * 9
    assert not bool((scattered_counts[scattered == 1] >= 3 - 1e-4).all())
    drop.eval()
    assert torch.equal(drop(x), x)


def test_task_batchnorm_equals_torch_batchnorm_without_running_stats():
    from metacrl.models import TaskBatchNorm

    torch.manual_seed(0)
    ours, ref = TaskBatchNorm(4).double(), nn.BatchNorm2d(4, track_running_stats=False).double()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-0.5, 0.5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    a, b = ours(x), ref(x)
    assert torch.allclose(a, b, atol=1e-12)
    probe = torch.randn_like(a)
    ga = torch.autograd.grad((a * probe).sum(), [x, ours.weight], create_graph=True)
    gb = torch.autograd.grad((b * probe).sum(), [x, ref.weight], create_graph=True)
    assert all(torch.allclose(p, q, atol=1e-10) for p, q in zip(ga, gb, strict=True))
    # vectors [B, C] too (BatchNorm1d)
    v = torch.randn(7, 4, dtype=torch.float64)
    ref1 = nn.BatchNorm1d(4, track_running_stats=False).double()
    ref1.load_state_dict(ours.state_dict())
    assert torch.allclose(ours(v), ref1(v), atol=1e-12)
