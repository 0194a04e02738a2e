"""Captum drop-in, part A: behaviours that used to be silently different from Captum's (or crash).

* LRP with ``nn.ReLU(inplace=True)`` after rule layers (VGG/ResNet style): runs, conserves relevance.
* LRP rules set on modules (``model.fc.rule = GammaRule()``, Captum's way), Captum's rule classes (closed forms),
  dropout passing relevance (training mode too), Captum's default epsilon 1e-9, LayerLRP with lists.
* Layer methods with lists of nested / consecutive layers: each layer's attribution equals the layer alone, and
  closed forms on a linear chain.
* FeatureAblation of integer inputs with a float baseline uses the baseline as given.
* NoiseTunnel: per-example arguments repeated with the noisy copies, one-element tensor targets, and errors that
  speak of the user's arguments.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, model_state
from torch import nn

import pellucid.attr as pa
from pellucid.attr import (
    LRP, Alpha1_Beta0_Rule, EpsilonRule, FeatureAblation, GammaRule, IdentityRule, IntegratedGradients, LayerLRP,
    NoiseTunnel, PropagationRule, Saliency,
)
from pellucid.attr.lrp import Composite, Epsilon, epsilon_composite


# -- models -------------------------------------------------------------------------------------------------
def vgg(bias: bool = False, dropout: float = 0.0) -> nn.Module:
    """Conv-ReLU(inplace)-MaxPool twice, a dense head with an in-place ReLU and dropout (float64)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=bias), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(24, 8, bias=bias), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(8, 3, bias=bias),
    ).double().eval()


class Basic(nn.Module):
    """A ResNet basic block: conv-BN-ReLU(inplace)-conv-BN, ``out += identity``, ReLU(inplace)."""

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class ResNetish(nn.Module):
    def __init__(self, inplace: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=inplace)
        self.block = Basic(inplace)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.block(self.relu(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnetish(inplace: bool = True) -> nn.Module:
    torch.manual_seed(0)
    m = ResNetish(inplace)
    for bn in (m.block.bn1, m.block.bn2):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
    return m.double().eval()


def scores(model, x, target):
    with torch.no_grad():
        return model(x)[torch.arange(x.shape[0]), target]


# -- LRP: in-place ReLU -------------------------------------------------------------------------------------
def test_lrp_inplace_relu_after_rule_layers_conserves_relevance():
    model, x, target = vgg(), torch.randn(3, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 2, 1])
    before = model_state(model)
    rel, delta = LRP(model, epsilon_composite(1e-12)).attribute(x, target=target, return_convergence_delta=True)
    assert_same_state(before, model_state(model))
    # bias-free LRP-epsilon: sum of the input relevance = f(x)
    assert torch.allclose(rel.flatten(1).sum(1), scores(model, x, target), rtol=1e-6, atol=1e-9)
    assert delta.abs().max() < 1e-8
    # the same numbers as the model with out-of-place ReLUs
    plain = vgg()
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    assert torch.allclose(rel, LRP(plain, epsilon_composite(1e-12)).attribute(x, target=target), atol=1e-12)


def test_lrp_resnet_block_with_inplace_ops_matches_out_of_place():
    x, target = torch.randn(2, 3, 6, 6, dtype=torch.float64), torch.tensor([1, 2])
    model = resnetish(inplace=True)
    before = model_state(model)
    got = LRP(model).attribute(x, target=target)
    assert_same_state(before, model_state(model))
    assert torch.allclose(got, LRP(resnetish(inplace=False)).attribute(x, target=target), atol=1e-12)
    got_layer = LayerLRP(model, model.block.conv2).attribute(x, target=target)
    assert got_layer.shape == (2, 4, 6, 6) and torch.isfinite(got_layer).all()


# -- LRP: rules set on modules (Captum's way), closed forms --------------------------------------------------
def one_layer(bias: bool = True) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 3, bias=bias)).double().eval()


