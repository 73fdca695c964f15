"""The power iteration's fast backward equals autograd through the plain iteration."""

from __future__ import annotations

import math

import pytest
import torch

from metacrl.regularizer.power_iteration import power_iteration_norm

EPS = 1e-6


def plain(matrix: torch.Tensor, iterations: int) -> torch.Tensor:
    """The iteration written out, differentiated by autograd step by step."""
    v = matrix.new_ones(matrix.shape[1]) / math.sqrt(matrix.shape[1])
    for _ in range(iterations):
        v = matrix.T @ (matrix @ v)
        v = v / v.norm().clamp_min(EPS)
    return (matrix @ v).norm()


def _matrices() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    collapsed = torch.ones(6, 4, dtype=torch.float64) + 1e-3 * torch.randn(
        6, 4, generator=g, dtype=torch.float64
    )
    return {
        "square": torch.randn(7, 7, generator=g, dtype=torch.float64),
        "wide": torch.randn(3, 9, generator=g, dtype=torch.float64),
        "tall": torch.randn(9, 3, generator=g, dtype=torch.float64),
        "collapsed": collapsed,
        "orthonormal": torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0],
    }


@pytest.mark.parametrize("name", list(_matrices()))
@pytest.mark.parametrize("iterations", [0, 1, 10])
def test_value_and_gradient_equal_the_plain_iteration(name, iterations):
    a = _matrices()[name].requires_grad_()
    fast = power_iteration_norm(a, iterations, EPS)
    slow = plain(a, iterations)
    assert torch.allclose(fast, slow, rtol=1e-12, atol=0)
    weight = torch.tensor(1.7, dtype=torch.float64)  # a non-unit upstream gradient
    (g_fast,) = torch.autograd.grad(fast, a, weight)
    (g_slow,) = torch.autograd.grad(slow, a, weight)
    assert torch.allclose(g_fast, g_slow, rtol=1e-9, atol=1e-12)


def test_a_vanishing_iterate_gives_the_gradient_autograd_gives():
    # A v_0 = 0 for this matrix: the first iterate has norm 0, below the clamp
    a = torch.tensor([[1.0, -1.0], [2.0, -2.0]], dtype=torch.float64, requires_grad=True)
    (g_fast,) = torch.autograd.grad(power_iteration_norm(a, 3, EPS), a)
    (g_slow,) = torch.autograd.grad(plain(a, 3), a)
    assert torch.allclose(g_fast, g_slow)


def test_first_and_second_derivatives_by_finite_differences():
    a = _matrices()["square"][:4, :5].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda m: power_iteration_norm(m, 10, EPS), (a,))
    assert torch.autograd.gradgradcheck(lambda m: power_iteration_norm(m, 10, EPS), (a,))


def test_second_order_gradient_equals_the_plain_iteration():
    a = _matrices()["wide"].requires_grad_()
    g = torch.Generator().manual_seed(1)
    direction = torch.randn(a.shape, dtype=torch.float64, generator=g)

    def hvp(f):
        (g,) = torch.autograd.grad(f(a, 10), a, create_graph=True)
        return torch.autograd.grad((g * direction).sum(), a)[0]

    fast = hvp(lambda m, k: power_iteration_norm(m, k, EPS))
    assert torch.allclose(fast, hvp(plain), rtol=1e-9, atol=1e-12)


def test_no_gradient_is_computed_for_a_constant_matrix():
    a = _matrices()["square"]
    value = power_iteration_norm(a, 5, EPS)
    assert not value.requires_grad
    assert torch.allclose(value, plain(a, 5))
