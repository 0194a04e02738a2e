"""GradientShap: exact on linear models, expectation equals IG, seeds, noise, argument errors."""
import pytest
import torch
from torch import nn

from conftest import SmallCNN
from pellucid.attr import GradientShap, IntegratedGradients


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def test_linear_single_baseline_is_exact(linear):
    x, b = torch.randn(4, 6), torch.randn(1, 6)
    for t in range(3):
        a = GradientShap(linear).attribute(x, b, n_samples=3, target=t, seed=0)
        assert torch.allclose(a, (x - b) * linear.fc.weight[t].detach(), atol=1e-5)


def test_linear_distribution_completeness_is_exact(linear):
    """Sum of attributions = mean_s (F(x + e_s) - F(b_s)) exactly on a linear model (with noise too)."""
    x, dist = torch.randn(4, 6), torch.randn(9, 6)
    for stdevs in (0.0, 0.5):
        a, delta = GradientShap(linear).attribute(x, dist, n_samples=7, stdevs=stdevs, target=1, seed=3,
                                                  return_convergence_delta=True)
        assert delta.abs().max() < 1e-5
        assert a.shape == x.shape
    # without noise and with many samples the attribution approaches (x - E[b]) * w
    a = GradientShap(linear).attribute(x, dist, n_samples=4000, target=1, seed=0, batch_size=4000)
    assert torch.allclose(a, (x - dist.mean(0)) * linear.fc.weight[1].detach(), atol=0.1)


def test_expectation_equals_ig_for_single_baseline():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 2)).double()
    x, b = torch.randn(2, 5, dtype=torch.float64) * 2, torch.randn(1, 5, dtype=torch.float64)
    ig = IntegratedGradients(model).attribute(x, b, target=1, n_steps=64)
    gs = GradientShap(model).attribute(x, b, n_samples=4000, stdevs=0.0, target=1, seed=1, batch_size=4000)
    scale = ig.abs().max()
    assert (gs - ig).abs().max() < 0.05 * scale
    # and a handful of samples is a noisy estimate (the check above is not trivially satisfied)
    few = GradientShap(model).attribute(x, b, n_samples=2, stdevs=0.0, target=1, seed=1)
    assert (few - ig).abs().max() > 1e-3 * scale


def test_seed_and_generator_reproducible(cnn):
    x, dist = torch.randn(2, 3, 16, 16), torch.randn(5, 3, 16, 16)
    gs = GradientShap(cnn)
    a1 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3, seed=7)
    a2 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3, seed=7)
    a3 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3, seed=8)
    a4 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2) and torch.equal(a1, a4) and not torch.allclose(a1, a3)
    torch.manual_seed(11)
    g1 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3)
    torch.manual_seed(11)
    g2 = gs.attribute(x, dist, n_samples=4, stdevs=0.2, target=3)
    assert torch.equal(g1, g2)


def test_multiply_by_inputs_false_and_per_input_stdevs(multi_input):
    x1, x2 = torch.randn(3, 4), torch.randn(3, 3)
    d = (torch.randn(6, 4), torch.randn(6, 3))
    out = GradientShap(multi_input, multiply_by_inputs=False).attribute(
        (x1, x2), d, n_samples=5, stdevs=(0.1, 0.0), target=0, additional_forward_args=(2.0,), seed=0)
    assert isinstance(out, tuple) and out[0].shape == x1.shape and out[1].shape == x2.shape
    with pytest.raises(ValueError, match="stdevs has 3 elements but there are 2 inputs"):
        GradientShap(multi_input).attribute((x1, x2), d, stdevs=(0.1, 0.1, 0.1), target=0,
                                            additional_forward_args=(2.0,))


def test_callable_baselines(linear):
    x = torch.randn(3, 6)
    a = GradientShap(linear).attribute(x, lambda inp: torch.zeros(2, 6), n_samples=2, target=0, seed=0)
    assert torch.allclose(a, x * linear.fc.weight[0].detach(), atol=1e-5)


@pytest.mark.parametrize("kwargs,err,msg", [
    ({"n_samples": 0}, ValueError, "n_samples must be a positive int; received 0"),
    ({"stdevs": -1.0}, ValueError, "stdevs must be non-negative"),
    ({"seed": 1, "generator": torch.Generator()}, ValueError, "either generator= or seed="),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
    ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
])
def test_bad_arguments(linear, kwargs, err, msg):
    with pytest.raises(err, match=msg):
        GradientShap(linear).attribute(torch.randn(2, 6), torch.zeros(1, 6), target=0, **kwargs)
