"""Neuron methods: closed forms on a neuron that is an input pixel's identity path, completeness on the neuron's
value, agreement with layer conductance and IG, selector forms, chunking invariance, errors, model unchanged."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import (
    IntegratedGradients, LayerConductance, NeuronConductance, NeuronDeconvolution, NeuronDeepLift,
    NeuronDeepLiftShap, NeuronFeatureAblation, NeuronGradient, NeuronGradientShap, NeuronGuidedBackprop,
    NeuronIntegratedGradients,
)


class IdentityFirst(nn.Module):
    """``inp`` (an identity module) sees the input pixels; the rest is a small ReLU CNN."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Identity()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(self.inp(x))).flatten(1))


PIXEL = (1, 2, 3)


@pytest.fixture
def ident():
    torch.manual_seed(3)
    return IdentityFirst().eval()


def onehot(x):
    out = torch.zeros_like(x)
    out[(slice(None),) + PIXEL] = 1
    return out


@pytest.mark.parametrize("to_input", [False, True])
def test_identity_neuron_closed_forms(ident, to_input):
    """With the neuron being input pixel p (the identity's output, or the conv's input), every method's closed form
    is known: the gradient is one-hot at p, path and difference methods give (x_p - x'_p) at p."""
    torch.manual_seed(0)
    x, base = torch.randn(3, 2, 5, 5), torch.randn(1, 2, 5, 5)
    layer = ident.conv if to_input else ident.inp
    kw = dict(attribute_to_neuron_input=to_input)
    e = onehot(x)
    torch.testing.assert_close(NeuronGradient(ident, layer).attribute(x, PIXEL, **kw), e)
    torch.testing.assert_close(NeuronGuidedBackprop(ident, layer).attribute(x, PIXEL, **kw), e)
    torch.testing.assert_close(NeuronDeconvolution(ident, layer).attribute(x, PIXEL, **kw), e)
    diff = e * (x - base)
    torch.testing.assert_close(NeuronIntegratedGradients(ident, layer).attribute(x, PIXEL, base, n_steps=3, **kw), diff)
    torch.testing.assert_close(NeuronDeepLift(ident, layer).attribute(x, PIXEL, base, **kw), diff)
    torch.testing.assert_close(NeuronGradientShap(ident, layer).attribute(x, PIXEL, base, n_samples=3, seed=0, **kw), diff)
    dist = torch.randn(4, 2, 5, 5)
    torch.testing.assert_close(NeuronDeepLiftShap(ident, layer).attribute(x, PIXEL, dist, **kw), e * (x - dist.mean(0)))
    torch.testing.assert_close(NeuronFeatureAblation(ident, layer).attribute(x, PIXEL, base, **kw), diff)
    # conductance through pixel p: the model's IG restricted to p
    ig = IntegratedGradients(ident).attribute(x, base, target=2, n_steps=20, method="riemann_trapezoid")
    cond = NeuronConductance(ident, layer).attribute(x, PIXEL, base, target=2, n_steps=20, **kw)
    torch.testing.assert_close(cond, e * ig, atol=1e-6, rtol=1e-5)


def test_neuron_completeness_and_selector_forms(cnn):
    x, base = torch.randn(2, 3, 32, 32), torch.randn(1, 3, 32, 32) * 0.1
    conv2 = lambda t: cnn.conv2(cnn.pool(cnn.relu(cnn.conv1(t)))).detach()  # noqa: E731
    value = lambda t, sel: conv2(t)[(slice(None),) + sel].reshape(t.shape[0], -1).sum(1)  # noqa: E731
    sel = (5, slice(2, 4), 7)
    gap = value(x, sel) - value(base, sel)
    dl = NeuronDeepLift(cnn, cnn.conv2).attribute(x, sel, base)
    torch.testing.assert_close(dl.sum((1, 2, 3)), gap, atol=1e-5, rtol=1e-4)  # summation to delta (exact)
    # conv1's neurons are linear in x: IG is exact there
    ig = NeuronIntegratedGradients(cnn, cnn.conv1).attribute(x, sel, base, n_steps=2)
    gap1 = (cnn.conv1(x) - cnn.conv1(base))[(slice(None),) + sel].reshape(2, -1).sum(1).detach()
    torch.testing.assert_close(ig.sum((1, 2, 3)), gap1, atol=1e-5, rtol=1e-5)
    # a slice sums its neurons; a callable giving the same value gives the same attribution
    parts = sum(NeuronGradient(cnn, cnn.conv2).attribute(x, (5, i, 7)) for i in (2, 3))
    torch.testing.assert_close(NeuronGradient(cnn, cnn.conv2).attribute(x, sel), parts)
    by_callable = NeuronGradient(cnn, cnn.conv2).attribute(x, lambda y: y[:, 5, 2:4, 7].sum(1))
    torch.testing.assert_close(by_callable, NeuronGradient(cnn, cnn.conv2).attribute(x, sel))
    # int selector on a 2-D layer
    g = NeuronGradient(cnn, cnn.fc1).attribute(x, 4)
    torch.testing.assert_close(g, NeuronGradient(cnn, cnn.fc1).attribute(x, (4,)))


