"""Learners and backbones wrapped by MetaCRL: evaluation, shared features, ResNet-12, bf16."""

from __future__ import annotations

import pytest
import torch

from metacrl import ANIL, MAML, MetaCRLRegularizer, ProtoNet
from metacrl.models import Conv4, ResNet12

from helpers import _few_shot_batch, random_batch, tiny_model


def test_evaluate_does_not_change_the_model_or_the_regularizer():
    torch.manual_seed(0)
    reg = MetaCRLRegularizer(5, num_factors=4)
    learner = reg.wrap(MAML(tiny_model(), inner_lr=0.3, inner_steps=2))
    before = {k: v.clone() for k, v in learner.state_dict().items() if torch.is_tensor(v)}
    learner.evaluate(*random_batch())
    after = learner.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["anil", "protonet"])
@pytest.mark.parametrize("mode", ["alternating", "joint"])
def test_metacrl_reuses_the_meta_steps_features_where_the_backbone_is_not_adapted(name, mode):
    """ANIL/ProtoNet + MetaCRL run the backbone once per set; the result equals two passes."""

    def run(share: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        torch.manual_seed(0)
        model = tiny_model(n_out=3)
        base = ANIL(model, inner_lr=0.3, inner_steps=2) if name == "anil" else ProtoNet(model)
        if not share:
            base.adapts_backbone = True  # the general path: environments by a second pass
        reg = MetaCRLRegularizer(5, num_factors=4, hidden_dim=3, crl_steps=2, mode=mode)
        learner = reg.wrap(base).double()
        calls = []
        model.features.register_forward_hook(lambda *_: calls.append(1))
        for seed in range(3):  # the later steps replay the earlier batches
            out = learner.meta_step(*random_batch(tasks=2, seed=seed))
        grads = torch.autograd.grad(out.loss, [p for p in learner.parameters()], allow_unused=True)
        return out.loss.detach(), [g for g in grads if g is not None], len(calls)

    loss, grads, calls = run(share=True)
    loss2, grads2, calls2 = run(share=False)
    assert calls == 3 * 2 * 2 and calls2 == 2 * calls  # 3 steps x 2 tasks x (support, query)
    torch.testing.assert_close(loss, loss2, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(grads2) > 0
    for g, g2 in zip(grads, grads2, strict=True):
        torch.testing.assert_close(g, g2, rtol=1e-10, atol=1e-12)


def test_resnet12_with_metacrl_meta_step():
    torch.manual_seed(0)
    model = ResNet12(n_way=3, image_size=16, channels=(8, 16, 16, 32))
    learner = MetaCRLRegularizer(32, num_factors=16, crl_steps=1).wrap(
        MAML(model, inner_lr=0.05, inner_steps=1)
    )
    out = learner.meta_step(*_few_shot_batch((3, 16, 16)))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bf16_autocast_works_with_metacrl():
    torch.manual_seed(0)
    model = Conv4(hidden=8, n_way=3, image_size=32)
    batch = _few_shot_batch((3, 32, 32))
    losses = {}
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(1)  # the same Xi and f_gr both times
        reg = MetaCRLRegularizer(feature_dim=model.feature_dim, crl_steps=1)
        learner = reg.wrap(MAML(model, inner_lr=0.05, inner_steps=1))
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            out = learner.meta_step(*batch)
        out.loss.backward()
        assert reg.xi.grad is None  # alternating: Xi moved by the causal step, not by backward
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        losses[dtype] = out.loss.item()
    assert losses[torch.bfloat16] == pytest.approx(losses[None], rel=0.02)