def closed_form(model, x, w, b, target, eps):
    """``R_i = x_i W'_ti f_t / stab(z'_t)``, ``z'_t = x . W'_t + b'_t`` (one linear layer, output relevance f_t)."""
    z = (x * w[target]).sum(1) + (0.0 if b is None else b[target])
    f = scores(model, x, target)
    return x * w[target] * (f / (z + eps * torch.where(z >= 0, 1.0, -1.0)))[:, None]


@pytest.mark.parametrize("rule,modify,use_bias", [
    (EpsilonRule(), lambda w: w, True),
    (EpsilonRule(0.5), lambda w: w, True),
    (GammaRule(0.5), lambda w: w + 0.5 * w.clamp(min=0), True),
    (GammaRule(0.25, set_bias_to_zero=True), lambda w: w + 0.25 * w.clamp(min=0), False),
    (Alpha1_Beta0_Rule(), lambda w: w.clamp(min=0), True),
    (Alpha1_Beta0_Rule(set_bias_to_zero=True), lambda w: w.clamp(min=0), False),
])
def test_captum_rules_set_on_a_module_follow_their_definitions(rule, modify, use_bias):
    model = one_layer()
    x, target = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    layer = model[0]
    layer.rule = rule
    before = model_state(model)
    got = LRP(model).attribute(x, target=target)
    assert_same_state(before, model_state(model))
    assert layer.rule is rule  # read, never removed (Captum deletes it after the call)
    w, b = modify(layer.weight.detach()), (layer.bias.detach() if use_bias else None)
    assert torch.allclose(got, closed_form(model, x, w, b, target, rule.epsilon), rtol=1e-9, atol=1e-12)


def test_module_rule_overrides_the_composite_and_agrees_with_by_name():
    model, x, target = vgg(bias=True), torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1])
    by_name = LRP(model, Composite(by_name={"7": Epsilon(0.3), "0": Epsilon(1e-9)}, default=Epsilon(1e-9))).attribute(
        x, target=target)
    default = LRP(model).attribute(x, target=target)
    model[7].rule = EpsilonRule(0.3)
    got = LRP(model).attribute(x, target=target)
    assert torch.allclose(got, by_name, atol=1e-12)
    assert not torch.allclose(got, default, atol=1e-6)  # the rule changes the result: it is not ignored
    # a rule object of Captum's family agrees with pellucid's own rule of the same definition
    model[7].rule = Epsilon(0.3)
    assert torch.allclose(LRP(model).attribute(x, target=target), by_name, atol=1e-12)


def test_custom_propagation_rule_manipulates_a_copy_of_the_layer():
    class PositiveWeights(PropagationRule):  # a user's Captum-style rule
        def __init__(self):
            self.calls = 0

        def _manipulate_weights(self, module, inputs, outputs):
            self.calls += 1
            module.weight.data = module.weight.data.clamp(min=0)

    model, x, target = one_layer(), torch.randn(3, 5, dtype=torch.float64), torch.tensor([2, 0, 1])
    reference = copy.deepcopy(model)
    reference[0].rule = Alpha1_Beta0_Rule()  # the same definition, as data
    model[0].rule = custom = PositiveWeights()
    before = model_state(model)
    got = LRP(model).attribute(x, target=target)
    assert_same_state(before, model_state(model))
    assert custom.calls >= 1
    assert torch.allclose(got, LRP(reference).attribute(x, target=target), atol=1e-12)


