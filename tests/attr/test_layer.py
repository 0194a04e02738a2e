"""Layer methods: completeness through the layer, closed forms where the layers after the tap are linear,
agreement with base methods run on the split model, chunking invariance, clear errors, the model left unchanged."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import (
    FeatureAblation, FeaturePermutation, GuidedBackprop, GuidedGradCam, IntegratedGradients,
    InternalInfluence, LayerActivation, LayerConductance, LayerDeepLift, LayerDeepLiftShap, LayerFeatureAblation,
    LayerFeaturePermutation, LayerGradCam, LayerGradientShap, LayerGradientXActivation, LayerIntegratedGradients,
)
from pellucid.attr.layer import interpolate


class TanhHead(nn.Module):
    """F(x) = W2 tanh(W1 x + b1) + b2: after the Tanh module the model is linear, so layer methods have closed forms."""

    def __init__(self, n_in=6, hidden=5, n_out=3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CamNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear: Grad-CAM has the closed form relu(sum_k w_tk / HW * A_k)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.a(x)) * torch.sigmoid(self.b(x)))


@pytest.fixture
def tanh_head():
    torch.manual_seed(1)
    return TanhHead().eval()


@pytest.fixture
def camnet():
    torch.manual_seed(2)
    return CamNet().eval()


def hidden(model, x):
    return torch.tanh(model.fc1(x)).detach()


# -- completeness and closed forms ------------------------------------------------------------------------------
class SmoothCNN(nn.Module):
    """conv-tanh-conv-softplus-avgpool-linear: smooth, so path quadratures converge fast."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        h = F.softplus(self.conv2(torch.tanh(self.conv1(x))))
        return self.fc(F.avg_pool2d(h, 2).flatten(1))


def test_conductance_sums_to_ig_total_through_the_layer():
    torch.manual_seed(0)
    model = SmoothCNN().eval()
    x, base = torch.randn(3, 3, 8, 8), torch.randn(1, 3, 8, 8) * 0.1
    cond, delta = LayerConductance(model, model.conv2).attribute(x, base, target=4, n_steps=30,
                                                                return_convergence_delta=True)
    ig = IntegratedGradients(model).attribute(x, base, target=4, n_steps=30)
    assert cond.shape == (3, 8, 8, 8)
    total = (model(x)[:, 4] - model(base)[:, 4]).detach()
    scale = total.abs().max().item()
    torch.testing.assert_close(cond.sum((1, 2, 3)), ig.sum((1, 2, 3)), atol=1e-3 * scale, rtol=0)
    torch.testing.assert_close(cond.sum((1, 2, 3)), total, atol=1e-3 * scale, rtol=0)
    torch.testing.assert_close(cond.sum((1, 2, 3)) - total, delta, atol=1e-6, rtol=0)
    # a piecewise-linear CNN converges too (more slowly)


def test_conductance_and_internal_influence_closed_form(tanh_head):
    x, base = torch.randn(4, 6), torch.randn(1, 6)
    w = tanh_head.fc2.weight[2]
    for method in ("gausslegendre", "riemann_left", "riemann_trapezoid"):
        cond = LayerConductance(tanh_head, tanh_head.act).attribute(x, base, target=2, n_steps=7, method=method)
        torch.testing.assert_close(cond, (hidden(tanh_head, x) - hidden(tanh_head, base)) * w)
    infl = InternalInfluence(tanh_head, tanh_head.act).attribute(x, base, target=2, n_steps=5)
    torch.testing.assert_close(infl, w.expand(4, -1))


def test_layer_ig_and_deeplift_closed_form(tanh_head):
    x, base = torch.randn(4, 6), torch.randn(1, 6)
    expected = (hidden(tanh_head, x) - hidden(tanh_head, base)) * tanh_head.fc2.weight[1]
    ig, d_ig = LayerIntegratedGradients(tanh_head, tanh_head.act).attribute(x, base, target=1, n_steps=3,
                                                                             return_convergence_delta=True)
    dl, d_dl = LayerDeepLift(tanh_head, tanh_head.act).attribute(x, base, target=1, return_convergence_delta=True)
    torch.testing.assert_close(ig, expected)
    torch.testing.assert_close(dl, expected)
    assert d_ig.abs().max() < 1e-5 and d_dl.abs().max() < 1e-5
    gxa = LayerGradientXActivation(tanh_head, tanh_head.act).attribute(x, target=1)
    torch.testing.assert_close(gxa, hidden(tanh_head, x) * tanh_head.fc2.weight[1])
    grad = LayerGradientXActivation(tanh_head, tanh_head.act, multiply_by_inputs=False).attribute(x, target=1)
    torch.testing.assert_close(grad, tanh_head.fc2.weight[1].expand(4, -1))


