"""SplitIntegratedGradients (arXiv:2010.12697): left + right = right-Riemann IG, the split on known saturating paths,
documented edge cases, path outputs, chunk invariance."""

import pytest
import torch
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import IntegratedGradients, SplitIntegratedGradients


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()


class SigmoidRidge(nn.Module):
    """F(x) = sigmoid(k * w.x): along the path from 0, F(a) = sigmoid(k a s) saturates."""

    def __init__(self, w, k=8.0):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64))
        self.k = k

    def forward(self, x):
        return torch.sigmoid(self.k * (x @ self.w))


class Capped(nn.Module):
    """F(x) = sign * min(w.x, c): linear until w.x reaches c, then flat (a plateau)."""

    def __init__(self, w, c, sign=1.0):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w, dtype=torch.float64))
        self.c, self.sign = c, sign

    def forward(self, x):
        return self.sign * torch.clamp(x @ self.w, max=self.c)


W = [0.5, -1.0, 2.0]
X = torch.tensor([[1.0, -0.3, 0.7], [0.2, -1.1, 1.5], [2.0, 0.4, 0.3]], dtype=torch.float64)


def test_left_plus_right_is_right_riemann_ig(cnn):
    x, b = torch.randn(3, 3, 16, 16), torch.randn(1, 3, 16, 16) * 0.3
    left, det = SplitIntegratedGradients(cnn).attribute(x, b, target=[1, 2, 3], n_steps=20, return_split=True)
    ig = IntegratedGradients(cnn).attribute(x, b, target=[1, 2, 3], n_steps=20, method="riemann_right")
    assert torch.allclose(left + det.right, ig, atol=1e-6)
    assert not torch.allclose(det.right, torch.zeros_like(ig))  # the split is somewhere inside here
    lg, dg = SplitIntegratedGradients(cnn, multiply_by_inputs=False).attribute(x, b, target=[1, 2, 3], n_steps=20,
                                                                                return_split=True)
    igg = IntegratedGradients(cnn, multiply_by_inputs=False).attribute(x, b, target=[1, 2, 3], n_steps=20,
                                                                       method="riemann_right")
    assert torch.allclose(lg + dg.right, igg, atol=1e-6)
    assert torch.allclose(lg * (x - b), left, atol=1e-6)


@pytest.mark.parametrize("psi", [0.5, 0.9, 0.99])
def test_split_on_sigmoid_matches_closed_form(psi):
    model, n = SigmoidRidge(W), 40
    s = X @ model.w.detach()
    assert (s > 0).all()
    f1 = torch.sigmoid(8 * s)
    thr = 0.5 + psi * (f1 - 0.5)
    a_star = torch.logit(thr) / (8 * s)  # F(a) > T  <=>  a > a_star
    left, det = SplitIntegratedGradients(model).attribute(X, n_steps=n, psi=psi, return_split=True)
    # the split is the first grid point strictly beyond a_star
    expected = torch.floor(a_star * n) + 1
    assert torch.equal(det.split_index, (expected - 1).long())
    assert torch.allclose(det.split_alpha, expected / n)
    assert (det.split_alpha > a_star).all() and (det.split_alpha - 1 / n <= a_star).all()
    assert torch.allclose(det.threshold, thr) and torch.allclose(det.start_output, torch.full((3,), 0.5, dtype=torch.float64))
    assert torch.allclose(det.end_output, f1)
    # the left integral is the right-Riemann sum of the gradient over the steps before the split
    a = torch.arange(1, n + 1, dtype=torch.float64) / n
    dsig = lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))
    for i in range(3):
        k = int(det.split_index[i])
        grad_sum = (8 * dsig(8 * a[:k] * s[i])).sum() / n
        assert torch.allclose(left[i], grad_sum * model.w.detach() * X[i])


def test_split_on_plateau_closed_form():
    c, n = 1.0, 50
    model = Capped(W, c)
    s = X @ model.w.detach()
    assert (s > c).all()
    left, det = SplitIntegratedGradients(model).attribute(X, n_steps=n, psi=0.9, return_split=True)
    a = torch.arange(1, n + 1, dtype=torch.float64) / n
    w = model.w.detach()
    for i in range(3):
        k_split = int(((a * s[i]) > 0.9 * c).nonzero()[0])  # first step over T = 0.9 c
        k_flat = int(((a * s[i]) < c).sum())  # steps on the rising part (gradient w), the rest is flat
        assert int(det.split_index[i]) == k_split
        assert torch.allclose(left[i], X[i] * w * k_split / n)
        assert torch.allclose(det.right[i], X[i] * w * (k_flat - k_split) / n)


