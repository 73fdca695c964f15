"""CapacityControl: the base learner with one more meta-learned linear map before the head."""

from __future__ import annotations

import pytest
import torch

from metacrl.learners import CapacityControl, LinearMap

from gradcheck import GRADIENT_LEARNERS, _finite_differences, _grads, _learner, _max_diff
from helpers import random_batch


@pytest.mark.parametrize("name", [*GRADIENT_LEARNERS, "protonet"])
def test_the_map_starts_as_the_identity_so_the_first_step_is_the_base_learners(name):
    batch = random_batch()
    base = _learner(name).meta_step(*batch)
    control = CapacityControl(_learner(name), feature_dim=5).double().meta_step(*batch)
    torch.testing.assert_close(control.loss, base.loss, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", [*GRADIENT_LEARNERS, "protonet"])
def test_meta_gradients_of_the_map_and_theta_match_finite_differences(name):
    batch = random_batch()
    control = CapacityControl(_learner(name), feature_dim=5).double()
    with torch.no_grad():  # away from the identity, so that every entry matters
        control.weight.add_(0.3 * torch.randn(5, 5, dtype=torch.float64))
    analytic = _grads(control, batch)
    numeric = _finite_differences(control, batch)
    assert _max_diff(analytic, numeric) < 1e-6
    assert float(analytic["weight"].abs().max()) > 0


@pytest.mark.parametrize("name", list(GRADIENT_LEARNERS))
def test_the_vmap_backend_agrees_with_the_per_task_loop(name):
    batch = random_batch()

    def grads(backend: str) -> dict[str, torch.Tensor]:
        control = CapacityControl(_learner(name, backend=backend), feature_dim=5).double()
        with torch.no_grad():
            control.weight.mul_(0.7)
        return _grads(control, batch)

    assert _max_diff(grads("func"), grads("vmap")) < 1e-9


def test_evaluate_and_adapt_use_the_map():
    batch = random_batch()
    control = CapacityControl(_learner("maml"), feature_dim=5).double()
    base = control.evaluate(*batch).task_losses
    with torch.no_grad():
        control.weight.zero_()  # the head sees zeros: one output for every example
    flat = control.evaluate(*batch).task_losses
    assert not torch.allclose(base, flat)
    x_spt, y_spt, x_qry, _ = (t[0] for t in batch)
    predict = control.adapt(x_spt, y_spt)
    out = predict(x_qry)
    torch.testing.assert_close(out, out[:1].expand_as(out), rtol=0, atol=1e-12)


def test_an_unprepared_map_says_so():
    with pytest.raises(RuntimeError, match="prepare"):
        _ = LinearMap(torch.eye(3)).state