def test_identity_rule_passes_relevance_through_batchnorm():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).double().eval()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    x, target = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    model[1].rule = IdentityRule()
    into, out = (LayerLRP(model, model[1]).attribute(x, target=target, attribute_to_layer_input=flag)
                 for flag in (True, False))
    assert torch.allclose(into, out, atol=1e-12)
    # EpsilonRule on the BatchNorm (not merged into the Linear because it carries its own rule):
    # R_in = x * a * R_out / stab(a x + c), a and c the BatchNorm's affine map
    model[1].rule = EpsilonRule()
    into, out = (LayerLRP(model, model[1]).attribute(x, target=target, attribute_to_layer_input=flag)
                 for flag in (True, False))
    bn = model[1]
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    with torch.no_grad():
        h = model[0](x)
        y = bn(h)
    assert torch.allclose(into, h * a * out / (y + 1e-9 * torch.where(y >= 0, 1.0, -1.0)), atol=1e-9)


def test_rules_set_on_modules_raise_rather_than_being_ignored():
    model, x = vgg(), torch.randn(1, 3, 8, 8, dtype=torch.float64)
    model[7].rule = "epsilon"
    with pytest.raises(TypeError, match=r"7 \(Linear\).*rule.*str"):
        LRP(model).attribute(x, target=0)
    del model[7].rule
    model[2].rule = GammaRule()  # a MaxPool has no weights to modify
    with pytest.raises(ValueError, match=r"GammaRule.*2 \(MaxPool2d\)"):
        LRP(model).attribute(x, target=0)
    del model[2].rule
    block = resnetish()
    block.block.rule = EpsilonRule()
    with pytest.raises(ValueError, match="block.*contains other modules"):
        LRP(block).attribute(torch.randn(1, 3, 6, 6, dtype=torch.float64), target=0)


def test_epsilon_rule_on_max_pool_is_winner_take_all():
    model, x, target = vgg(), torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 2])
    plain = LRP(model).attribute(x, target=target)
    model[2].rule = EpsilonRule()  # Captum's default rule on max pooling: x * dmax/dx * R / stab(max)
    assert torch.allclose(LRP(model).attribute(x, target=target), plain, atol=1e-7)


def test_rules_importable_from_captum_paths():
    from pellucid.attr._utils.lrp_rules import Alpha1_Beta0_Rule as A, EpsilonRule as E, IdentityRule as I
    from pellucid.attr.lrp import GammaRule as G

    assert (A, E, I, G) == (pa.Alpha1_Beta0_Rule, pa.EpsilonRule, pa.IdentityRule, pa.GammaRule)


def test_default_epsilon_is_captums():
    # one layer whose pre-activation is tiny: R = x w f / (z + eps), so eps matters
    model = nn.Sequential(nn.Linear(2, 1, bias=False)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
    x = torch.tensor([[1.0 + 2e-9, 1.0]], dtype=torch.float64)
    z = 2e-9
    expected = x * torch.tensor([1.0, -1.0], dtype=torch.float64) * z / (z + 1e-9)
    assert torch.allclose(LRP(model).attribute(x), expected, rtol=1e-6)
    assert torch.allclose(LRP(model).attribute(x), LRP(model, epsilon_composite(1e-9)).attribute(x))


def test_dropout_passes_relevance_in_training_mode():
    model, x, target = vgg(dropout=0.5), torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    model[9].train()  # only the dropout: its forward drops units at random and scales the others by 2
    before = model_state(model)
    torch.manual_seed(3)
    _, delta = LRP(model, epsilon_composite(1e-12)).attribute(x, target=target, return_convergence_delta=True)
    assert_same_state(before, model_state(model))
    # relevance conserved whatever units were dropped (the gradient would have scaled it by 1 / (1 - p))
    assert delta.abs().max() < 1e-8


def test_layer_lrp_list_of_layers_nested_and_consecutive():
    model, x, target = resnetish(), torch.randn(2, 3, 6, 6, dtype=torch.float64), torch.tensor([0, 2])
    layers = [model.block, model.block.conv2, model.stem]
    for flag in (False, True):
        got, deltas = LayerLRP(model, layers).attribute(x, target=target, attribute_to_layer_input=flag,
                                                         return_convergence_delta=True)
        assert isinstance(got, list) and isinstance(deltas, list) and len(got) == len(deltas) == 3
        for layer, r, d in zip(layers, got, deltas):
            alone, d_alone = LayerLRP(model, layer).attribute(x, target=target, attribute_to_layer_input=flag,
                                                              return_convergence_delta=True)
            assert torch.allclose(r, alone, atol=1e-12) and torch.allclose(d, d_alone, atol=1e-12)
    # the relevance at the first layer's input is LRP's input relevance
    at_input = LayerLRP(model, model.stem).attribute(x, target=target, attribute_to_layer_input=True)
    assert torch.allclose(at_input, LRP(model).attribute(x, target=target), atol=1e-12)


# -- layer methods with lists of layers that depend on one another --------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        return self.out(torch.tanh(self.inner(x)))


class Chain(nn.Module):
    """``head(tanh(block(x)))`` plus a bypass ``side(x)`` (a layer independent of the block)."""

    def __init__(self):
        super().__init__()
        self.block, self.head, self.side = Block(), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.tanh(self.block(x))) + self.side(x)


