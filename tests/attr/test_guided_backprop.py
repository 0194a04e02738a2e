"""GuidedBackprop and Deconvolution: hand-computed on tiny ReLU nets, every way of calling ReLU."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import Deconvolution, GuidedBackprop, Saliency


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()

W1 = torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 1.0]])
W2 = torch.tensor([[1.0, 1.0, -1.0], [2.0, -1.0, 0.5], [-0.3, 0.2, 1.0]])
W3 = torch.tensor([[1.5, -1.0, 2.0], [-1.0, 0.5, -0.5]])


def hand(x, target, guided):
    h = x @ W1.T
    z = torch.relu(h) @ W2.T
    g = W3[target].expand(len(x), 3)
    g2 = torch.relu(g) * (z > 0) if guided else torch.relu(g)
    g1 = g2 @ W2
    g1 = torch.relu(g1) * (h > 0) if guided else torch.relu(g1)
    return g1 @ W1


class Net(nn.Module):
    def __init__(self, style):
        super().__init__()
        self.l1, self.l2, self.l3 = (nn.Linear(2, 3, bias=False), nn.Linear(3, 3, bias=False),
                                     nn.Linear(3, 2, bias=False))
        with torch.no_grad():
            self.l1.weight.copy_(W1)
            self.l2.weight.copy_(W2)
            self.l3.weight.copy_(W3)
        self.style = style
        self.r1, self.r2 = nn.ReLU(inplace=style == "inplace"), nn.ReLU(inplace=style == "inplace")

    def forward(self, x):
        h = self.l1(x)
        s = self.style
        if s in ("modules", "inplace"):
            z = self.r2(self.l2(self.r1(h)))
        elif s == "reused":
            z = self.r1(self.l2(self.r1(h)))
        elif s == "F.relu":
            z = F.relu(self.l2(F.relu(h)))
        elif s == "torch.relu":
            z = torch.relu(self.l2(torch.relu(h)))
        elif s == "method":
            z = self.l2(h.relu()).relu()
        else:  # "relu_"
            z = self.l2(h.relu_()).relu_()
        return self.l3(z)


STYLES = ["modules", "inplace", "reused", "F.relu", "torch.relu", "method", "relu_"]
X = torch.tensor([[1.0, 0.5], [-0.7, 1.2], [2.0, -1.0], [0.3, 0.9], [-1.0, -0.2]])


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("cls,guided", [(GuidedBackprop, True), (Deconvolution, False)])
def test_hand_computed(style, cls, guided):
    model = Net(style)
    before = model_state(model)
    for t in (0, 1):
        expected = hand(X, t, guided)
        got = cls(model).attribute(X, target=t)
        assert torch.allclose(got, expected, atol=1e-6)
    assert_same_state(before, model_state(model))


def test_rules_differ_from_plain_gradient_and_each_other():
    model = Net("modules")
    plain = Saliency(model).attribute(X, target=0, abs=False)
    gbp = GuidedBackprop(model).attribute(X, target=0)
    dec = Deconvolution(model).attribute(X, target=0)
    assert not torch.allclose(plain, gbp) and not torch.allclose(gbp, dec) and not torch.allclose(plain, dec)


def test_no_relu_means_plain_gradient():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2))
    x = torch.randn(4, 2)
    plain = Saliency(model).attribute(x, target=1, abs=False)
    assert torch.allclose(GuidedBackprop(model).attribute(x, target=1), plain)
    assert torch.allclose(Deconvolution(model).attribute(x, target=1), plain)


def test_cnn_shapes_and_multi_input(cnn, multi_input):
    x = torch.randn(3, 3, 16, 16)
    a = GuidedBackprop(cnn).attribute(x, target=[1, 2, 3])
    assert a.shape == x.shape
    x1, x2 = torch.randn(4, 4), torch.randn(4, 3)
    out = Deconvolution(multi_input).attribute((x1, x2), target=1, additional_forward_args=(torch.ones(4),))
    assert isinstance(out, tuple) and out[0].shape == x1.shape and out[1].shape == x2.shape
