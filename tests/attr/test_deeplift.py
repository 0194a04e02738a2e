"""DeepLIFT (rescale rule) and DeepLiftShap: closed forms, hand-computed multipliers, summation-to-delta."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SmallCNN, assert_same_state, model_state
from pellucid.attr import DeepLift, DeepLiftShap, IntegratedGradients


@pytest.fixture
def cnn():
    """The shared SmallCNN (reused nn.ReLU, functional relu, max pooling) at 16x16 to keep the suite fast."""
    torch.manual_seed(0)
    return SmallCNN(size=16).eval()

TOL = 1e-5


def rel_delta(model, x, b, target=None, **kw):
    attr, delta = DeepLift(model).attribute(x, b, target=target, return_convergence_delta=True, **kw)
    def pick(o):
        return o if target is None else o[torch.arange(len(x)), target]

    out, out0 = pick(model(x)), pick(model(b.expand_as(x)))
    scale = (out - out0).reshape(len(x), -1).abs().sum(1).clamp(min=1)
    # the delta reported must be the real completeness gap
    gap = attr.reshape(len(x), -1).sum(1) - (out - out0).reshape(len(x), -1).sum(1)
    assert torch.allclose(delta, gap, atol=1e-5)
    return (delta.abs() / scale).max().item()


def test_linear_model_closed_form(linear):
    x, b = torch.randn(5, 6), torch.randn(5, 6)
    for t in range(3):
        w = linear.fc.weight[t].detach()
        assert torch.allclose(DeepLift(linear).attribute(x, b, target=t), (x - b) * w, atol=1e-6)
        assert torch.allclose(DeepLift(linear, multiply_by_inputs=False).attribute(x, b, target=t),
                              w.expand(5, 6), atol=1e-6)


# ---- tiny nets with hand-computed rescale multipliers ------------------------------------------------------------
W1 = torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 1.0]])
B1 = torch.tensor([0.5, -0.5, 0.0])
W2 = torch.tensor([[1.0, 1.0, -1.0], [2.0, -1.0, 0.5], [0.3, 0.2, 1.0]])
W3 = torch.tensor([[1.5, -1.0, 2.0]])


def hand_rescale(x, x0, act=torch.relu):
    """DeepLIFT rescale of act(W2 act(W1 x + B1)) -> W3 written out with explicit multipliers."""
    h, h0 = x @ W1.T + B1, x0 @ W1.T + B1
    m1 = (act(h) - act(h0)) / (h - h0)
    z, z0 = act(h) @ W2.T, act(h0) @ W2.T
    m2 = (act(z) - act(z0)) / (z - z0)
    # chain: d out / d x = W3 diag(m2) W2 diag(m1) W1
    g = torch.einsum("k,nk,kj,nj,ji->ni", W3[0], m2, W2, m1, W1)
    assert torch.isfinite(g).all()  # the test data avoid zero differences
    return g * (x - x0)


def set_weights(l1, l2, l3):
    with torch.no_grad():
        l1.weight.copy_(W1)
        l1.bias.copy_(B1)
        l2.weight.copy_(W2)
        l3.weight.copy_(W3)


class ModuleNet(nn.Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(2, 3), nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False)
        self.a1, self.a2 = nn.ReLU(inplace=inplace), nn.ReLU(inplace=inplace)
        set_weights(self.l1, self.l2, self.l3)

    def forward(self, x):
        return self.l3(self.a2(self.l2(self.a1(self.l1(x)))))


class ReusedNet(ModuleNet):
    def forward(self, x):
        return self.l3(self.a1(self.l2(self.a1(self.l1(x)))))


class FunctionalNet(ModuleNet):
    def __init__(self, style):
        super().__init__()
        self.style = style

    def forward(self, x):
        h = self.l1(x)
        if self.style == "F.relu":
            h = F.relu(self.l2(F.relu(h)))
        elif self.style == "torch.relu":
            h = torch.relu(self.l2(torch.relu(h)))
        elif self.style == "method":
            h = self.l2(h.relu()).relu()
        elif self.style == "relu_":
            h = self.l2(h.relu_()).relu_()
        elif self.style == "F.relu_inplace":
            h = F.relu(self.l2(F.relu(h, inplace=True)), inplace=True)
        return self.l3(h)


TINY_X = torch.tensor([[1.0, 0.6], [-0.7, 1.2], [2.0, -1.0], [0.3, 0.3]])
TINY_B = torch.tensor([[-0.5, 1.0]])


@pytest.mark.parametrize("model", [
    ModuleNet(), ModuleNet(inplace=True), ReusedNet(), ReusedNet(inplace=True),
    FunctionalNet("F.relu"), FunctionalNet("torch.relu"), FunctionalNet("method"), FunctionalNet("relu_"),
    FunctionalNet("F.relu_inplace"),
], ids=["modules", "inplace-modules", "reused", "reused-inplace", "F.relu", "torch.relu", "x.relu()", "x.relu_()",
        "F.relu(inplace)"])
def test_tiny_relu_net_matches_hand_computed_rescale(model):
    expected = hand_rescale(TINY_X, TINY_B)
    # the hand computation is not simply the gradient times the difference (rescale differs there)
    assert not torch.allclose(expected, IntegratedGradients(model).attribute(TINY_X, TINY_B, n_steps=1,
                                                                             method="riemann_right"), atol=1e-3)
    before = model_state(model)
    attr, delta = DeepLift(model).attribute(TINY_X, TINY_B, return_convergence_delta=True)
    assert torch.allclose(attr, expected, atol=1e-5)
    assert delta.abs().max() < 1e-5
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("act,module", [(torch.sigmoid, nn.Sigmoid()), (torch.tanh, nn.Tanh()),
                                        (F.softplus, nn.Softplus()), (F.elu, nn.ELU()),
                                        (lambda t: F.leaky_relu(t, 0.1), nn.LeakyReLU(0.1))])
def test_tiny_smooth_net_matches_hand_computed_rescale(act, module):
    net = ModuleNet()
    net.a1 = net.a2 = module  # one module used twice
    attr = DeepLift(net).attribute(TINY_X, TINY_B)
    assert torch.allclose(attr, hand_rescale(TINY_X, TINY_B, act), atol=1e-5)


def test_maxpool_rule_by_hand():
    pool = nn.Sequential(nn.MaxPool1d(2))
    x = torch.tensor([[[3.0, 1.0, 1.0, 0.0]]])
    b = torch.tensor([[[0.0, 2.0, 0.0, 3.0]]])
    attr = DeepLift(lambda t: pool(t).sum((1, 2))).attribute(x, b)
    # window 1: y=3 > y0=2: the change +1 goes to x's winner (index 0);
    # window 2: y=1 < y0=3: the change -2 goes to the baseline's winner (index 3)
    assert torch.allclose(attr, torch.tensor([[[1.0, 0.0, 0.0, -2.0]]]))


# ---- summation-to-delta on nonlinear networks ----------------------------------------------------------------
class Pooled(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.pool = pool
        self.lin = nn.LazyLinear(3)

    def forward(self, x):
        return self.lin(torch.relu(self.pool(x)).flatten(1))


class MaxDim(nn.Module):
    def __init__(self, keepdim):
        super().__init__()
        self.l1, self.l2 = nn.Linear(6, 12), nn.Linear(4, 3)
        self.keepdim = keepdim

    def forward(self, x):
        h = self.l1(x).reshape(-1, 4, 3)
        if self.keepdim:
            v = torch.max(h, dim=2, keepdim=True).values.squeeze(2)
        else:
            v = h.max(2)[0] - torch.min(h, 2).values
        return self.l2(v)


class ResBlock(nn.Module):
    """torchvision-style basic block: in-place ReLU reused, in-place residual add, BatchNorm in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(2 * 4 * 4, 3)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        out = self.relu(out)
        return self.head(F.max_pool2d(out, 2).flatten(1))