def chain() -> nn.Module:
    torch.manual_seed(4)
    return Chain().double().eval()


X4 = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
LAYER_METHODS = [
    (pa.LayerGradientXActivation, {}),
    (pa.LayerIntegratedGradients, {"n_steps": 8}),
    (pa.LayerConductance, {"n_steps": 8}),
    (pa.InternalInfluence, {"n_steps": 8}),
    (pa.LayerDeepLift, {}),
    (pa.LayerDeepLiftShap, {"baselines": X4.flip(0) * 0.5}),
    (pa.LayerGradientShap, {"baselines": X4.flip(0) * 0.5, "seed": 0, "n_samples": 3}),
    (pa.LayerFeatureAblation, {}),
    (pa.LayerGradCam, {}),
    (pa.LayerActivation, {}),
]


@pytest.mark.parametrize("method,kwargs", LAYER_METHODS, ids=[m.__name__ for m, _ in LAYER_METHODS])
@pytest.mark.parametrize("to_input", [False, True])
def test_list_of_nested_layers_equals_each_layer_alone(method, kwargs, to_input):
    model = chain()
    kwargs = dict(kwargs) if method is pa.LayerActivation else {"target": 1, **kwargs}
    for layers in ([model.block, model.block.inner], [model.block.inner, model.head], [model.block.out, model.side]):
        got = method(model, layers).attribute(X4, attribute_to_layer_input=to_input, **kwargs)
        assert isinstance(got, list) and len(got) == 2
        for layer, g in zip(layers, got):
            alone = method(model, layer).attribute(X4, attribute_to_layer_input=to_input, **kwargs)
            assert torch.allclose(g, alone, atol=1e-10), (layers, layer)
            assert g.abs().max() > 0


def test_nested_layers_closed_form_on_a_linear_chain():
    """``F = W3 W2 W1 x`` (no bias, no nonlinearity): at ``h1 = W1 x`` and ``h2 = W2 h1`` the gradient of output t is
    ``(W3 W2)_t`` and ``W3_t``; gradient x activation and integrated gradients (zero baseline) are ``h * grad``."""
    torch.manual_seed(6)
    inner = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Linear(5, 3, bias=False))
    model = nn.Sequential(inner, nn.Linear(3, 2, bias=False)).double().eval()
    w1, w2, w3 = (m.weight.detach() for m in (inner[0], inner[1], model[1]))
    x, t = torch.randn(4, 4, dtype=torch.float64), 1
    h1, h2 = x @ w1.T, x @ w1.T @ w2.T
    expected = [h2 * w3[t], h1 * (w3 @ w2)[t]]  # the block (output h2) and the layer inside it (output h1)
    for method in (pa.LayerGradientXActivation, pa.LayerIntegratedGradients, pa.LayerDeepLift):
        got = method(model, [inner, inner[0]]).attribute(x, target=t)
        for g, e in zip(got, expected):
            assert torch.allclose(g, e, atol=1e-10), method.__name__


