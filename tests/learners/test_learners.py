"""Each learner, plain and wrapped, learns on a tiny seeded problem; outputs and determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metacrl import ANIL, MAML, EvalOutput, MetaCRLRegularizer, MetaSGD, ProtoNet
from metacrl.models import FeatureHead

from helpers import ClusterTasks, cluster_model, random_batch, tiny_model

LEARNERS = {
    "maml": lambda m: MAML(m, inner_lr=0.3, inner_steps=3),
    "fomaml": lambda m: MAML(m, inner_lr=0.3, inner_steps=3, first_order=True),
    "anil": lambda m: ANIL(m, inner_lr=0.3, inner_steps=3),
    "metasgd": lambda m: MetaSGD(m, inner_lr=0.3, inner_steps=2),
    "protonet": lambda m: ProtoNet(m),
}


MODES = [None, "alternating", "joint"]


def _make(name: str, mode: str | None, seed: int = 0):
    torch.manual_seed(seed)
    learner = LEARNERS[name](cluster_model())
    if mode is not None:
        learner = MetaCRLRegularizer(16, num_factors=16, mode=mode).wrap(learner)
    return learner


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(LEARNERS))
def test_learner_lowers_query_loss_on_a_tiny_problem(name, mode):
    problem = ClusterTasks()
    test = problem.batch(16, torch.Generator().manual_seed(123))
    learner = _make(name, mode)
    before = learner.evaluate(*test)
    history = learner.fit(problem.stream(4, seed=1), iterations=30, lr=3e-3, progress=False)
    after = learner.evaluate(*test)
    assert len(history) == 30
    assert after.loss < 0.8 * before.loss
    assert after.accuracy > before.accuracy
    assert after.accuracy > 0.7  # chance is 1/3


def test_maml_learns_a_regression_problem():
    """Linear functions y = a x + b with random a, b: MAML with the MSE loss."""
    torch.manual_seed(0)
    model = FeatureHead(
        nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU()),
        nn.Linear(40, 1),
        feature_dim=40,
    )
    learner = MAML(model, inner_lr=0.01, inner_steps=3, loss="mse")
    g = torch.Generator().manual_seed(0)

    def batch(tasks=8):
        a = torch.rand(tasks, 1, 1, generator=g) * 4 - 2
        b = torch.rand(tasks, 1, 1, generator=g) * 2 - 1
        x = torch.rand(tasks, 20, 1, generator=g) * 10 - 5
        y = a * x + b
        return x[:, :10], y[:, :10], x[:, 10:], y[:, 10:]

    test = batch(32)
    before = learner.evaluate(*test)
    learner.fit((batch() for _ in range(60)), lr=3e-3, progress=False)
    after = learner.evaluate(*test)
    assert before.accuracy is None and after.mse == pytest.approx(after.loss)
    assert after.mse < 0.5 * before.mse


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["maml", "protonet"])
def test_training_is_reproducible_for_a_seed(name, mode):
    def run(seed):
        learner = _make(name, mode, seed=seed)
        hist = learner.fit(ClusterTasks().stream(2, seed=5), iterations=4, progress=False)
        return [h["loss"] for h in hist], [p.detach().clone() for p in learner.parameters()]

    (loss_a, params_a), (loss_b, params_b) = run(0), run(0)
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    loss_c, _ = run(1)
    assert loss_c != loss_a


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(LEARNERS))
def test_meta_step_and_evaluate_outputs(name, mode):
    learner = _make(name, mode)
    x_spt, y_spt, x_qry, y_qry = ClusterTasks().batch(3, torch.Generator().manual_seed(0))
    out = learner.meta_step(x_spt, y_spt, x_qry, y_qry)
    assert out.loss.dim() == 0 and out.loss.requires_grad
    assert out.task_losses.shape == (3,) and not out.task_losses.requires_grad
    assert out.task_scores.shape == (3,)
    assert 0.0 <= out.accuracy <= 1.0 and out.mse is None
    summary = out.summary()
    assert {"loss", "query_loss", "accuracy"} <= summary.keys()
    if mode is not None:
        assert {"crl/task", "crl/invariance", "crl/disentanglement"} <= summary.keys()

    learner.zero_grad(set_to_none=True)
    ev = learner.evaluate(x_spt, y_spt, x_qry, y_qry)
    assert isinstance(ev, EvalOutput)
    assert ev.task_scores.shape == (3,) and not ev.task_losses.requires_grad
    assert all(p.grad is None for p in learner.parameters())  # meta-test leaves no gradient
    assert ev.ci95 > 0 or float(ev.task_scores.std()) == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(LEARNERS))
def test_adapt_returns_the_adapted_model_of_one_task(name, mode):
    learner = _make(name, mode)
    x_spt, y_spt, x_qry, y_qry = ClusterTasks().batch(1, torch.Generator().manual_seed(0))
    predict = learner.adapt(x_spt[0], y_spt[0])
    logits = predict(x_qry[0])
    assert logits.shape == (x_qry.shape[1], 3) and not logits.requires_grad
    ev = learner.evaluate(x_spt, y_spt, x_qry, y_qry)
    acc = float((logits.argmax(-1) == y_qry[0]).float().mean())
    assert acc == pytest.approx(ev.accuracy)


def test_more_test_inner_steps_fit_the_support_set_better():
    torch.manual_seed(0)
    learner = MAML(tiny_model(), inner_lr=0.3, inner_steps=1, test_inner_steps=1)
    x_spt, y_spt, _, _ = random_batch(tasks=1)
    one = learner.evaluate(x_spt, y_spt, x_spt, y_spt)
    ten = learner.evaluate(x_spt, y_spt, x_spt, y_spt, inner_steps=10)
    assert ten.loss < one.loss


def test_evaluate_works_under_no_grad():
    learner = MAML(tiny_model(), inner_lr=0.3, inner_steps=2)
    batch = random_batch()
    expected = learner.evaluate(*batch).loss
    with torch.no_grad():
        assert learner.evaluate(*batch).loss == pytest.approx(expected)


def test_meta_step_moves_inputs_to_the_learner_dtype():
    learner = MAML(tiny_model(), inner_lr=0.3, inner_steps=1)  # float64 model
    x_spt, y_spt, x_qry, y_qry = random_batch(dtype=torch.float32)
    out = learner.meta_step(x_spt, y_spt, x_qry, y_qry)
    assert out.loss.dtype == torch.float64


def test_fit_uses_a_given_optimizer_and_stops_when_the_stream_ends():
    learner = MAML(tiny_model(), inner_lr=0.3, inner_steps=1)
    opt = torch.optim.SGD(learner.parameters(), lr=0.1)
    seen = []
    history = learner.fit(
        [random_batch(seed=s) for s in range(3)],
        optimizer=opt,
        progress=False,
        callback=lambda i, out: seen.append(i),
    )
    assert len(history) == 3 and seen == [0, 1, 2]
    assert opt.state_dict()["param_groups"][0]["lr"] == 0.1
