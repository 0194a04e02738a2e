"""The CAM family: each method equals its formula computed here from independently captured activations and
gradients; reshape_transform for token models; chunking invariance; the model unchanged; clear errors."""
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, model_state
from torch import nn

from pellucid.attr import (
    AblationCAM, EigenCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM, token_grid,
)


class CamNet(nn.Module):
    """conv -> relu -> conv (the CAM layer) -> tanh -> global average -> linear: gradients depend on the maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.tanh(self.conv2(F.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


class TokenNet(nn.Module):
    """A toy ViT: 4x4 patches -> tokens (N, 16, D), optional class token, a per-token block, a head."""

    def __init__(self, cls_token: bool, dim: int = 6):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim)) if cls_token else None
        self.block = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        t = torch.tanh(self.block(t))
        return self.head(t.mean(1) if self.cls is None else t[:, 0] + t[:, 1:].mean(1))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return CamNet().eval()


def captured(model, layer, x, target):
    """Activations and gradients of the target at ``layer`` by a plain hook and autograd (not pellucid)."""
    store = {}

    def hook(m, args, out):
        out.retain_grad()
        store["a"] = out

    h = layer.register_forward_hook(hook)
    try:
        y = model(x)[torch.arange(x.shape[0]), target]
        y.sum().backward()
    finally:
        h.remove()
    if isinstance(model, nn.Module):
        model.zero_grad(set_to_none=True)
    return store["a"].detach(), store["a"].grad.detach(), y.detach()


def gradcampp_formula(a, g):
    out = torch.zeros(a.shape[0], *a.shape[2:])
    for n in range(a.shape[0]):
        for c in range(a.shape[1]):
            num = g[n, c] ** 2
            den = 2 * g[n, c] ** 2 + a[n, c].sum() * g[n, c] ** 3
            alpha = torch.where(den != 0, num / den, torch.zeros_like(num))
            out[n] += (alpha * g[n, c].clamp(min=0)).sum() * a[n, c]
    return out


def xgradcam_formula(a, g):
    out = torch.zeros(a.shape[0], *a.shape[2:])
    for n in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[n] += (a[n, c] * g[n, c]).sum() / a[n, c].sum() * a[n, c]
    return out


FORMULAS = {
    GradCAMPlusPlus: gradcampp_formula,
    XGradCAM: xgradcam_formula,
    HiResCAM: lambda a, g: torch.einsum("nchw,nchw->nhw", a, g),
    LayerCAM: lambda a, g: torch.einsum("nchw,nchw->nhw", a, g.clamp(min=0)),
}


@pytest.mark.parametrize("method", list(FORMULAS))
def test_gradient_cams_equal_their_formula(net, method):
    x = torch.randn(4, 3, 8, 8)
    target = torch.tensor([0, 2, 1, 2])
    a, g, _ = captured(net, net.conv2, x, target)
    expected = FORMULAS[method](a, g)
    raw = method(net, net.conv2).attribute(x, target=target, relu_attributions=False)
    assert raw.shape == (4, 1, 4, 4)
    assert torch.allclose(raw[:, 0], expected, atol=1e-5, rtol=1e-4)
    cam = method(net, net.conv2).attribute(x, target=target)
    assert torch.allclose(cam[:, 0], expected.clamp(min=0), atol=1e-5, rtol=1e-4)
    assert (raw < 0).any()  # the ReLU case is not vacuous


def test_eigencam_is_first_principal_direction(net):
    x = torch.randn(3, 3, 8, 8)
    a, _, _ = captured(net, net.conv2, x, torch.zeros(3, dtype=torch.long))
    got = EigenCAM(net, net.conv2).attribute(x, relu_attributions=False)[:, 0]
    for n in range(3):
        m = a[n].reshape(a.shape[1], -1).T.double()  # (S, C)
        evals, evecs = torch.linalg.eigh(m.T @ m)
        proj = m @ evecs[:, -1]
        proj = proj if proj.sum() >= 0 else -proj
        assert torch.allclose(got[n].flatten().double(), proj, atol=1e-4)


def scorecam_formula(model, layer, x, target):
    a, _, _ = captured(model, layer, x, target)
    out = []
    for n in range(x.shape[0]):
        scores = []
        for c in range(a.shape[1]):
            up = F.interpolate(a[n, c][None, None], size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]
            mask = (up - up.min()) / (up.max() - up.min())
            with torch.no_grad():
                scores.append(model((x[n] * mask)[None])[0, target[n]])
        w = torch.softmax(torch.stack(scores), 0)
        out.append((w[:, None, None] * a[n]).sum(0))
    return torch.stack(out)


def ablationcam_formula(model, layer, x, target, channel_zero):
    a, _, y = captured(model, layer, x, target)
    out = []
    for n in range(x.shape[0]):
        drops = []
        for c in range(channel_zero(a).shape[1]):
            h = layer.register_forward_hook(lambda m, args, o, c=c: channel_zero(o, c))
            try:
                with torch.no_grad():
                    yc = model(x[n:n + 1])[0, target[n]]
            finally:
                h.remove()
            drops.append((y[n] - yc) / y[n])
        out.append(torch.stack(drops))
    return torch.stack(out)


def zero_channel(o, c=None):
    if c is None:
        return o
    o = o.clone()
    o[:, c] = 0
    return o


def test_scorecam_equals_formula(net):
    x = torch.randn(3, 3, 8, 8)
    target = torch.tensor([1, 0, 2])
    expected = scorecam_formula(net, net.conv2, x, target)
    got = ScoreCAM(net, net.conv2).attribute(x, target=target, relu_attributions=False)[:, 0]
    assert torch.allclose(got, expected, atol=1e-5)


def test_ablationcam_equals_formula(net):
    x = torch.randn(3, 3, 8, 8)
    target = torch.tensor([1, 0, 2])
    a, _, _ = captured(net, net.conv2, x, target)
    weights = ablationcam_formula(net, net.conv2, x, target, zero_channel)
    expected = torch.einsum("nc,nchw->nhw", weights, a)
    got = AblationCAM(net, net.conv2).attribute(x, target=target, relu_attributions=False)[:, 0]
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("method", [GradCAMPlusPlus, ScoreCAM, AblationCAM, EigenCAM])
def test_chunking_invariance(net, method):
    x = torch.randn(5, 3, 8, 8)
    target = torch.tensor([0, 1, 2, 0, 1])
    ref = method(net, net.conv2).attribute(x, target=target)
    for bs in (1, 3):
        assert torch.allclose(method(net, net.conv2).attribute(x, target=target, batch_size=bs), ref, atol=1e-6)


def test_upsample_to_input(net):
    x = torch.randn(2, 3, 8, 8)
    small = LayerCAM(net, net.conv2).attribute(x, target=1)
    big = LayerCAM(net, net.conv2).attribute(x, target=1, upsample_to_input=True)
    assert big.shape == (2, 1, 8, 8)
    assert torch.allclose(big, F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False))
    near = LayerCAM(net, net.conv2).attribute(x, target=1, upsample_to_input=True, interpolate_mode="nearest")
    assert torch.allclose(near, small.repeat_interleave(2, 2).repeat_interleave(2, 3))


@pytest.mark.parametrize("cls_token", [False, True])
def test_reshape_transform_tokens(cls_token):
    torch.manual_seed(1)
    model = TokenNet(cls_token).eval()
    x = torch.randn(3, 3, 16, 16)
    target = torch.tensor([0, 1, 2])
    tokens, grads, _ = captured(model, model.block, x, target)
    assert tokens.shape == (3, 16 + cls_token, 6)
    a = tokens[:, int(cls_token):].reshape(3, 4, 4, 6).permute(0, 3, 1, 2)
    g = grads[:, int(cls_token):].reshape(3, 4, 4, 6).permute(0, 3, 1, 2)
    for transform in (token_grid(), token_grid(prefix_tokens=int(cls_token), height=4, width=4)):
        got = HiResCAM(model, model.block, reshape_transform=transform).attribute(x, target=target,
                                                                                relu_attributions=False)
        assert torch.allclose(got[:, 0], FORMULAS[HiResCAM](a, g), atol=1e-5)
        got = XGradCAM(model, model.block, reshape_transform=transform).attribute(
            x, target=target, relu_attributions=False, upsample_to_input=True)
        assert got.shape == (3, 1, 16, 16)

    # ablation happens in the token layout: feature c of every patch token (the class token is kept)
    def zero_feature(o, c=None):
        if c is None:
            return o[:, int(cls_token):].reshape(o.shape[0], 4, 4, -1).permute(0, 3, 1, 2)
        o = o.clone()
        o[:, int(cls_token):, c] = 0
        return o

    weights = ablationcam_formula(model, model.block, x, target, zero_feature)
    got = AblationCAM(model, model.block, reshape_transform=token_grid()).attribute(
        x, target=target, relu_attributions=False)
    assert torch.allclose(got[:, 0], torch.einsum("nc,nchw->nhw", weights, a), atol=1e-5)
    expected_score = scorecam_formula_tokens(model, x, target, a)
    got = ScoreCAM(model, model.block, reshape_transform=token_grid()).attribute(x, target=target,
                                                                               relu_attributions=False)
    assert torch.allclose(got[:, 0], expected_score, atol=1e-5)


def scorecam_formula_tokens(model, x, target, a):
    out = []
    for n in range(x.shape[0]):
        ups = F.interpolate(a[n][None], size=(16, 16), mode="bilinear", align_corners=False)[0]
        masks = [(u - u.min()) / (u.max() - u.min()) for u in ups]
        with torch.no_grad():
            s = torch.stack([model((x[n] * m)[None])[0, target[n]] for m in masks])
        out.append((torch.softmax(s, 0)[:, None, None] * a[n]).sum(0))
    return torch.stack(out)


def test_token_grid_errors():
    with pytest.raises(ValueError, match="cannot infer"):
        token_grid()(torch.zeros(1, 7, 3))
    with pytest.raises(ValueError, match="prefix_tokens"):
        token_grid(prefix_tokens=1, height=3, width=3)(torch.zeros(1, 9, 3))
    with pytest.raises(ValueError, match="tokens of shape"):
        token_grid()(torch.zeros(1, 9))
    assert token_grid()(torch.zeros(2, 10, 5)).shape == (2, 5, 3, 3)
    assert token_grid(height=2, width=3)(torch.zeros(2, 7, 5)).shape == (2, 5, 2, 3)


METHODS = [GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, ScoreCAM, AblationCAM, EigenCAM]


@pytest.mark.parametrize("method", METHODS)
def test_model_unchanged_after_success_and_error(net, method):
    x = torch.randn(2, 3, 8, 8)
    net.train()
    net.conv1.weight.requires_grad_(False)
    before = model_state(net)
    method(net, net.conv2).attribute(x, target=1)
    assert_same_state(before, model_state(net))

    def broken(t):
        raise RuntimeError("broken transform")

    with pytest.raises(RuntimeError, match="broken transform"):
        method(net, net.conv2, reshape_transform=broken).attribute(x, target=1)
    assert_same_state(before, model_state(net))


class FlatInput(nn.Module):
    def __init__(self, net, *_):
        super().__init__()
        self.net = net

    def forward(self, x, *_):
        return self.net(x.reshape(-1, 3, 8, 8))


def test_errors(net):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="not a submodule"):
        LayerCAM(net, nn.Conv2d(4, 5, 3))
    with pytest.raises(TypeError, match="one layer"):
        LayerCAM(net, [net.conv1, net.conv2])
    with pytest.raises(TypeError, match="reshape_transform"):
        LayerCAM(net, net.conv2, reshape_transform=3)
    with pytest.raises(ValueError, match="interpolate_mode"):
        LayerCAM(net, net.conv2).attribute(x, target=0, interpolate_mode="cubic-ish")
    with pytest.raises(ValueError, match="maps"):
        LayerCAM(net, net.head).attribute(x, target=0)
    flat = FlatInput(net)
    with pytest.raises(ValueError, match="ScoreCAM masks"):
        ScoreCAM(flat, net.conv2).attribute(x.flatten(1), target=0)
    with pytest.raises(ValueError, match="one input tensor"):
        ScoreCAM(flat, net.conv2).attribute((x.flatten(1), x.flatten(1)), target=0)
    with pytest.raises(ValueError, match="rearrange"):
        AblationCAM(net, net.conv2, reshape_transform=lambda t: t * 0.5).attribute(x, target=0)


class Scaled(nn.Module):
    """net(x) * scale (a per-example extra positional argument) + offset (a keyword argument)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, scale, offset=0.0):
        return self.net(x) * scale + offset


