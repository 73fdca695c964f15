"""The whole method in a user's own loop: ``net.meta_batch`` equals ``reg.wrap(MAML(...))``."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import higher
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metacrl import MAML, MetaCRLRegularizer

from helpers import random_batch, tiny_model

INNER_LR, INNER_STEPS, META_LR = 0.3, 2, 0.1


DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugging-in.md"


def docs_function(name):
    """A function as a code block of docs/plugging-in.md defines it (so the docs are tested)."""
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL):
        for node in ast.parse(block).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                namespace = {"torch": torch, "F": F, "higher": higher}
                namespace["functional_call"] = functional_call
                exec(compile(ast.Module([node], []), str(DOCS), "exec"), namespace)
                return namespace[name]
    raise AssertionError(f"docs/plugging-in.md defines no {name}()")


def higher_loop(model, net, inner_opt, meta_opt, batch):
    """One meta-step of a user's higher MAML loop with MetaCRL, exactly as the docs show."""
    step = docs_function("higher_meta_step")
    return step(net, inner_opt, meta_opt, *batch, inner_steps=INNER_STEPS)


def func_loop(model, net, inner_opt, meta_opt, batch):
    """The same meta-step on torch.func, exactly as the docs show."""
    step = docs_function("func_meta_step")
    return step(model, net, meta_opt, *batch, inner_steps=INNER_STEPS, lr=INNER_LR)


def replay_tensors(state):
    return [t for _, envs in state for env in envs for t in env]


@pytest.mark.parametrize("loop", [higher_loop, func_loop], ids=["higher", "func"])
@pytest.mark.parametrize(
    ("mode", "env_queries"), [("alternating", None), ("joint", None), ("alternating", 4)]
)
def test_a_user_loop_makes_the_same_meta_steps_as_the_wrapped_maml(loop, mode, env_queries):
    torch.manual_seed(0)
    settings = {"num_factors": 4, "hidden_dim": 6, "mode": mode, "replay": 2, "crl_steps": 2}
    settings["env_queries"] = env_queries
    model_a = tiny_model()
    model_b = copy.deepcopy(model_a)
    reg_a = MetaCRLRegularizer(5, **settings).double()
    reg_b = MetaCRLRegularizer(5, **settings).double()
    reg_b.load_state_dict(reg_a.state_dict())

    learner = reg_a.wrap(MAML(model_a, inner_lr=INNER_LR, inner_steps=INNER_STEPS))
    opt_a = torch.optim.SGD(learner.parameters(), lr=META_LR)
    net = reg_b.wrap(model_b, head_lr=INNER_LR, head_steps=INNER_STEPS)
    inner_opt = torch.optim.SGD(model_b.parameters(), lr=INNER_LR)
    opt_b = torch.optim.SGD(net.parameters(), lr=META_LR)

    xi_start = reg_a.xi.detach().clone()
    for step in range(3):
        batch = random_batch(tasks=3, seed=step)
        opt_a.zero_grad()
        learner.meta_step(*batch).loss.backward()
        opt_a.step()
        loop(model_b, net, inner_opt, opt_b, batch)

    moved = float((reg_a.xi.detach() - xi_start).abs().max())
    assert moved > 1e-3  # Xi did move, so the comparison is not of untouched weights
    for (name, a), (name_b, b) in zip(
        learner.named_parameters(), net.named_parameters(), strict=True
    ):
        assert name.removeprefix("learner.model.") == name_b
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    state_a = learner.get_extra_state()["replay"]
    state_b = net.get_extra_state()["replay"]
    assert len(state_a) == len(state_b) == 2
    for a, b in zip(replay_tensors(state_a), replay_tensors(state_b), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_the_parameter_orders_of_the_two_ways_agree():
    reg = MetaCRLRegularizer(5, num_factors=4)
    model = tiny_model()
    names_learner = [n for n, _ in reg.wrap(MAML(model)).named_parameters()]
    names_loop = [n for n, _ in reg.wrap(model).named_parameters()]
    assert [n.removeprefix("learner.model.") for n in names_learner] == names_loop


def _batch_and_net(**settings):
    torch.manual_seed(0)
    reg = MetaCRLRegularizer(5, num_factors=4, crl_steps=1, **settings).double()
    net = reg.wrap(tiny_model(), head_lr=0.3, head_steps=1)
    return net, random_batch(tasks=2)


def test_the_replay_of_a_user_loop_is_saved_and_restored():
    net, batch = _batch_and_net(replay=2)
    for seed in range(3):
        crl = net.meta_batch(*random_batch(tasks=2, seed=seed))
        crl.outer_loss([net(batch[0][t], task=crl.task(t)).sum() for t in range(2)])
    assert len(net.replay) == 2
    twin, _ = _batch_and_net(replay=2)
    twin.load_state_dict(net.state_dict())
    for a, b in zip(
        replay_tensors(net.replay.state()), replay_tensors(twin.replay.state()), strict=True
    ):
        assert torch.equal(a, b)


def test_a_per_task_backward_is_refused_with_the_fix():
    net, (x_spt, y_spt, x_qry, y_qry) = _batch_and_net()
    crl = net.meta_batch(x_spt, y_spt, x_qry, y_qry)
    losses = []
    for t in range(2):
        loss = F.cross_entropy(net(x_qry[t], task=crl.task(t)), y_qry[t])
        loss.backward(retain_graph=True)  # higher's example does this per task
        losses.append(loss)
    with pytest.raises(ValueError, match=r"already backpropagated .*outer_loss\(losses\)"):
        crl.outer_loss(losses)


def test_detached_losses_wrong_counts_and_a_closed_batch_are_refused():
    net, (x_spt, y_spt, x_qry, y_qry) = _batch_and_net()
    crl = net.meta_batch(x_spt, y_spt, x_qry, y_qry)
    losses = [F.cross_entropy(net(x_qry[t], task=crl.task(t)), y_qry[t]) for t in range(2)]
    with pytest.raises(ValueError, match=r"query loss 0 has no graph .*detach"):
        crl.outer_loss([loss.detach() for loss in losses])
    with pytest.raises(ValueError, match=r"got 1 query losses for a meta-batch of 2 tasks"):
        crl.outer_loss(losses[:1])
    with pytest.raises(ValueError, match=r"not their mean"):
        crl.outer_loss(torch.stack(losses).mean())
    with pytest.raises(IndexError, match=r"task index 2 out of range for 2 tasks"):
        crl.task(2)
    crl.outer_loss(losses)
    with pytest.raises(RuntimeError, match=r"closed by outer_loss; start the next one"):
        crl.task(0)


def test_loop_settings_belong_to_a_model_not_to_a_learner():
    reg = MetaCRLRegularizer(5, num_factors=4)
    with pytest.raises(TypeError, match=r"head_lr: settings of a user loop's head solver"):
        reg.wrap(MAML(tiny_model()), head_lr=0.1)  # type: ignore[call-overload]