def test_neuron_conductance_agrees_with_layer_conductance_and_ig(cnn):
    x, base = torch.randn(2, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    every = (slice(None), slice(None), slice(None))
    all_neurons = NeuronConductance(cnn, cnn.conv2).attribute(x, every, base, target=1, n_steps=10)
    ig = IntegratedGradients(cnn).attribute(x, base, target=1, n_steps=10, method="riemann_trapezoid")
    torch.testing.assert_close(all_neurons, ig, atol=1e-6, rtol=1e-5)
    one = NeuronConductance(cnn, cnn.conv2).attribute(x, (3, 4, 5), base, target=1, n_steps=200,
                                                     method="gausslegendre")
    layer = LayerConductance(cnn, cnn.conv2).attribute(x, base, target=1, n_steps=200)
    torch.testing.assert_close(one.sum((1, 2, 3)), layer[:, 3, 4, 5], atol=0.05 * layer[:, 3, 4, 5].abs().max().item(),
                               rtol=0)


def test_chunk_size_invariance(cnn):
    x = torch.randn(3, 3, 32, 32)
    for method, kw in ((NeuronIntegratedGradients(cnn, cnn.conv2), dict(n_steps=4)),
                       (NeuronConductance(cnn, cnn.conv2), dict(n_steps=4, target=0)),
                       (NeuronDeepLift(cnn, cnn.conv2), {})):
        ref = method.attribute(x, (1, 2, 3), **kw)
        for bs in (1, 5):
            torch.testing.assert_close(method.attribute(x, (1, 2, 3), batch_size=bs, **kw), ref, atol=1e-6, rtol=1e-5)


ALL = [
    lambda m, x: NeuronGradient(m, m.conv2).attribute(x, (1, 2, 3)),
    lambda m, x: NeuronIntegratedGradients(m, m.conv2).attribute(x, (1, 2, 3), n_steps=3),
    lambda m, x: NeuronConductance(m, m.conv2).attribute(x, (1, 2, 3), target=0, n_steps=3),
    lambda m, x: NeuronDeepLift(m, m.conv2).attribute(x, (1, 2, 3)),
    lambda m, x: NeuronDeepLiftShap(m, m.conv2).attribute(x, (1, 2, 3), torch.zeros(2, 3, 32, 32)),
    lambda m, x: NeuronGradientShap(m, m.conv2).attribute(x, (1, 2, 3), torch.zeros(2, 3, 32, 32)),
    lambda m, x: NeuronGuidedBackprop(m, m.conv2).attribute(x, (1, 2, 3)),
    lambda m, x: NeuronDeconvolution(m, m.conv2).attribute(x, (1, 2, 3)),
    lambda m, x: NeuronFeatureAblation(m, m.conv2).attribute(x, (1, 2, 3), feature_mask=torch.arange(3).reshape(1, 3, 1, 1)),
]


@pytest.mark.parametrize("run", ALL)
def test_model_unchanged_on_success_and_error(run):
    torch.manual_seed(0)
    model = SmallCNN().train()
    model.conv1.bias.requires_grad_(False)
    before = model_state(model)
    out = run(model, torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32)
    assert_same_state(before, model_state(model))
    with pytest.raises((RuntimeError, ValueError)):
        run(model, torch.randn(2, 4, 32, 32))
    assert_same_state(before, model_state(model))


def test_clear_errors(cnn):
    x = torch.randn(2, 3, 32, 32)
    before = model_state(cnn)
    with pytest.raises(TypeError, match="neuron_selector"):
        NeuronGradient(cnn, cnn.conv2).attribute(x, 1.5)
    with pytest.raises(TypeError, match="neuron_selector"):
        NeuronGradient(cnn, cnn.conv2).attribute(x, (1, "a"))
    with pytest.raises(ValueError, match="one index or slice per dim"):
        NeuronGradient(cnn, cnn.conv2).attribute(x, (1, 2))
    with pytest.raises(ValueError, match="out of range"):
        NeuronIntegratedGradients(cnn, cnn.conv2).attribute(x, (16, 0, 0), n_steps=2)
    with pytest.raises(ValueError, match="return shape"):
        NeuronGradient(cnn, cnn.conv2).attribute(x, lambda y: y[:, 0])
    # a callable selector is accepted by NeuronConductance (as Captum): tests/attr/test_captum_drop_in_b.py
    with pytest.raises(ValueError, match="out of range"):
        NeuronConductance(cnn, cnn.conv2).attribute(x, (0, 99, 0), target=0, n_steps=2)
    with pytest.raises(TypeError, match="single torch.nn.Module"):
        NeuronGradient(cnn, [cnn.conv1, cnn.conv2])
    with pytest.raises(ValueError, match="not a submodule"):
        NeuronDeepLift(cnn, nn.ReLU())
    assert_same_state(before, model_state(cnn))


class QuadSkip(nn.Module):
    """F(x) = sum_k w_k (y_k + x_k)^2 / 2 with y = A x: the input also reaches the output around the layer A."""

    def __init__(self, d=4):
        super().__init__()
        self.lin = nn.Linear(d, d, bias=False)
        self.w = nn.Parameter(torch.randn(d))

    def forward(self, x):
        return (self.w * (self.lin(x) + x) ** 2 / 2).sum(1, keepdim=True)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_neuron_conductance_counts_only_the_flow_through_the_layer(method):
    """Conductance of neuron j to input i = (x_i - x'_i) integral dF/dy_j dy_j/dx_i dt. Along the path
    y_j + x_j = p_j + t q_j (p = (A + I) x', q = (A + I)(x - x')), so the integral is A_ji w_j (p_j + q_j / 2):
    exact for both rules (the integrand is linear in t). The path around the layer (the identity) is excluded."""
    torch.manual_seed(6)
    m = QuadSkip().double()
    x, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        a, w = m.lin.weight, m.w
        p, q = b @ (a + torch.eye(4)).T, (x - b) @ (a + torch.eye(4)).T
        per_neuron = [(x - b) * a[j] * (w[j] * (p[:, j] + q[:, j] / 2))[:, None] for j in range(4)]
    for j in range(4):
        got = NeuronConductance(m, m.lin).attribute(x, j, b, target=0, n_steps=5, method=method)
        torch.testing.assert_close(got, per_neuron[j])
    # a slice selects several neurons: the sum of their conductances
    got = NeuronConductance(m, m.lin).attribute(x, (slice(1, 3),), b, target=0, n_steps=5, method=method)
    torch.testing.assert_close(got, per_neuron[1] + per_neuron[2])
    # without multiply_by_inputs: the path-integrated gradient through the layer
    got = NeuronConductance(m, m.lin, multiply_by_inputs=False).attribute(x, 2, b, target=0, n_steps=5, method=method)
    torch.testing.assert_close(got * (x - b), per_neuron[2])


def test_neuron_guided_backprop_and_deconvolution_take_model_keyword(ident):
    x = torch.randn(2, 2, 5, 5)
    for cls in (NeuronGuidedBackprop, NeuronDeconvolution):
        torch.testing.assert_close(cls(model=ident, layer=ident.inp).attribute(x, PIXEL), onehot(x))


def test_neuron_conductance_grad_kwargs(ident):
    x = torch.randn(2, 2, 5, 5)
    nc = NeuronConductance(ident, ident.conv)
    plain = nc.attribute(x, (1, 2, 2), target=0, n_steps=3)
    torch.testing.assert_close(nc.attribute(x, (1, 2, 2), target=0, n_steps=3, grad_kwargs={"allow_unused": True}), plain)
    with pytest.raises(ValueError, match="grad_kwargs"):
        nc.attribute(x, (1, 2, 2), target=0, n_steps=3, grad_kwargs={"create_graph": True})
