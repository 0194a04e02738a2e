"""LRP: conservation, hand-computed z+, rule identities (alpha1-beta0 = z+, LRP-0 = gradient x input),
canonizers (BatchNorm merge, residual sums), composites, LayerLRP, the model left unchanged, clear errors."""
import copy

import pytest
import torch
from conftest import SmallCNN, assert_same_state, model_state
from torch import nn

from pellucid.attr import InputXGradient
from pellucid.attr.lrp import (
    LRP, AlphaBeta, Composite, Epsilon, Flat, Gamma, LayerLRP, MergeBatchNorm, Pass, SplitAdditions, WSquare, ZBox,
    ZPlus, epsilon_alpha2_beta1, epsilon_composite, epsilon_gamma_box, epsilon_plus, epsilon_plus_flat,
)


def mlp(bias: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8, bias=bias), nn.ReLU(), nn.Linear(8, 5, bias=bias), nn.ReLU(),
                         nn.Linear(5, 3, bias=bias)).double().eval()


def cnn(bias: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(24, 3, bias=bias),
    ).double().eval()


def scores(model, x, target):
    with torch.no_grad():
        return model(x)[torch.arange(x.shape[0]), target]


@pytest.mark.parametrize("make,shape", [(mlp, (4, 6)), (cnn, (4, 3, 8, 8))])
def test_epsilon_conserves_relevance_without_bias(make, shape):
    model = make()
    x = torch.randn(*shape, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1])
    rel, delta = LRP(model, epsilon_composite(1e-9)).attribute(x, target=target, return_convergence_delta=True)
    f = scores(model, x, target)
    assert torch.allclose(rel.flatten(1).sum(1), f, atol=1e-7)
    assert torch.allclose(delta, f - rel.flatten(1).sum(1))  # Captum's sign: output minus relevance
    assert delta.abs().max() < 1e-7