def act_stack(*acts):
    layers = [nn.Linear(6, 8)]
    for a in acts:
        layers += [a, nn.Linear(8, 8)]
    return nn.Sequential(*layers, nn.Linear(8, 3))


CASES = {
    "maxpool1d-overlap": (lambda: Pooled(nn.MaxPool1d(3, stride=1)), (3, 2, 10)),
    "maxpool2d-overlap-pad": (lambda: Pooled(nn.MaxPool2d(3, stride=2, padding=1)), (3, 2, 7, 7)),
    "maxpool3d-overlap": (lambda: Pooled(nn.MaxPool3d(2, stride=1)), (3, 2, 4, 4, 4)),
    "adaptive-max2d": (lambda: Pooled(nn.AdaptiveMaxPool2d(3)), (3, 2, 7, 5)),
    "adaptive-max1d": (lambda: Pooled(nn.AdaptiveMaxPool1d(4)), (3, 2, 9)),
    "maxpool-ceil-dilation": (lambda: Pooled(nn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True)), (3, 2, 9, 9)),
    "torch.max(dim) keepdim": (lambda: MaxDim(True), (3, 6)),
    "max - min": (lambda: MaxDim(False), (3, 6)),
    "elu-leaky-sigmoid": (lambda: act_stack(nn.ELU(), nn.LeakyReLU(0.2), nn.Sigmoid()), (3, 6)),
    "tanh-softplus": (lambda: act_stack(nn.Tanh(), nn.Softplus()), (3, 6)),
    "softmax": (lambda: act_stack(nn.Softmax(dim=1)), (3, 6)),
    "relu-reused-inplace": (lambda: act_stack(*([nn.ReLU(inplace=True)] * 3)), (3, 6)),
    "resnet-block": (lambda: ResBlock(), (3, 2, 8, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_summation_to_delta(case):
    torch.manual_seed(1)
    make, shape = CASES[case]
    model = make().eval()
    x, b = torch.randn(shape), torch.randn((1,) + shape[1:])
    model(x)  # initialise lazy layers
    for t in range(3):
        assert rel_delta(model, x, b, target=t) < TOL


def test_summation_to_delta_cnn(cnn):
    x = torch.randn(4, 3, 16, 16)
    b = torch.randn(4, 3, 16, 16) * 0.1
    assert rel_delta(cnn, x, b, target=[0, 3, 5, 9]) < TOL


def test_summation_not_trivial_without_rules(cnn):
    """Plain gradient x difference does not sum to delta on the CNN: the rules matter."""
    x, b = torch.randn(2, 3, 16, 16), torch.zeros(1, 3, 16, 16)
    g = IntegratedGradients(cnn).attribute(x, b, target=1, n_steps=1, method="riemann_right")
    gap = g.sum((1, 2, 3)) - (cnn(x)[:, 1] - cnn(b)[:, 1])
    assert gap.abs().max() > 1e-3


def test_input_equal_to_baseline_gives_finite_gradient_fallback(cnn):
    x = torch.randn(2, 3, 16, 16)
    b = x.clone()
    b[:, 0] = 0
    attr, delta = DeepLift(cnn).attribute(x, b, target=2, return_convergence_delta=True)
    assert torch.isfinite(attr).all()
    assert torch.equal(attr[:, 1:], torch.zeros_like(attr[:, 1:]))
    assert delta.abs().max() < 1e-4


# ---- unsupported operations ------------------------------------------------------------------------------------
class Amax(nn.Module):
    def forward(self, x):
        return torch.amax(torch.relu(x).reshape(len(x), 2, -1), dim=2)


class DataDependent(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        if self.mode == "count":
            return (torch.relu(torch.relu(x)) if bool(x.sum() > 0) else torch.relu(x)).sum(1)
        return (torch.sigmoid(x) if bool(x.sum() > 0) else torch.tanh(x)).sum(1, keepdim=True)


@pytest.mark.parametrize("model,msg", [
    (Amax(), "no rule for torch.amax"),
    (lambda x: torch.maximum(torch.relu(x), -x), "no rule for torch.maximum"),
    (lambda x: torch.max(torch.relu(x)).expand(len(x)), "without dim"),
    (lambda x: torch.max(x, x.flip(1)).sum(1), "elementwise torch.max"),
    (DataDependent("count"), "control flow depends on the data|cannot be paired"),
    (DataDependent("order"), "control flow depends on the data|cannot be paired"),
])
def test_unsupported_raise_clear_errors(model, msg):
    x = torch.rand(3, 4) + 0.1
    with pytest.raises((ValueError, RuntimeError), match=msg):
        DeepLift(model).attribute(x, torch.zeros(1, 4), target=None if not isinstance(model, Amax) else 0)
    assert torch._C._len_torch_function_stack() == 0


# ---- options --------------------------------------------------------------------------------------------------
def test_custom_attribution_func_and_errors(cnn):
    x, b = torch.randn(2, 3, 16, 16), torch.zeros(1, 3, 16, 16)
    mults = DeepLift(cnn, multiply_by_inputs=False).attribute(x, b, target=0)
    got = DeepLift(cnn).attribute(x, b, target=0, custom_attribution_func=lambda m, i, bb: (m[0] * i[0] ** 2,))
    assert torch.allclose(got, mults * x**2, atol=1e-6)
    with pytest.raises(ValueError, match="custom_attribution_func must return one tensor per input"):
        DeepLift(cnn).attribute(x, b, target=0, custom_attribution_func=lambda m, i, bb: (m[0][:, :1],))
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        DeepLift(cnn, eps=-1)


# ---- DeepLiftShap ---------------------------------------------------------------------------------------------
def test_deepliftshap_is_mean_of_deeplift(cnn):
    torch.manual_seed(3)
    x, dist = torch.randn(3, 3, 16, 16), torch.randn(4, 3, 16, 16) * 0.5
    shap, delta = DeepLiftShap(cnn).attribute(x, dist, target=[1, 2, 3], return_convergence_delta=True)
    per = [DeepLift(cnn).attribute(x, dist[s:s + 1], target=[1, 2, 3]) for s in range(4)]
    assert torch.allclose(shap, torch.stack(per).mean(0), atol=1e-5)
    expected_gap = shap.sum((1, 2, 3)) - (cnn(x)[:, [1, 2, 3]].diagonal() - cnn(dist)[:, [1, 2, 3]].mean(0))
    assert torch.allclose(delta, expected_gap, atol=1e-4)
    assert delta.abs().max() < 1e-4


def test_deepliftshap_linear_closed_form(linear):
    x, dist = torch.randn(4, 6), torch.randn(10, 6)
    w = linear.fc.weight[1].detach()
    assert torch.allclose(DeepLiftShap(linear).attribute(x, dist, target=1), (x - dist.mean(0)) * w, atol=1e-5)


def test_deepliftshap_bad_distribution(linear):
    with pytest.raises(ValueError, match="baselines\\[0\\] has shape \\(10, 5\\)"):
        DeepLiftShap(linear).attribute(torch.randn(4, 6), torch.randn(10, 5), target=0)


class ModuleCNN(nn.Module):
    """SmallCNN written with a separate module for every activation and pool (no reuse, no functional calls)."""

    def __init__(self, src):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2 = src.conv1, src.conv2, src.fc1, src.fc2
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.p1, self.p2 = nn.MaxPool2d(2), nn.MaxPool2d(2)

    def forward(self, x):
        x = self.p1(self.r1(self.conv1(x)))
        x = self.p2(self.r2(self.conv2(x)))
        return self.fc2(self.r3(self.fc1(x.flatten(1))))


def test_reused_and_functional_cnn_equals_module_cnn():
    torch.manual_seed(0)
    small = SmallCNN(size=16).eval()
    modules = ModuleCNN(small).eval()
    x, b = torch.randn(3, 3, 16, 16), torch.randn(1, 3, 16, 16) * 0.3
    assert torch.allclose(small(x), modules(x))
    a_small = DeepLift(small).attribute(x, b, target=[0, 5, 9])
    a_mod = DeepLift(modules).attribute(x, b, target=[0, 5, 9])
    assert torch.allclose(a_small, a_mod, atol=1e-6)
    shap_small = DeepLiftShap(small).attribute(x, torch.randn(3, 3, 16, 16), target=2)
    assert shap_small.shape == x.shape