def test_layer_deeplift_summation_to_delta_on_cnn(cnn):
    x = torch.randn(2, 3, 32, 32)
    attr, delta = LayerDeepLift(cnn, cnn.conv2).attribute(x, 0.1, target=3, return_convergence_delta=True)
    gap = cnn(x)[:, 3] - cnn(torch.full_like(x, 0.1))[:, 3]
    torch.testing.assert_close(attr.sum((1, 2, 3)), gap.detach(), atol=1e-4, rtol=1e-4)
    assert delta.abs().max() < 1e-4


def test_layer_deeplift_shap_is_mean_of_layer_deeplift(cnn):
    x, dist = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    shap, delta = LayerDeepLiftShap(cnn, cnn.conv2).attribute(x, dist, target=0, return_convergence_delta=True)
    each = [LayerDeepLift(cnn, cnn.conv2).attribute(x, dist[s:s + 1], target=0) for s in range(3)]
    torch.testing.assert_close(shap, torch.stack(each).mean(0), atol=1e-6, rtol=1e-5)
    assert delta.shape == (2,) and delta.abs().max() < 1e-4


def test_layer_gradient_shap_closed_form_and_seed(tanh_head):
    x, dist = torch.randn(3, 6), torch.randn(4, 6)
    attr, delta = LayerGradientShap(tanh_head, tanh_head.act).attribute(
        x, dist[:1], n_samples=6, target=0, return_convergence_delta=True, seed=3)
    torch.testing.assert_close(attr, (hidden(tanh_head, x) - hidden(tanh_head, dist[:1])) * tanh_head.fc2.weight[0])
    assert delta.shape == (3,) and delta.abs().max() < 1e-5
    lgs = LayerGradientShap(tanh_head, tanh_head.act)
    a1 = lgs.attribute(x, dist, n_samples=5, stdevs=0.1, target=0, seed=7)
    a2 = lgs.attribute(x, dist, n_samples=5, stdevs=0.1, target=0, seed=7)
    a3 = lgs.attribute(x, dist, n_samples=5, stdevs=0.1, target=0, seed=8)
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)


def test_layer_gradient_shap_expected_completeness():
    """Its sum is an unbiased estimate of F(x) - F(b) (uniform path point); delta is that gap exactly."""
    torch.manual_seed(0)
    model = SmoothCNN().eval()
    x, b = torch.randn(2, 3, 8, 8), torch.randn(1, 3, 8, 8) * 0.1
    attr, delta = LayerGradientShap(model, model.conv2).attribute(x, b, n_samples=256, target=1,
                                                                 return_convergence_delta=True, seed=0)
    total = (model(x)[:, 1] - model(b)[:, 1]).detach()
    torch.testing.assert_close(delta, attr.sum((1, 2, 3)) - total, atol=1e-6, rtol=0)
    assert (delta.abs() < 0.01 * total.abs()).all(), (delta, total)


def test_layer_ig_on_embedding_equals_ig_on_embedding_outputs(transformer):
    torch.manual_seed(0)
    ids = torch.randint(1, 100, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, 9:] = 0
    base_ids = torch.zeros_like(ids)
    lig, delta = LayerIntegratedGradients(transformer, transformer.embedding).attribute(
        ids, base_ids, target=1, n_steps=16, return_convergence_delta=True, forward_kwargs={"attention_mask": mask})
    emb = transformer.embedding(ids).detach()
    ig = IntegratedGradients(transformer.forward_embeds).attribute(
        emb, transformer.embedding(base_ids).detach(), target=1, n_steps=16, additional_forward_args=(mask,))
    assert lig.shape == (3, 12, 16)
    torch.testing.assert_close(lig, ig, atol=1e-6, rtol=1e-5)
    assert delta.shape == (3,)
    # default baseline: token id 0
    torch.testing.assert_close(
        LayerIntegratedGradients(transformer, transformer.embedding).attribute(ids, target=1, n_steps=4),
        LayerIntegratedGradients(transformer, transformer.embedding).attribute(ids, base_ids, target=1, n_steps=4))


