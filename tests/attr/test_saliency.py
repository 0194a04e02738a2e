"""Saliency and InputXGradient: closed forms on linear models, agreement with autograd."""
import pytest
import torch

from conftest import SmallCNN
from pellucid.attr import DeepLift, InputXGradient, IntegratedGradients, Saliency


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


def test_linear_closed_forms(linear):
    x = torch.randn(5, 6)
    for t in range(3):
        w = linear.fc.weight[t].detach()
        assert torch.allclose(Saliency(linear).attribute(x, target=t), w.abs().expand(5, 6))
        assert torch.allclose(Saliency(linear).attribute(x, target=t, abs=False), w.expand(5, 6))
        ixg = InputXGradient(linear).attribute(x, target=t)
        assert torch.allclose(ixg, x * w, atol=1e-6)
        # with a zero baseline, IG and DeepLIFT equal input x gradient on a linear model
        assert torch.allclose(IntegratedGradients(linear).attribute(x, target=t), ixg, atol=1e-5)
        assert torch.allclose(DeepLift(linear).attribute(x, target=t), ixg, atol=1e-5)


def test_matches_autograd_on_cnn(cnn):
    x = torch.randn(3, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(cnn(x)[torch.arange(3), torch.tensor([4, 0, 7])].sum(), x)
    assert torch.allclose(Saliency(cnn).attribute(x.detach(), target=[4, 0, 7], abs=False), g, atol=1e-6)
    assert torch.allclose(Saliency(cnn).attribute(x.detach(), target=[4, 0, 7]), g.abs(), atol=1e-6)
    assert torch.allclose(InputXGradient(cnn).attribute(x.detach(), target=[4, 0, 7]), g * x.detach(), atol=1e-6)
    assert InputXGradient(cnn).multiplies_by_inputs and not Saliency(cnn).multiplies_by_inputs


def test_input_requiring_grad_is_accepted_and_left_alone(linear):
    x = torch.randn(2, 6, requires_grad=True)
    a = Saliency(linear).attribute(x, target=0)
    assert torch.allclose(a, linear.fc.weight[0].abs().detach().expand(2, 6))
    assert x.grad is None
