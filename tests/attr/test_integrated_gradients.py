"""Integrated gradients: completeness, closed forms, quadratures, options."""
import pytest
import torch
from torch import nn

from conftest import SmallCNN
from pellucid.attr import IntegratedGradients
from pellucid.core.paths import METHODS


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def test_linear_closed_form_every_method(linear):
    x, b = torch.randn(4, 6), torch.randn(4, 6)
    for method in METHODS:
        for t in range(3):
            a = IntegratedGradients(linear).attribute(x, b, target=t, n_steps=3, method=method)
            assert torch.allclose(a, (x - b) * linear.fc.weight[t].detach(), atol=1e-5), method


class Quadratic(nn.Module):
    """F(x) = sum_i c_i x_i^2 + x_0 x_1: IG from 0 is c_i x_i^2 + x_0 x_1 / 2 for i in {0, 1}."""

    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

    def forward(self, x):
        return (self.c * x**2).sum(1) + x[:, 0] * x[:, 1]


def test_closed_form_on_quadratic():
    m = Quadratic()
    x = torch.randn(5, 3, dtype=torch.float64)
    c = m.c.detach().double()
    expected = c * x**2
    expected[:, :2] += (x[:, 0] * x[:, 1] / 2)[:, None]
    # the integrand is linear in alpha: gauss-legendre (any n), midpoint and trapezoid are exact
    for method, n in [("gausslegendre", 1), ("riemann_middle", 1), ("riemann_trapezoid", 2), ("gausslegendre", 7)]:
        got = IntegratedGradients(m).attribute(x, n_steps=n, method=method)
        assert torch.allclose(got, expected, atol=1e-12), method
    # the left sum is not exact: the check above is not vacuous
    assert not torch.allclose(IntegratedGradients(m).attribute(x, n_steps=4, method="riemann_left"), expected,
                              atol=1e-3)


@pytest.mark.parametrize("method,n_steps", [
    ("gausslegendre", 64), ("riemann_middle", 64), ("riemann_trapezoid", 128), ("riemann_left", 256),
    ("riemann_right", 256),
])
def test_completeness_on_cnn(cnn, method, n_steps):
    """sum(IG) = F(x) - F(x') up to quadrature error on the (piecewise linear) ReLU CNN.

    Stated tolerance: |delta| <= 1% of the largest |F(x) - F(x')| in the batch.
    """
    torch.manual_seed(5)
    x = torch.randn(3, 3, 16, 16) * 3
    base = torch.randn(1, 3, 16, 16) * 0.2
    t = torch.tensor([0, 4, 9])
    attr, delta = IntegratedGradients(cnn).attribute(x, base, target=t, n_steps=n_steps, method=method,
                                                     return_convergence_delta=True)
    diff = cnn(x)[torch.arange(3), t] - cnn(base.expand_as(x))[torch.arange(3), t]
    assert torch.allclose(delta, attr.sum((1, 2, 3)) - diff, atol=1e-5)  # delta is the real gap
    assert (delta.abs() <= 0.01 * diff.abs().max()).all(), (delta, diff)


def smooth_cnn():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softplus(), nn.Conv2d(4, 4, 3, stride=2), nn.Tanh(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 5)).eval()


def test_completeness_on_smooth_cnn_is_tight():
    """On a smooth model Gauss-Legendre converges fast: 1e-4 relative with 16 steps, float64."""
    model = smooth_cnn().double()
    x = torch.randn(3, 3, 14, 14, dtype=torch.float64) * 2
    attr, delta = IntegratedGradients(model).attribute(x, target=2, n_steps=16, return_convergence_delta=True)
    diff = model(x)[:, 2] - model(torch.zeros_like(x))[:, 2]
    assert (delta.abs() <= 1e-4 * diff.abs()).all(), (delta, diff)
    # a 2-step left sum is far worse: the tolerance is meaningful
    _, rough = IntegratedGradients(model).attribute(x, target=2, n_steps=2, method="riemann_left",
                                                    return_convergence_delta=True)
    assert (rough.abs() > 1e-3 * diff.abs()).any()


def test_delta_shrinks_with_steps(cnn):
    x = torch.randn(2, 3, 16, 16)
    ig = IntegratedGradients(cnn)
    d_few = ig.attribute(x, target=3, n_steps=4, method="riemann_left", return_convergence_delta=True)[1]
    d_many = ig.attribute(x, target=3, n_steps=64, method="riemann_left", return_convergence_delta=True)[1]
    assert d_many.abs().sum() < d_few.abs().sum()


def test_multiply_by_inputs_false_is_path_mean_gradient(linear):
    x, b = torch.randn(3, 6), torch.randn(1, 6)
    a = IntegratedGradients(linear, multiply_by_inputs=False).attribute(x, b, target=2)
    assert torch.allclose(a, linear.fc.weight[2].detach().expand(3, 6), atol=1e-6)
    assert not IntegratedGradients(linear, multiply_by_inputs=False).multiplies_by_inputs
    assert IntegratedGradients(linear).has_convergence_delta()


def test_compute_convergence_delta(cnn):
    x = torch.randn(2, 3, 16, 16)
    ig = IntegratedGradients(cnn)
    attr, delta = ig.attribute(x, 0.1, target=1, n_steps=8, return_convergence_delta=True)
    assert torch.allclose(ig.compute_convergence_delta(attr, 0.1, x, target=1), delta, atol=1e-6)


def test_float64_inputs(linear):
    m = linear.double()
    x = torch.randn(2, 6, dtype=torch.float64)
    a = IntegratedGradients(m).attribute(x, target=0)
    assert a.dtype == torch.float64
    assert torch.allclose(a, x * m.fc.weight[0].detach(), atol=1e-12)


def test_bad_arguments(linear):
    x = torch.randn(2, 6)
    with pytest.raises(ValueError, match="n_steps must be a positive int; received 0"):
        IntegratedGradients(linear).attribute(x, target=0, n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        IntegratedGradients(linear).attribute(x, target=0, method="simpson")
    with pytest.raises(ValueError, match="conflicting batch sizes"):
        IntegratedGradients(linear).attribute(x, target=0, internal_batch_size=2, batch_size=3)
    with pytest.raises(TypeError, match="forward_func must be a model"):
        IntegratedGradients(3)