def test_layer_ig_list_of_layers():
    torch.manual_seed(0)
    model = TwoBranch().eval()
    x = torch.randn(3, 4)
    attrs, delta = LayerIntegratedGradients(model, [model.a, model.b]).attribute(
        x, target=0, n_steps=64, return_convergence_delta=True)
    assert isinstance(attrs, list) and [a.shape for a in attrs] == [(3, 3), (3, 3)]
    total = model(x)[:, 0] - model(torch.zeros(1, 4))[:, 0]
    torch.testing.assert_close(attrs[0].sum(1) + attrs[1].sum(1), total.detach(), atol=1e-5, rtol=1e-4)
    assert delta.abs().max() < 1e-5


def test_layer_input_of_the_first_layer_is_the_model_input(tanh_head):
    x = torch.randn(3, 6)
    on_input = LayerIntegratedGradients(tanh_head, tanh_head.fc1).attribute(x, target=0, attribute_to_layer_input=True)
    torch.testing.assert_close(on_input, IntegratedGradients(tanh_head).attribute(x, target=0), atol=1e-6, rtol=1e-5)


def test_layer_activation(cnn):
    x = torch.randn(2, 3, 32, 32)
    expected = cnn.conv2(cnn.pool(cnn.relu(cnn.conv1(x))))
    torch.testing.assert_close(LayerActivation(cnn, cnn.conv2).attribute(x), expected.detach())
    torch.testing.assert_close(LayerActivation(cnn, cnn.conv1).attribute(x, attribute_to_layer_input=True), x)
    both = LayerActivation(cnn, [cnn.conv1, cnn.conv2]).attribute(x)
    assert isinstance(both, list) and both[1].shape == expected.shape


def test_grad_cam_formula(camnet):
    x = torch.randn(3, 3, 6, 7)
    acts = camnet.relu(camnet.conv(x)).detach()
    w = camnet.fc.weight[2].reshape(1, 4, 1, 1) / (6 * 7)
    expected = (w * acts).sum(1, keepdim=True)
    cam = LayerGradCam(camnet, camnet.relu).attribute(x, target=2)
    torch.testing.assert_close(cam, expected)
    cam_relu = LayerGradCam(camnet, camnet.relu).attribute(x, target=2, relu_attributions=True)
    torch.testing.assert_close(cam_relu, expected.clamp(min=0))
    per_channel = LayerGradCam(camnet, camnet.relu).attribute(x, target=2, attr_dim_summation=False)
    torch.testing.assert_close(per_channel, w * acts)


def test_interpolate_and_guided_grad_cam(camnet):
    small = torch.arange(4.0).reshape(1, 1, 2, 2)
    up = LayerGradCam.interpolate(small, (4, 4))
    torch.testing.assert_close(up, small.repeat_interleave(2, 2).repeat_interleave(2, 3))
    with pytest.raises(ValueError, match="interpolate_dims"):
        interpolate(small, (4, 4, 4))
    x = torch.randn(2, 3, 6, 6)
    ggc = GuidedGradCam(camnet, camnet.conv).attribute(x, target=1)
    cam = LayerGradCam(camnet, camnet.conv).attribute(x, target=1, relu_attributions=True)
    gb = GuidedBackprop(camnet).attribute(x, target=1)
    torch.testing.assert_close(ggc, gb * cam)  # same spatial size: interpolation is the identity
    with pytest.warns(UserWarning, match="spatial"):  # Captum's behaviour: a warning and an empty result
        assert GuidedGradCam(camnet, camnet.fc).attribute(x, target=1).numel() == 0


def test_layer_ablation_and_permutation_agree_with_base_methods_on_the_split_model(tanh_head):
    x = torch.randn(5, 6)
    h = hidden(tanh_head, x)
    mask = torch.tensor([0, 0, 1, 2, 2])
    abl = LayerFeatureAblation(tanh_head, tanh_head.act).attribute(x, target=1, layer_mask=mask)
    w = tanh_head.fc2.weight[1]
    group = torch.stack([(h * w)[:, mask == g].sum(1) for g in range(3)], 1)
    torch.testing.assert_close(abl, group[:, mask])  # linear head: ablating a group to 0 removes its term
    torch.testing.assert_close(abl, FeatureAblation(tanh_head.fc2).attribute(h, target=1, feature_mask=mask))
    perm = LayerFeaturePermutation(tanh_head, tanh_head.act).attribute(x, target=1, layer_mask=mask, seed=4)
    torch.testing.assert_close(perm, FeaturePermutation(tanh_head.fc2).attribute(h, target=1, feature_mask=mask, seed=4))