def test_layers_depend_is_found_by_tracing():
    model = chain()
    ig = pa.LayerIntegratedGradients
    assert ig(model, [model.block, model.block.inner]).layers_depend(X4)
    assert ig(model, [model.block.inner, model.head]).layers_depend(X4)
    assert not ig(model, [model.block.out, model.side]).layers_depend(X4)
    assert not ig(model, [model.block.out, model.side]).layers_depend(X4, attribute_to_layer_input=True)


def test_dependent_layers_with_delta_raise():
    model = chain()
    with pytest.raises(ValueError, match="return_convergence_delta.*depend on one another"):
        pa.LayerIntegratedGradients(model, [model.block, model.block.inner]).attribute(
            X4, target=0, return_convergence_delta=True)
    # independent layers: attributed together, one delta (as in Captum)
    _, delta = pa.LayerIntegratedGradients(model, [model.block.out, model.side]).attribute(
        X4, target=0, return_convergence_delta=True)
    assert delta.shape == (3,)


# -- FeatureAblation: integer inputs, float baselines ----------------------------------------------------------
def test_feature_ablation_integer_input_float_baseline():
    w = torch.tensor([1.0, 2.0, -3.0])
    seen = []

    def model(x, y):
        seen.append(x.dtype)
        return x.float() @ w + y.float().sum(1)

    x, y = torch.tensor([[1, 2, 3], [4, 0, -1]]), torch.tensor([[5, 6], [7, 8]])
    ax, ay = FeatureAblation(model).attribute((x, y), baselines=(0.2, 1))
    assert ax.dtype == torch.float32 and torch.allclose(ax, w * (x - 0.2))  # 0.2 is not cast to 0
    assert torch.allclose(ay, (y - 1).float())  # an integer baseline keeps the input integer
    assert set(seen) == {torch.float32}
    seen.clear()
    bx = FeatureAblation(model).attribute((x, y), baselines=(torch.full((1, 3), 0.5, dtype=torch.float64), 0))[0]
    assert set(seen) == {torch.float64} and torch.allclose(bx, w * (x - 0.5))  # the baseline tensor's dtype


# -- NoiseTunnel ---------------------------------------------------------------------------------------------
class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))

    def forward(self, x, scale, offset=None):
        out = self.net(x) * scale[:, None]
        return out if offset is None else out + offset