def test_extra_forward_arguments(net):
    x = torch.randn(4, 3, 8, 8)
    scale = torch.tensor([[0.5], [2.0], [3.0], [1.5]])
    model = Scaled(net)
    target = torch.tensor([0, 1, 2, 1])
    # gradient maps scale with the score; Ablation-CAM's relative drops do not see a positive scale
    base = HiResCAM(net, net.conv2).attribute(x, target=target, relu_attributions=False)
    got = HiResCAM(model, net.conv2).attribute(x, target=target, additional_forward_args=(scale,),
                                               relu_attributions=False, forward_kwargs={"offset": 1.0})
    assert torch.allclose(got, base * scale.reshape(4, 1, 1, 1), atol=1e-6)
    base = AblationCAM(net, net.conv2).attribute(x, target=target, relu_attributions=False)
    got = AblationCAM(model, net.conv2).attribute(x, target=target, additional_forward_args=(scale,),
                                                  relu_attributions=False, batch_size=3)
    assert torch.allclose(got, base, atol=1e-5)
    # Score-CAM's softmax sees the scaled scores: compare with the formula on the scaled model
    got = ScoreCAM(model, net.conv2).attribute(x[:2], target=target[:2], additional_forward_args=(scale[:2],),
                                               relu_attributions=False)
    expected = scorecam_formula(lambda z: model(z, scale[:1]), net.conv2, x[:1], target[:1])
    assert torch.allclose(got[:1, 0], expected, atol=1e-5)