# -- engine properties ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,kwargs", [
    (lambda m: LayerIntegratedGradients(m, m.conv2), dict(n_steps=5)),
    (lambda m: LayerConductance(m, m.conv2), dict(n_steps=5)),
    (lambda m: InternalInfluence(m, m.conv2), dict(n_steps=5)),
    (lambda m: LayerGradCam(m, m.conv2), {}),
    (lambda m: LayerDeepLift(m, m.conv2), {}),
])
def test_chunk_size_invariance(cnn, make, kwargs):
    x = torch.randn(3, 3, 32, 32)
    method = make(cnn)
    ref = method.attribute(x, target=2, **kwargs)
    for bs in (1, 4):
        torch.testing.assert_close(method.attribute(x, target=2, batch_size=bs, **kwargs), ref, atol=1e-6, rtol=1e-5)


ALL = [
    (lambda m: LayerActivation(m, m.conv2), lambda a, x: a.attribute(x)),
    (lambda m: LayerGradientXActivation(m, m.conv2), lambda a, x: a.attribute(x, target=1)),
    (lambda m: LayerIntegratedGradients(m, m.conv2), lambda a, x: a.attribute(x, target=1, n_steps=3)),
    (lambda m: LayerConductance(m, m.conv2), lambda a, x: a.attribute(x, target=1, n_steps=3)),
    (lambda m: InternalInfluence(m, m.conv2), lambda a, x: a.attribute(x, target=1, n_steps=3)),
    (lambda m: LayerGradCam(m, m.conv2), lambda a, x: a.attribute(x, target=1)),
    (lambda m: GuidedGradCam(m, m.conv2), lambda a, x: a.attribute(x, target=1)),
    (lambda m: LayerDeepLift(m, m.conv2), lambda a, x: a.attribute(x, target=1)),
    (lambda m: LayerDeepLiftShap(m, m.conv2), lambda a, x: a.attribute(x, X[:2], target=1)),
    (lambda m: LayerGradientShap(m, m.conv2), lambda a, x: a.attribute(x, X[:2], target=1, n_samples=2)),
    (lambda m: LayerFeatureAblation(m, m.conv2),
     lambda a, x: a.attribute(x, target=1, layer_mask=torch.arange(16).reshape(16, 1, 1))),
    (lambda m: LayerFeaturePermutation(m, m.conv2),
     lambda a, x: a.attribute(x, target=1, layer_mask=torch.arange(16).reshape(16, 1, 1))),
]
X = torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("make,run", ALL)
def test_model_unchanged_on_success_and_error(make, run):
    torch.manual_seed(0)
    model = SmallCNN().train()
    model.fc1.weight.requires_grad_(False)
    before = model_state(model)
    method = make(model)
    out = run(method, X)
    assert out.shape[0] == 2
    assert_same_state(before, model_state(model))
    with pytest.raises((RuntimeError, ValueError)):
        run(method, torch.randn(2, 5, 32, 32))  # conv1 rejects 5 channels (or the baselines' shape is rejected)
    assert_same_state(before, model_state(model))


def test_model_unchanged_when_the_forward_raises(cnn):
    before = model_state(cnn)
    for method in (LayerIntegratedGradients(cnn, cnn.conv2), LayerGradCam(cnn, cnn.conv2), LayerActivation(cnn, cnn.conv2)):
        with pytest.raises(RuntimeError):
            method.attribute(torch.randn(2, 5, 32, 32))  # wrong channel count: conv1 raises
        assert_same_state(before, model_state(cnn))