def test_no_step_crosses_threshold():
    """psi = 1 on a plateau: outputs reach f1 but never exceed it: the whole path is the left part."""
    model = Capped(W, 1.0)
    left, det = SplitIntegratedGradients(model).attribute(X, n_steps=30, psi=1.0, return_split=True)
    assert torch.equal(det.split_index, torch.full((3,), 30))
    assert torch.equal(det.split_alpha, torch.ones(3, dtype=torch.float64))
    assert torch.equal(det.right, torch.zeros_like(X))
    assert torch.allclose(left, IntegratedGradients(model).attribute(X, n_steps=30, method="riemann_right"))


def test_decreasing_output_splits_on_the_way_down():
    n = 50
    up = SplitIntegratedGradients(Capped(W, 1.0)).attribute(X, n_steps=n, psi=0.9, return_split=True)
    down = SplitIntegratedGradients(Capped(W, 1.0, sign=-1.0)).attribute(X, n_steps=n, psi=0.9, return_split=True)
    assert (down[1].end_output < down[1].start_output).all()
    assert torch.equal(down[1].split_index, up[1].split_index)
    assert (down[1].split_index < n).all()
    assert torch.allclose(down[0], -up[0]) and torch.allclose(down[1].right, -up[1].right)


def test_no_change_means_whole_path_is_left():
    """f1 == f0 (the output leaves and returns): no change to saturate, left = IG, right = 0."""
    model = lambda x: (x[:, 0] * (1 - x[:, 0])) * 4  # F(0) = F(1) = 0 on the path to x0 = 1
    x = torch.tensor([[1.0, 0.3], [1.0, -2.0]], dtype=torch.float64)
    left, det = SplitIntegratedGradients(model).attribute(x, n_steps=10, return_split=True)
    assert torch.equal(det.end_output, det.start_output)
    assert torch.equal(det.split_index, torch.full((2,), 10))
    assert torch.equal(det.right, torch.zeros_like(x))
    assert torch.allclose(left, IntegratedGradients(model).attribute(x, n_steps=10, method="riemann_right"))


def test_path_outputs_equal_model_on_path(cnn):
    x, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16) * 0.1
    _, det = SplitIntegratedGradients(cnn).attribute(x, b, target=5, n_steps=7, return_split=True)
    assert det.path_outputs.shape == (2, 7) and det.alphas.shape == (7,)
    assert torch.allclose(det.alphas, torch.arange(1, 8, dtype=torch.float64) / 7)
    for j, a in enumerate(det.alphas.float()):
        assert torch.allclose(det.path_outputs[:, j].float(), cnn(b + a * (x - b))[:, 5], atol=1e-6)
    assert torch.allclose(det.path_outputs[:, -1].float(), det.end_output.float(), atol=1e-6)


@pytest.mark.parametrize("bs", [1, 3, 7, None])
def test_chunking_invariance_of_split(bs):
    model = SigmoidRidge(W)
    ref_left, ref = SplitIntegratedGradients(model).attribute(X, n_steps=23, return_split=True, batch_size=5)
    left, det = SplitIntegratedGradients(model).attribute(X, n_steps=23, return_split=True, batch_size=bs)
    assert torch.allclose(left, ref_left, atol=1e-12) and torch.equal(det.split_index, ref.split_index)
    assert torch.allclose(det.path_outputs, ref.path_outputs)


def test_state_and_errors():
    model = SigmoidRidge(W)
    before = model_state(model)
    SplitIntegratedGradients(model).attribute(X, n_steps=5)
    assert_same_state(before, model_state(model))
    with pytest.raises(ValueError, match="psi must be a non-negative number; received -0.1"):
        SplitIntegratedGradients(model).attribute(X, psi=-0.1)
    with pytest.raises(ValueError, match="n_steps"):
        SplitIntegratedGradients(model).attribute(X, n_steps=0)
    assert_same_state(before, model_state(model))
