"""MetaCRL's loss terms on hand-computed cases: orthogonality, gates, IRM, V-REx, spectral norm."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metacrl.regularizer import (
    gate_loss,
    irm_penalty,
    orthogonality_loss,
    spectral_norm_estimate,
    vrex_penalty,
)


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