def test_clear_errors(cnn, transformer):
    with pytest.raises(TypeError, match="layer must be a torch.nn.Module"):
        LayerIntegratedGradients(cnn, "conv2")
    with pytest.raises(ValueError, match="not a submodule"):
        LayerConductance(cnn, nn.Linear(2, 2))
    with pytest.raises(ValueError, match="empty"):
        LayerActivation(cnn, [])
    x = torch.randn(2, 3, 32, 32)
    before = model_state(cnn)
    with pytest.raises(ValueError, match="called 2 or more times"):
        LayerIntegratedGradients(cnn, cnn.relu).attribute(x, target=0, n_steps=2)  # SmallCNN reuses its ReLU
    with pytest.raises(ValueError, match="called 2 or more times"):
        LayerGradCam(cnn, cnn.relu).attribute(x, target=0)
    assert_same_state(before, model_state(cnn))
    unused = nn.Linear(3, 3)
    cnn.add_module("unused", unused)
    try:
        with pytest.raises(ValueError, match="was not called"):
            LayerGradientXActivation(cnn, unused).attribute(x, target=0)
    finally:
        del cnn.unused
    with pytest.raises(TypeError, match="floating-point"):
        LayerConductance(transformer, transformer.embedding).attribute(torch.randint(0, 9, (2, 5)), target=0)


class PairLayer(nn.Module):
    """A layer with a tuple output (two tensors)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)

    def forward(self, x):
        h = self.lin(x)
        return torch.tanh(h[:, :3]), torch.sigmoid(h[:, 3:])


class PairModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = PairLayer()
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        a, b = self.pair(x)
        return self.head(a * b)


def test_tuple_output_layer_gives_a_tuple():
    torch.manual_seed(0)
    model = PairModel().eval()
    x = torch.randn(3, 4)
    attrs, delta = LayerIntegratedGradients(model, model.pair).attribute(x, target=1, n_steps=64,
                                                                        return_convergence_delta=True)
    assert isinstance(attrs, tuple) and [a.shape for a in attrs] == [(3, 3), (3, 3)]
    total = (model(x)[:, 1] - model(torch.zeros(1, 4))[:, 1]).detach()
    torch.testing.assert_close(attrs[0].sum(1) + attrs[1].sum(1), total, atol=1e-5, rtol=1e-4)
    assert delta.abs().max() < 1e-5
    acts = LayerActivation(model, model.pair).attribute(x)
    torch.testing.assert_close(acts[1], model.pair(x)[1].detach())


def test_hooks_registered_once_per_call(cnn, monkeypatch):
    from pellucid.core import hooks

    entered = []
    original = hooks.LayerTap.__enter__

    def counting(self):
        entered.append(self.module)
        return original(self)

    monkeypatch.setattr(hooks.LayerTap, "__enter__", counting)
    x = torch.randn(3, 3, 32, 32)
    LayerIntegratedGradients(cnn, cnn.conv2).attribute(x, target=0, n_steps=4, batch_size=2, return_convergence_delta=True)
    LayerConductance(cnn, cnn.conv2).attribute(x, target=0, n_steps=4, batch_size=2)
    assert entered == [cnn.conv2, cnn.conv2]  # 12-15 chunks each, one registration per call


def test_two_d_target_and_internal_batch_size(tanh_head):
    x = torch.randn(3, 6)
    lig = LayerIntegratedGradients(tanh_head, tanh_head.act)
    both = lig.attribute(x, target=torch.tensor([[0, 2]] * 3), n_steps=8)
    assert both.shape == (3, 2, 5)
    for k, t in enumerate((0, 2)):
        torch.testing.assert_close(both[:, k], lig.attribute(x, target=t, n_steps=8, internal_batch_size=5))
    with pytest.raises(ValueError, match="conflicting batch sizes"):
        lig.attribute(x, target=0, internal_batch_size=2, batch_size=3)


def test_gradient_shap_noise_needs_float_inputs(transformer):
    ids = torch.randint(1, 100, (2, 6))
    with pytest.raises(ValueError, match="stdevs must be 0 for integer inputs"):
        LayerGradientShap(transformer, transformer.embedding).attribute(ids, torch.zeros(1, 6, dtype=torch.long),
                                                                        stdevs=0.5, target=0)
    out = LayerGradientShap(transformer, transformer.embedding).attribute(ids, torch.zeros(2, 6, dtype=torch.long),
                                                                          target=0, seed=0)
    assert out.shape == (2, 6, 16)


class InplaceNet(nn.Module):
    """conv -> in-place ReLU -> conv -> in-place ReLU -> linear: the tapped layer's output is modified in place."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu1, self.relu2 = nn.ReLU(inplace=True), nn.ReLU(inplace=True)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).flatten(1))