def test_noise_tunnel_expands_per_example_arguments():
    model, x = Scaled().eval(), torch.randn(3, 6)
    scale, offset = torch.tensor([1.0, -2.0, 0.5]), torch.randn(3, 3)
    mask = torch.stack([torch.arange(6) % 2, torch.arange(6) // 3, torch.zeros(6, dtype=torch.long)])
    common = dict(target=[0, 2, 1], additional_forward_args=(scale,), forward_kwargs={"offset": offset})
    direct = FeatureAblation(model).attribute(x, feature_mask=mask, **common)
    nt = NoiseTunnel(FeatureAblation(model)).attribute(x, nt_samples=3, stdevs=0.0, feature_mask=mask, **common)
    assert torch.allclose(nt, direct, atol=1e-6)
    b = torch.randn(3, 6)  # per-example baselines
    ig = IntegratedGradients(model).attribute(x, baselines=b, n_steps=8, **common)
    nt = NoiseTunnel(IntegratedGradients(model)).attribute(x, nt_samples=2, stdevs=0.0, baselines=b, n_steps=8, **common)
    assert torch.allclose(nt, ig, atol=1e-6)


def test_noise_tunnel_one_element_tensor_target_applies_to_all():
    model, x = Scaled().eval(), torch.randn(3, 6)
    scale = torch.ones(3)
    one = NoiseTunnel(Saliency(model)).attribute(x, nt_samples=2, stdevs=0.0, target=torch.tensor([2]),
                                                 additional_forward_args=(scale,))
    assert torch.allclose(one, Saliency(model).attribute(x, target=2, additional_forward_args=(scale,)))


@pytest.mark.parametrize("kwargs,words", [
    ({"target": [0, 1]}, r"target list has 2 entries but there are 3 examples"),
    ({"target": torch.tensor([0, 1])}, r"target has 2 entries but there are 3 examples"),
    ({"target": [0, 1, 9]}, r"target 9 \(example 2\) is out of range"),
    ({"target": 0, "baselines": torch.zeros(2, 6)}, r"baselines has shape \(2, 6\).*input's shape \(3, 6\)"),
    ({"target": 0, "feature_mask": torch.zeros(2, 6, dtype=torch.long)}, r"feature_mask has shape \(2, 6\).*\(3, 6\)"),
])
def test_noise_tunnel_errors_speak_of_the_users_arguments(kwargs, words):
    model, x = nn.Linear(6, 4), torch.randn(3, 6)
    method = FeatureAblation(model) if "feature_mask" in kwargs else IntegratedGradients(model)
    with pytest.raises(ValueError, match=words):
        NoiseTunnel(method).attribute(x, nt_samples=3, **kwargs)


@pytest.mark.parametrize("name", ["Occlusion", "ShapleyValues", "ShapleyValueSampling", "FeatureAblation"])
def test_float_baseline_of_integer_input_is_used_as_given_in_every_ablation_method(name):
    """f(x) = x . w on an integer input with baseline 0.2: each feature's ablation effect is (x_i - 0.2) w_i."""
    import pellucid.attr as pa

    w = torch.tensor([1.0, 2.0, -1.0])
    model = lambda x: (x.float() * w).sum(dim=1)
    x = torch.tensor([[3, 1, 2]])
    method = getattr(pa, name)(model)
    kwargs = {"sliding_window_shapes": (1,)} if name == "Occlusion" else {}
    if name == "ShapleyValueSampling":
        kwargs["n_samples"] = 2
    attr = method.attribute(x, baselines=0.2, **kwargs)
    torch.testing.assert_close(attr.float(), ((x - 0.2) * w).float())


def test_deeplift_max_pool_followed_by_an_inplace_relu():
    """In-place ReLU after a max pool must work and equal the out-of-place model, summation to delta intact."""
    torch.manual_seed(0)
    inplace = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(inplace=True), nn.Flatten(),
                            nn.Linear(2 * 4 * 4, 2))
    plain = copy.deepcopy(inplace)
    plain[2] = nn.ReLU()
    x = torch.randn(3, 1, 8, 8)
    a, delta = pa.DeepLift(inplace).attribute(x, target=1, return_convergence_delta=True)
    torch.testing.assert_close(a, pa.DeepLift(plain).attribute(x, target=1))
    assert delta.abs().max() < 1e-5


@pytest.mark.parametrize("method", ["DeepLift", "GuidedBackprop", "Deconvolution", "LRP"])
def test_any_ruled_function_followed_by_an_inplace_one(method):
    """A rule's output may be modified in place by the next ruled function (two in-place ReLUs; for DeepLift, whose
    rules cover Tanh, also Tanh then ReLU(inplace)): every rule hands out a tensor that owns its memory, and results
    equal the out-of-place model."""
    torch.manual_seed(0)
    acts = [nn.ReLU(inplace=True), nn.ReLU(inplace=True)]
    if method == "DeepLift":
        acts = [nn.Tanh()] + acts
    inplace = nn.Sequential(nn.Linear(4, 6), *acts, nn.Linear(6, 2))
    plain = copy.deepcopy(inplace)
    for i, layer in enumerate(plain):
        if isinstance(layer, nn.ReLU):
            plain[i] = nn.ReLU()
    x = torch.randn(3, 4)
    cls = getattr(pa, method)
    torch.testing.assert_close(cls(inplace).attribute(x, target=1), cls(plain).attribute(x, target=1))