def test_epsilon_with_bias_absorbs_the_bias_share():
    """f = W2 relu(W1 x + b1) + b2: the biases absorb b2_t and sum_j R_j * b1_j / z_j, nothing else."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double().eval()
    x = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 1, 0, 1, 1])
    _, delta = LRP(model, epsilon_composite(1e-12)).attribute(x, target=target, return_convergence_delta=True)
    w1, b1, w2, b2 = (p.detach() for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias))
    z = x @ w1.T + b1
    h = z.clamp(min=0)
    r_hidden = h * w2[target]  # relevance of the hidden units (the output's R = f, over z = f)
    absorbed = b2[target] + (r_hidden * torch.where(z > 0, b1 / z, torch.zeros_like(z))).sum(1)
    assert torch.allclose(delta, absorbed, atol=1e-9)  # f(x) - sum(R): what the biases absorbed
    assert absorbed.abs().min() > 1e-3  # the case is not vacuous


def test_zplus_hand_computed():
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [-2.0, 1.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[1.0, 2.0]]))
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    # hidden z = (5, 3), f = 11; output layer: R_h = (5, 6);
    # unit 0: x W+ = (1, 0, 6) / 7 of 5; unit 1: x W+ = (0, 2, 3) / 5 of 6
    expected = torch.tensor([[5 / 7, 12 / 5, 30 / 7 + 18 / 5]], dtype=torch.float64)
    got = LRP(model, Composite(default=ZPlus())).attribute(x, target=0)
    assert torch.allclose(got, expected)


def test_alpha1_beta0_equals_zplus_on_positive_inputs():
    for model, shape in ((mlp(), (4, 6)), (cnn(), (4, 3, 8, 8))):
        x = torch.rand(*shape, dtype=torch.float64)
        z = LRP(model, Composite(default=ZPlus())).attribute(x, target=1)
        ab = LRP(model, Composite(default=AlphaBeta(1.0, 0.0))).attribute(x, target=1)
        assert torch.allclose(z, ab, atol=1e-10)
        # on signed inputs they differ (alpha-beta also credits x- W-): the identity above is not vacuous
        xs = x - 0.5
        z = LRP(model, Composite(default=ZPlus())).attribute(xs, target=1)
        ab = LRP(model, Composite(default=AlphaBeta(1.0, 0.0))).attribute(xs, target=1)
        assert not torch.allclose(z, ab, atol=1e-6)


def test_epsilon_to_zero_equals_gradient_times_input():
    torch.manual_seed(0)
    model = SmallCNN().double().eval()  # biases, max pooling, a reused ReLU module and a functional ReLU
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    lrp = LRP(model, epsilon_composite(1e-12)).attribute(x, target=2)
    ixg = InputXGradient(model).attribute(x, target=2)
    assert torch.allclose(lrp, ixg, atol=1e-9)
    # a large epsilon departs from it
    assert not torch.allclose(LRP(model, epsilon_composite(1.0)).attribute(x, target=2), ixg, atol=1e-6)


def test_alpha2_beta1_and_other_rules_conserve_on_bias_free_cnn():
    model = cnn()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    f = scores(model, x, target)
    for comp in (epsilon_alpha2_beta1(1e-12), epsilon_plus(1e-12), epsilon_plus_flat(1e-12),
                 Composite(default=Gamma(0.5, 1e-12)), Composite(default=WSquare(), by_type=[(nn.Linear, Epsilon(1e-12))])):
        rel = LRP(model, comp).attribute(x, target=target)
        assert torch.allclose(rel.flatten(1).sum(1), f, atol=1e-6), comp


def test_flat_and_wsquare_formulas():
    model = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    f = scores(model, x, torch.tensor([1, 1]))
    w = model[0].weight.detach()[1]
    flat = LRP(model, Composite(default=Flat())).attribute(x, target=1)
    assert torch.allclose(flat, f[:, None].expand(2, 3) / 3)
    wsq = LRP(model, Composite(default=WSquare())).attribute(x, target=1)
    assert torch.allclose(wsq, f[:, None] * (w ** 2 / (w ** 2).sum()))


def test_zbox_formula():
    model = nn.Sequential(nn.Linear(3, 1, bias=False)).double()
    x = torch.rand(2, 3, dtype=torch.float64)
    low, high = -1.0, 2.0
    w = model[0].weight.detach()[0]
    zij = x * w - low * w.clamp(min=0) - high * w.clamp(max=0)
    f = scores(model, x, torch.tensor([0, 0]))
    expected = zij / zij.sum(1, keepdim=True) * f[:, None]
    got = LRP(model, Composite(default=ZBox(low, high))).attribute(x, target=0)
    assert torch.allclose(got, expected)


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3),
    ).double()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def merged_copy(model: nn.Module) -> nn.Module:
    """The BatchNorms folded by hand into a copy (the reference the canonizer must match)."""
    layers = list(copy.deepcopy(model).children())
    out = []
    for m in layers:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            prev = out[-1]
            a = m.weight / torch.sqrt(m.running_var + m.eps)
            with torch.no_grad():
                shape = (-1,) + (1,) * (prev.weight.dim() - 1)
                bias = prev.bias if prev.bias is not None else torch.zeros_like(m.bias)
                new_bias = (bias - m.running_mean) * a + m.bias
                prev.weight.mul_(a.reshape(shape))
                prev.bias = nn.Parameter(new_bias)
        else:
            out.append(m)
    return nn.Sequential(*out).eval()


def test_merge_batchnorm_keeps_outputs_and_restores_model():
    model = bn_model()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    before = model_state(model)
    with torch.no_grad():
        ref = model(x)
        with MergeBatchNorm().apply(model) as overrides:
            assert len(overrides) == 3
            merged = model(x)
    assert torch.allclose(merged, ref, atol=1e-10)
    assert_same_state(before, model_state(model))
    # LRP through the canonized model equals LRP on the model merged by hand
    target = torch.tensor([0, 1, 2, 0])
    got = LRP(model, epsilon_composite(1e-9)).attribute(x, target=target)
    expected = LRP(merged_copy(model), epsilon_composite(1e-9), canonizers=[]).attribute(x, target=target)
    assert torch.allclose(got, expected, atol=1e-9)
    assert_same_state(before, model_state(model))
    # without the canonizer BatchNorm keeps its gradient, which is a different attribution
    plain = LRP(model, epsilon_composite(1e-9), canonizers=[]).attribute(x, target=target)
    assert not torch.allclose(plain, got, atol=1e-6)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 16, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_merge_batchnorm_by_name_and_errors():
    torch.manual_seed(0)
    model = Block().double().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad(), MergeBatchNorm().apply(model) as overrides:
        assert overrides == {}  # not in a Sequential: nothing found automatically
    with torch.no_grad():
        ref = model(x)
        with MergeBatchNorm(pairs=[("conv", "bn")]).apply(model) as overrides:
            assert set(overrides) == {model.conv}
            assert torch.allclose(model(x), ref, atol=1e-10)
    before = model_state(model)
    with pytest.raises(ValueError, match="not a module"):
        LRP(model, canonizers=[MergeBatchNorm(pairs=[("conv", "nope")])]).attribute(x, target=0)
    with pytest.raises(ValueError, match="Linear/Conv, BatchNorm"):
        LRP(model, canonizers=[MergeBatchNorm(pairs=[("bn", "conv")])]).attribute(x, target=0)
    model.train()
    before = model_state(model)
    with pytest.raises(ValueError, match="eval"):
        LRP(model, canonizers=[MergeBatchNorm(pairs=[("conv", "bn")])]).attribute(x, target=0)
    assert_same_state(before, model_state(model))
    with pytest.raises(ValueError, match="eval"):
        LRP(model).attribute(x[:1], target=0)  # found by tracing: refused before the one-example forward
    assert_same_state(before, model_state(model))
    with pytest.raises(TypeError, match="pairs"):
        MergeBatchNorm(pairs=[("conv",)])


class Residual(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.inplace = inplace
        self.fc1 = nn.Linear(5, 6, bias=False)
        self.fc2 = nn.Linear(6, 6, bias=False)
        self.fc3 = nn.Linear(6, 2, bias=False)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        r = torch.relu(self.fc2(h))
        if self.inplace:
            s = h.clone()
            s += r
        else:
            s = h + r
        return self.fc3(s)


@pytest.mark.parametrize("inplace", [False, True])
def test_split_additions_conserve_relevance_in_residual_sums(inplace):
    torch.manual_seed(0)
    model = Residual(inplace).double().eval()
    x = torch.randn(4, 5, dtype=torch.float64)
    f = scores(model, x, torch.ones(4, dtype=torch.long))
    _, delta = LRP(model, epsilon_composite(1e-12), canonizers=[SplitAdditions()]).attribute(
        x, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-8 * f.abs().max().clamp(min=1)
    # the gradient copies the relevance of a sum to both branches: not conserved
    _, raw = LRP(model, epsilon_composite(1e-12), canonizers=[]).attribute(x, target=1, return_convergence_delta=True)
    assert raw.abs().max() > 1e-3


def test_composites_assign_by_type_name_and_first_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    got = epsilon_gamma_box(-1.0, 1.0, epsilon=0.1, gamma=0.5).assign(model)
    assert isinstance(got[model[0]], ZBox)
    assert got[model[2]] == Gamma(0.5)
    assert got[model[3]] == Epsilon(0.1)
    assert got[model[5]] == Epsilon(0.1) and got[model[7]] == Epsilon(0.1)
    assert model[1] not in got  # activations get no rule
    got = epsilon_plus().assign(model)
    assert got[model[0]] == ZPlus() and got[model[2]] == ZPlus() and got[model[5]] == Epsilon()
    got = epsilon_alpha2_beta1().assign(model)
    assert got[model[2]] == AlphaBeta(2.0, 1.0)
    comp = Composite(by_type=[(nn.Linear, Epsilon(0.2))], by_name={"7": Flat(), "2": Pass()}, default=ZPlus())
    got = comp.assign(model)
    assert got[model[7]] == Flat() and got[model[5]] == Epsilon(0.2) and got[model[2]] == Pass()
    assert got[model[0]] == ZPlus() and got[model[3]] == ZPlus()
    # a rule named for a layer changes that layer only: Flat on the last layer spreads its relevance evenly
    small = mlp()
    x = torch.randn(2, 6, dtype=torch.float64)
    layer = LayerLRP(small, small[4], Composite(by_name={"4": Flat()}, default=Epsilon(1e-12)))
    hidden = layer.attribute(x, target=0, attribute_to_layer_input=True)
    f = scores(small, x, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(hidden, f[:, None].expand(2, 5) / 5)


def test_layer_lrp_agrees_with_lrp():
    model = mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    comp = epsilon_composite(1e-12)
    # the first layer's input is the model's input
    first = LayerLRP(model, model[0], comp).attribute(x, target=2, attribute_to_layer_input=True)
    assert torch.allclose(first, LRP(model, comp).attribute(x, target=2), atol=1e-12)
    # relevance at a hidden layer's output = LRP of the rest of the network on that layer's activations
    hidden, delta = LayerLRP(model, model[2], comp).attribute(x, target=2, return_convergence_delta=True)
    with torch.no_grad():
        h = model[:3](x)
    tail = LRP(model[3:], comp).attribute(h.clone(), target=2)
    assert hidden.shape == (3, 5)
    assert torch.allclose(hidden, tail, atol=1e-10)
    assert delta.abs().max() < 1e-9


def test_chunking_invariance_and_targets():
    model = cnn(bias=True)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0, 1])
    ref = LRP(model, epsilon_plus()).attribute(x, target=target)
    for bs in (1, 2):
        assert torch.allclose(LRP(model, epsilon_plus()).attribute(x, target=target, batch_size=bs), ref, atol=1e-12)
    one = LRP(model, epsilon_plus()).attribute(x[1:2], target=1)
    assert torch.allclose(one, ref[1:2], atol=1e-12)
    layer = LayerLRP(model, model[3], epsilon_plus())
    lref = layer.attribute(x, target=target)
    assert torch.allclose(layer.attribute(x, target=target, batch_size=2), lref, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda m: LRP(m, epsilon_gamma_box(-3.0, 3.0)),
    lambda m: LRP(m, epsilon_alpha2_beta1()),
    lambda m: LayerLRP(m, m.conv2, epsilon_plus()),
])
def test_model_unchanged_after_success_and_error(make):
    torch.manual_seed(0)
    model = SmallCNN().train()
    model.fc1.weight.requires_grad_(False)
    x = torch.randn(2, 3, 32, 32)
    before = model_state(model)
    make(model).attribute(x, target=1)
    assert_same_state(before, model_state(model))
    bad = LRP(model, Composite(first_layer=ZBox(torch.zeros(7), 1.0), default=Epsilon()))
    with pytest.raises(RuntimeError):
        bad.attribute(x, target=1)  # the bound cannot broadcast: fails inside the backward pass
    assert_same_state(before, model_state(model))


def test_errors():
    model = mlp()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        LRP(lambda x: x)
    with pytest.raises(TypeError, match="composite"):
        LRP(model, composite="epsilon")
    with pytest.raises(TypeError, match="canonizers"):
        LRP(model, canonizers=["bn"])
    with pytest.raises(ValueError, match="not a module"):
        LRP(model, Composite(by_name={"9": Epsilon()})).attribute(torch.randn(1, 6, dtype=torch.float64), target=0)
    with pytest.raises(ValueError, match="rules apply"):
        LRP(model, Composite(by_name={"1": Epsilon()})).attribute(torch.randn(1, 6, dtype=torch.float64), target=0)
    with pytest.raises(TypeError, match="LRP rule"):
        Composite(default="eps")
    with pytest.raises(TypeError, match="by_type"):
        Composite(by_type=[(int, Epsilon())])
    with pytest.raises(ValueError, match="alpha"):
        AlphaBeta(-1.0, 0.0)
    with pytest.raises(ValueError, match="not a submodule"):
        LayerLRP(model, nn.Linear(2, 2))


def test_rules_are_data_a_custom_rule_runs_through_the_same_function():
    """A user rule built from parts (here LRP-epsilon spelled with its own modifiers, which takes the general
    path rather than the shortcut through the layer's own output) gives Epsilon's relevance."""
    from dataclasses import dataclass

    from pellucid.attr.lrp import Part, Rule, Term

    @dataclass(frozen=True)
    class MyEpsilon(Rule):
        epsilon: float = 1e-6

        @property
        def terms(self):
            return (Term((Part(inputs=lambda t: t * 1.0, weight=lambda w: w + 0.0, bias=lambda b: b + 0.0),)),)

    model = cnn(bias=True)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    ref = LRP(model, Composite(default=Epsilon(1e-6))).attribute(x, target=1)
    got = LRP(model, Composite(default=MyEpsilon(1e-6))).attribute(x, target=1)
    assert torch.allclose(got, ref, atol=1e-12)


class Offset(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, offset, *, shift=0.0):
        return self.net(x) + offset.reshape(-1, 1) + shift


def test_extra_forward_arguments():
    """A constant added to the output passes the relevance R = f(x) unchanged to the network, whose layers then
    redistribute it in the proportions of R = g(x): relevance = LRP_g * f / g, example by example."""
    net = mlp()
    model = Offset(net)
    x = torch.randn(4, 6, dtype=torch.float64)
    offset = torch.tensor([0.5, -0.25, 1.0, 2.0], dtype=torch.float64)
    g = scores(net, x, torch.zeros(4, dtype=torch.long))
    f = g + offset + 0.125
    comp = epsilon_composite(1e-12)
    base = LRP(net, comp).attribute(x, target=0)
    got, delta = LRP(model, comp).attribute(x, target=0, additional_forward_args=(offset,), batch_size=3,
                                            forward_kwargs={"shift": 0.125}, return_convergence_delta=True)
    assert torch.allclose(got, base * (f / g)[:, None], atol=1e-9)
    assert delta.abs().max() < 1e-9


class TwoUses(nn.Module):
    """conv -> bn, and the conv's output also feeds a second branch: folding the BatchNorm would change it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 16, 2)

    def forward(self, x):
        y = self.conv(x)
        h = torch.relu(self.bn(y)) + y + torch.relu(self.bn2(self.conv2(x)))
        return self.fc(h.flatten(1))


def test_merge_batchnorm_found_by_tracing():
    from pellucid.attr.lrp.canonizers import trace_batchnorm_pairs

    torch.manual_seed(0)
    block = Block().double().eval()
    with torch.no_grad():
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.weight.uniform_(-2, 2)
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    assert trace_batchnorm_pairs(block, lambda: block(x[:1])) == [(block.conv, block.bn)]
    two = TwoUses().double().eval()
    assert trace_batchnorm_pairs(two, lambda: two(x[:1])) == [(two.conv2, two.bn2)]
    # LRP traces by default: the same relevance as naming the pair
    comp = epsilon_composite(1e-9)
    auto = LRP(block, comp).attribute(x, target=1)
    named = LRP(block, comp, canonizers=[MergeBatchNorm(pairs=[("conv", "bn")]), SplitAdditions()]).attribute(x, target=1)
    none = LRP(block, comp, canonizers=[]).attribute(x, target=1)
    assert torch.allclose(auto, named, atol=1e-12)
    assert not torch.allclose(auto, none, atol=1e-6)