def test_in_place_ops_after_the_layer():
    torch.manual_seed(0)
    model = InplaceNet().eval()
    x = torch.randn(2, 3, 6, 6)
    acts = LayerActivation(model, model.conv2).attribute(x)
    gxa = LayerGradientXActivation(model, model.conv2).attribute(x, target=0)
    w = model.fc.weight[0].reshape(4, 6, 6)
    torch.testing.assert_close(gxa, acts * w * (acts > 0))  # d relu(a)/da = 1[a > 0]
    ig, delta = LayerIntegratedGradients(model, model.conv2).attribute(x, target=0, return_convergence_delta=True)
    assert delta.abs().max() < 1e-2 * (model(x)[:, 0] - model(torch.zeros(1, 3, 6, 6))[:, 0]).abs().max()
    cond, cdelta = LayerConductance(model, model.conv1).attribute(x, target=0, n_steps=8, return_convergence_delta=True)
    assert cond.shape == (2, 4, 6, 6) and torch.isfinite(cdelta).all()


class SkipNet(nn.Module):
    """F(x) = w . relu(l2(relu(l1 x)) + x) + c: the input also reaches the output around ``l2``."""

    def __init__(self, d=5):
        super().__init__()
        self.l1, self.l2, self.o = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 2)

    def forward(self, x):
        return self.o(torch.relu(self.l2(torch.relu(self.l1(x))) + x))


@pytest.fixture
def skipnet():
    torch.manual_seed(0)
    return SkipNet().double().eval()


def test_layer_deeplift_takes_references_from_the_baselines_forward_on_the_bypass_too(skipnet):
    """DeepLIFT's reference is a full forward pass on the baseline: after ``l2`` the ReLU sees z = y + x against
    z0 = y0 + b (not y0 + x), so the attribution of y is w * (relu(z) - relu(z0)) / (z - z0) * (y - y0)."""
    torch.manual_seed(1)
    x, b = torch.randn(4, 5, dtype=torch.float64), 0.3 * torch.randn(4, 5, dtype=torch.float64)
    m = skipnet
    with torch.no_grad():
        y, y0 = m.l2(torch.relu(m.l1(x))), m.l2(torch.relu(m.l1(b)))
        z, z0 = y + x, y0 + b
        want = m.o.weight[1] * (torch.relu(z) - torch.relu(z0)) / (z - z0) * (y - y0)
        f_x, f_b = m(x)[:, 1], m(b)[:, 1]
        wrong = m.o.weight[1] * (torch.relu(z) - torch.relu(y0 + x)) / (y - y0) * (y - y0)
    attr, delta = LayerDeepLift(m, m.l2).attribute(x, b, target=1, return_convergence_delta=True)
    torch.testing.assert_close(attr, want)
    torch.testing.assert_close(delta, attr.sum(1) - (f_x - f_b))
    assert (want - wrong).abs().max() > 1e-3  # the bypass matters in this case
    # DeepLIFT-SHAP with one sample is DeepLIFT; with two it is the mean of the two
    one = LayerDeepLiftShap(m, m.l2).attribute(x, b[:1], target=1)
    torch.testing.assert_close(one, LayerDeepLift(m, m.l2).attribute(x, b[:1], target=1))
    two, d2 = LayerDeepLiftShap(m, m.l2).attribute(x, b[:2], target=1, return_convergence_delta=True)
    each = [LayerDeepLift(m, m.l2).attribute(x, b[i:i + 1], target=1) for i in range(2)]
    torch.testing.assert_close(two, (each[0] + each[1]) / 2)
    torch.testing.assert_close(d2, two.sum(1) - (f_x - m(b[:2])[:, 1].mean().detach()))
    # custom attribution functions see the layer's tensors only
    got = LayerDeepLift(m, m.l2).attribute(x, b, target=1, custom_attribution_func=lambda mu, i, r: (mu[0] * 2,))
    torch.testing.assert_close(got, 2 * LayerDeepLift(m, m.l2, multiply_by_inputs=False).attribute(x, b, target=1))


class LinearSkip(nn.Module):
    """F(x) = v . (A x) + u . x: linear, with a path around the layer ``A``."""

    def __init__(self, d=4):
        super().__init__()
        self.a = nn.Linear(d, d, bias=False)
        self.v, self.u = nn.Linear(d, 1, bias=False), nn.Linear(d, 1, bias=False)

    def forward(self, x, scale=1.0):
        return self.v(self.a(x)) * scale + self.u(x)


