"""Model smoothing: LogSumExp pooling by hand, convergence to the original, functional calls, model untouched."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pellucid.models import lse_pool, smooth
from pellucid.models.smoothing import LogSumExpPool
from conftest import SmallCNN, assert_same_state, model_state


def test_lse_pool_hand_value_and_bounds():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = lse_pool(x, 2, r=1.0)
    assert out.item() == pytest.approx(math.log((math.e + math.e**2 + math.e**3 + math.e**4) / 4))
    y = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    for r in (0.5, 5.0, 50.0):
        p = lse_pool(y, 3, r=r)
        m = F.max_pool2d(y, 3)
        assert bool((p <= m + 1e-12).all()) and bool((p >= m - math.log(9) / r - 1e-12).all())


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=1, dilation=2), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True),
])
def test_lse_pool_matches_max_pool_shapes_and_limit(kw):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    m = F.max_pool2d(x, **kw)
    p = lse_pool(x, r=1e5, **kw)
    assert p.shape == m.shape
    assert torch.allclose(p, m, atol=1e-4)


def test_lse_pool_1d_and_3d():
    x = torch.randn(2, 4, 10, dtype=torch.float64)
    assert torch.allclose(lse_pool(x, 3, 2, dims=1, r=1e5), F.max_pool1d(x, 3, 2), atol=1e-4)
    v = torch.randn(1, 2, 4, 6, 6, dtype=torch.float64)
    assert torch.allclose(lse_pool(v, 2, dims=3, r=1e5), F.max_pool3d(v, 2), atol=1e-4)
    # padding is excluded from the mean: a window over one real element returns it exactly
    one = torch.tensor([[[5.0, 1.0]]], dtype=torch.float64)
    assert lse_pool(one, 2, 2, padding=1, dims=1, r=3.0)[0, 0, 0].item() == pytest.approx(5.0)


def test_smoothing_converges_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = SmallCNN(size=16).eval()
    x = torch.randn(4, 3, 16, 16)
    before = model_state(model)
    ref = model(x)
    errs = []
    for beta in (1.0, 10.0, 100.0, 1000.0):
        s = smooth(model, beta=beta, r=beta)
        errs.append((s(x) - ref).abs().max().item())
    assert errs == sorted(errs, reverse=True) and errs[-1] < 5e-3 and errs[0] > 10 * errs[-1]
    assert_same_state(before, model_state(model))
    assert isinstance(model.relu, nn.ReLU) and isinstance(model.pool, nn.MaxPool2d)
    assert isinstance(s.relu, nn.Softplus) and isinstance(s.pool, LogSumExpPool)
    assert s.conv1 is not model.conv1 and torch.equal(s.conv1.weight, model.conv1.weight)
    assert smooth(model.train(), 5.0, 5.0).training and not smooth(model.eval(), 5.0, 5.0).training


def test_functional_calls_are_smoothed():
    torch.manual_seed(1)
    model = SmallCNN(size=16).eval()  # uses torch.relu and F.max_pool2d in its forward
    x = torch.randn(2, 3, 16, 16)
    beta, r = 2.0, 3.0
    h = lse_pool(F.softplus(model.conv1(x), beta=beta), 2, r=r)
    h = lse_pool(F.softplus(model.conv2(h), beta=beta), 2, r=r)
    h = F.softplus(model.fc1(h.flatten(1)), beta=beta)
    expected = model.fc2(h)
    assert torch.allclose(smooth(model, beta, r)(x), expected, atol=1e-5)
    modules_only = smooth(model, beta, r, functional=False)(x)
    assert not torch.allclose(modules_only, expected, atol=1e-3)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)

    def forward(self, x):
        h = F.relu(self.conv(x), inplace=True)
        h = h.relu_()
        return F.adaptive_max_pool1d(h, 1).flatten(1)


def test_inplace_relu_and_adaptive_pool_and_gradients():
    torch.manual_seed(2)
    model = Functional().eval()
    x = torch.randn(3, 2, 8, requires_grad=True)
    s = smooth(model, beta=1.5, r=2.0)
    h = F.softplus(F.softplus(model.conv(x), beta=1.5), beta=1.5)
    expected = lse_pool(h, 6, dims=1, r=2.0).flatten(1)
    out = s(x)
    assert torch.allclose(out, expected, atol=1e-6)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(ValueError, match="divid"):
        smooth(nn.AdaptiveMaxPool1d(3))(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="beta"):
        smooth(model, beta=0.0)
    with pytest.raises(TypeError, match="model"):
        smooth(lambda t: t)
