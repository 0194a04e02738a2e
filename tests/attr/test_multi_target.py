"""A 2-D target (N, K) attributes K outputs per example in one call: result[:, k] equals the call with target[:, k]."""
import pytest
import torch

from pellucid.attr import (
    DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency,
)

TARGETS = torch.tensor([[0, 3], [2, 2], [9, 1]])


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (Saliency, {}),
        (InputXGradient, {}),
        (GuidedBackprop, {}),
        (IntegratedGradients, {"n_steps": 8}),
        (DeepLift, {}),
    ],
)
def test_each_column_equals_single_target_call(cnn, make, kwargs):
    x = torch.randn(3, 3, 32, 32)
    method = make(cnn)
    both = method.attribute(x, target=TARGETS, **kwargs)
    assert both.shape == (3, 2, 3, 32, 32)
    for k in range(2):
        single = method.attribute(x, target=TARGETS[:, k], **kwargs)
        torch.testing.assert_close(both[:, k], single, rtol=1e-5, atol=1e-6)


def test_per_example_baselines_and_delta_follow_the_examples(cnn):
    x, b = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    attr, delta = IntegratedGradients(cnn).attribute(x, b, target=TARGETS, n_steps=8, return_convergence_delta=True)
    assert delta.shape == (3, 2)
    for k in range(2):
        a1, d1 = IntegratedGradients(cnn).attribute(x, b, target=TARGETS[:, k], n_steps=8, return_convergence_delta=True)
        torch.testing.assert_close(attr[:, k], a1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(delta[:, k], d1, rtol=1e-4, atol=1e-5)


def test_distribution_baselines_are_not_repeated(cnn):
    x, dist = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)  # 3 samples, same count as examples on purpose
    both = DeepLiftShap(cnn).attribute(x, dist, target=TARGETS)
    for k in range(2):
        torch.testing.assert_close(both[:, k], DeepLiftShap(cnn).attribute(x, dist, target=TARGETS[:, k]), rtol=1e-5, atol=1e-6)
    g = GradientShap(cnn).attribute(x, dist, target=TARGETS, seed=0)
    assert g.shape == (3, 2, 3, 32, 32)


def test_noise_tunnel_with_2d_target(cnn):
    x = torch.randn(3, 3, 32, 32)
    nt = NoiseTunnel(Saliency(cnn))
    both = nt.attribute(x, target=TARGETS, nt_samples=2, stdevs=0.0)
    torch.testing.assert_close(both[:, 0], Saliency(cnn).attribute(x, target=TARGETS[:, 0]))


def test_2d_target_with_wrong_batch_raises(cnn):
    with pytest.raises(ValueError, match="target"):
        Saliency(cnn).attribute(torch.randn(2, 3, 32, 32), target=TARGETS)


def test_two_d_target_with_a_single_example():
    """N = 1 with K targets: each column equals the single-target call (inputs repeated even when N = 1)."""
    import torch
    from torch import nn

    from pellucid.attr import IntegratedGradients

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    x = torch.randn(1, 4)
    both = IntegratedGradients(model).attribute(x, target=torch.tensor([[0, 2]]))
    assert both.shape == (1, 2, 4)
    for j, t in enumerate((0, 2)):
        torch.testing.assert_close(both[:, j], IntegratedGradients(model).attribute(x, target=t))