def test_layer_ig_delta_is_completeness_with_respect_to_the_model_inputs():
    """Captum's definition: delta = sum(attr) - (F(x) - F(x')) with all inputs at the baseline. On
    F = v.(A x) + u.x the layer attribution is v * A(x - x') exactly, so delta = -u.(x - x')."""
    torch.manual_seed(2)
    m = LinearSkip().double()
    x, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    attr, delta = LayerIntegratedGradients(m, m.a).attribute(x, b, target=0, n_steps=3, return_convergence_delta=True,
                                                              additional_forward_args=(2.0,))
    with torch.no_grad():
        v, u, a = m.v.weight[0], m.u.weight[0], m.a.weight
        torch.testing.assert_close(attr, 2.0 * v * ((x - b) @ a.T))
        torch.testing.assert_close(delta, -((x - b) @ u))
    assert delta.abs().min() > 1e-3


@pytest.mark.parametrize("make,kwargs", [
    (lambda m: LayerIntegratedGradients(m, m.act), dict(n_steps=4)),
    (lambda m: LayerConductance(m, m.act), dict(n_steps=4)),
    (lambda m: InternalInfluence(m, m.act), dict(n_steps=4)),
    (lambda m: LayerDeepLift(m, m.act), {}),
    (lambda m: LayerGradCam(m, m.act), {}),
    (lambda m: LayerGradientXActivation(m, m.act), {}),
])
def test_grad_kwargs_accepted_and_checked(tanh_head, make, kwargs):
    x = torch.randn(3, 6)
    method = make(tanh_head)
    plain = method.attribute(x, target=1, **kwargs)
    torch.testing.assert_close(method.attribute(x, target=1, grad_kwargs={"retain_graph": True}, **kwargs), plain)
    with pytest.raises(ValueError, match="grad_kwargs"):
        method.attribute(x, target=1, grad_kwargs={"create_graph": True}, **kwargs)
    with pytest.raises(ValueError, match="grad_kwargs"):
        method.attribute(x, target=1, grad_kwargs={"bogus": 1}, **kwargs)
    with pytest.raises(TypeError, match="grad_kwargs"):
        method.attribute(x, target=1, grad_kwargs=[("retain_graph", True)], **kwargs)


def test_gradient_x_activation_memory_efficient(tanh_head):
    x = torch.randn(5, 6)
    plain = LayerGradientXActivation(tanh_head, tanh_head.act).attribute(x, target=0)
    eff = LayerGradientXActivation(tanh_head, tanh_head.act, memory_efficient=True).attribute(x, target=0, batch_size=2)
    assert eff.device.type == "cpu"
    torch.testing.assert_close(eff, plain)


class MaskedBag(nn.Module):
    """Token ids -> embeddings summed over non-padding tokens (the ids also reach the output through the mask) ->
    ReLU -> linear."""

    def __init__(self, vocab=10, dim=3):
        super().__init__()
        self.emb, self.out = nn.Embedding(vocab, dim), nn.Linear(dim, 2)

    def forward(self, ids):
        mask = (ids != 0).to(self.emb.weight.dtype)
        return self.out(torch.relu((self.emb(ids) * mask[..., None]).sum(1)))


def test_layer_deeplift_on_embeddings_uses_the_baseline_ids_on_the_bypass():
    """Baseline ids 0 mask every token, so the reference sum is h0 = 0 and the attribution of token t's embedding
    is w * relu(h)/h * mask_t * (e_t - e_0) (DeepLIFT's reference from a forward pass on the baseline ids)."""
    torch.manual_seed(4)
    m = MaskedBag().double()
    ids = torch.tensor([[1, 4, 0, 7], [3, 3, 9, 0]])
    attr, delta = LayerDeepLift(m, m.emb).attribute(ids, 0, target=1, return_convergence_delta=True)
    with torch.no_grad():
        e, e0, mask = m.emb(ids), m.emb.weight[0], (ids != 0).double()
        h = (e * mask[..., None]).sum(1)
        mult = m.out.weight[1] * torch.relu(h) / h
        want = mult[:, None, :] * mask[..., None] * (e - e0)
        f = m(ids)[:, 1] - m(torch.zeros_like(ids))[:, 1]
    torch.testing.assert_close(attr, want)
    torch.testing.assert_close(delta, attr.sum((1, 2)) - f)
