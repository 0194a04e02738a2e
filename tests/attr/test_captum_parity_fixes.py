"""Regression tests for silent differences from Captum 0.9 found by the parity sweep (issue 9).

Each test proves the corrected behaviour from first principles (efficiency, closed forms, agreement between forms
of the same call); none imports Captum.
"""
import pytest
import torch
from torch import nn

from pellucid.attr import FeatureAblation, KernelShap, Lime, Occlusion, ShapleyValues, ShapleyValueSampling


class Additive(nn.Module):
    """``F(x) = x @ w + 0.5 * x_0 * x_1`` returned with the output dims ``out_shape`` after the batch."""

    def __init__(self, out_shape: tuple):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64))
        self.out_shape = out_shape

    def forward(self, x):
        y = x @ self.w + 0.5 * x[:, 0] * x[:, 1]
        return y.reshape((x.shape[0],) + self.out_shape)


def _x():
    return torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.3, -0.7, 2.0, 1.0], [-1.5, 0.2, 0.4, -2.0]], dtype=torch.float64)


def _exact_shapley(x):
    """Closed form: linear terms get ``w_i x_i``; the product ``0.5 x_0 x_1`` (zero baseline) is split evenly."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    phi = x * w
    inter = 0.5 * x[:, 0] * x[:, 1]
    phi[:, 0] += inter / 2
    phi[:, 1] += inter / 2
    return phi


@pytest.mark.parametrize("method", [ShapleyValues, ShapleyValueSampling])
@pytest.mark.parametrize("out_shape", [(), (1,), (1, 1)])
def test_shapley_with_target_none_keeps_the_output_dims(method, out_shape):
    """Captum's Shapley methods return ``(*output.shape, *input.shape[1:])`` with ``target=None``, so an ``(N, 1)``
    output gives ``(N, 1, F)`` (pellucid used to drop the 1). Values: the closed-form Shapley values, which sum to
    ``F(x) - F(0)`` (efficiency)."""
    x = _x()
    model = Additive(out_shape)
    kw = {"n_samples": 6, "seed": 0} if method is ShapleyValueSampling else {}
    attr = method(model).attribute(x, **kw)
    assert attr.shape == (3,) + out_shape + (4,)
    flat = attr.reshape(3, 4)
    torch.testing.assert_close(flat, _exact_shapley(x))
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).reshape(3)
    torch.testing.assert_close(flat.sum(1), gap)
    # an explicit target selects one output: the dims go, the values stay
    if out_shape:
        target = 0 if len(out_shape) == 1 else (0, 0)
        torch.testing.assert_close(method(model).attribute(x, target=target, **kw), flat)


@pytest.mark.parametrize("method", [FeatureAblation, Occlusion, Lime, KernelShap])
def test_other_perturbation_methods_drop_an_output_of_one_value(method):
    """Captum's FeatureAblation, Occlusion, Lime and KernelShap return the input's shape for an ``(N, 1)`` output;
    FeatureAblation's values are the closed-form occlusion differences ``F(x) - F(x with x_i = 0)``."""
    x = _x()
    model = Additive((1,))
    kw = {"sliding_window_shapes": (1,)} if method is Occlusion else {}
    if method in (Lime, KernelShap):
        kw = {"n_samples": 40, "seed": 0}
    attr = method(model).attribute(x, **kw)
    assert attr.shape == x.shape
    if method in (FeatureAblation, Occlusion):
        with torch.no_grad():
            fx = model(x)[:, 0]
            expected = torch.stack([fx - model(x * (torch.arange(4) != i))[:, 0] for i in range(4)], dim=1)
        torch.testing.assert_close(attr, expected)


# -- custom_attribution_func takes 1, 2 or 3 arguments (Captum dispatches on its signature) ----------------------
class Linear2(nn.Module):
    """``F(x) = relu(x @ A) @ v`` with a positive path: DeepLIFT multipliers of the ReLU are 1 where both the input
    and the reference are active, so on positive data the model is linear with gradient ``A @ v``."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4, bias=False)
        self.relu = nn.ReLU()
        self.out = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1], [0.2, 0.2, 1.0], [0.5, 0.1, 0.4]]))
            self.out.weight.copy_(torch.tensor([[1.0, -0.5, 2.0, 0.7]]))
        self.double()

    def forward(self, x):
        return self.out(self.relu(self.lin(x)))


def _grad(model):
    return (model.lin.weight.t() @ model.out.weight.t()).t()  # (1, 3)


@pytest.mark.parametrize("arity", [1, 2, 3])
def test_custom_attribution_func_by_arity(arity):
    """``f(multipliers)``, ``f(multipliers, inputs)`` and ``f(multipliers, inputs, baselines)`` are all called with
    the arguments they take (pellucid used to pass three, so Captum's one- and two-argument forms raised)."""
    from pellucid.attr import DeepLift, LayerDeepLift, NeuronDeepLift
    model = Linear2()
    x = torch.tensor([[1.0, 2.0, 0.5], [0.2, 0.4, 3.0]], dtype=torch.float64)
    b = torch.full_like(x, 0.1)
    funcs = {1: lambda m: tuple(2 * t for t in m),
             2: lambda m, inp: tuple(t * i for t, i in zip(m, inp)),
             3: lambda m, inp, base: tuple(t * (i - r) for t, i, r in zip(m, inp, base))}
    g = _grad(model).expand_as(x)
    expected = {1: 2 * g, 2: g * x, 3: g * (x - b)}[arity]
    torch.testing.assert_close(DeepLift(model).attribute(x, b, custom_attribution_func=funcs[arity]), expected)
    # the layer and neuron variants hand the same forms over (activations of the first Linear: gradient v)
    a_x, a_b = model.lin(x).detach(), model.lin(b).detach()
    v = model.out.weight.detach().expand_as(a_x)
    layer_expected = {1: 2 * v, 2: v * a_x, 3: v * (a_x - a_b)}[arity]
    torch.testing.assert_close(
        LayerDeepLift(model, model.lin).attribute(x, b, custom_attribution_func=funcs[arity]), layer_expected)
    w0 = model.lin.weight[0].detach().expand_as(x)  # neuron 0 of the first Linear: multipliers are its weights
    neuron_expected = {1: 2 * w0, 2: w0 * x, 3: w0 * (x - b)}[arity]
    torch.testing.assert_close(
        NeuronDeepLift(model, model.lin).attribute(x, 0, b, custom_attribution_func=funcs[arity]), neuron_expected)


def test_custom_attribution_func_with_a_wrong_signature_raises():
    from pellucid.attr import DeepLift
    x = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="custom_attribution_func"):
        DeepLift(Linear2()).attribute(x, custom_attribution_func=lambda: None)
    with pytest.raises(TypeError, match="custom_attribution_func"):
        DeepLift(Linear2()).attribute(x, custom_attribution_func=lambda a, b, c, d: None)


# -- GradientShap draws one background sample for all inputs --------------------------------------------------
class Product(nn.Module):
    def forward(self, a, b):
        return (a * b).sum(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_shap_pairs_the_baselines_of_several_inputs(seed):
    """The background rows are samples of the joint input: GradientSHAP (Lundberg & Lee, 2017) draws one row index
    per sample for all inputs. For ``F(a, b) = a b`` at ``(1, 1)`` with background pairs ``(0, 1)`` and ``(1, 0)``
    every path has a constant gradient, so each sample attributes exactly ``(1, 0)`` or ``(0, 1)``: the sum is
    ``F(x) - F(b) = 1`` whatever the draws. Independent draws per input (Captum's) also pair ``(0, 0)`` and
    ``(1, 1)`` and break this."""
    from pellucid.attr import GradientShap
    x = (torch.ones(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64))
    bases = (torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[1.0], [0.0]], dtype=torch.float64))
    a, b = GradientShap(Product()).attribute(x, bases, n_samples=7, seed=seed)
    torch.testing.assert_close(a + b, torch.ones_like(a))
    torch.testing.assert_close(a * 7, (a * 7).round())  # an average of 7 draws of 0 or 1


def test_noise_tunnel_draws_paired_baselines_from_the_distribution():
    """``draw_baseline_from_distrib=True``: one background row per noisy sample for all inputs (as above), so IG on
    ``F(a, b) = a b`` from the pairs ``(0, 1)`` / ``(1, 0)`` sums to exactly 1 per example."""
    from pellucid.attr import IntegratedGradients, NoiseTunnel
    x = (torch.ones(3, 1, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64))
    bases = (torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[1.0], [0.0]], dtype=torch.float64))
    a, b = NoiseTunnel(IntegratedGradients(Product())).attribute(
        x, nt_samples=6, stdevs=0.0, baselines=bases, draw_baseline_from_distrib=True, seed=0)
    torch.testing.assert_close(a + b, torch.ones_like(a))


# -- DeepLift max pooling where the reference wins a window -------------------------------------------------------
class PoolHead(nn.Module):
    def __init__(self, relu: bool):
        super().__init__()
        self.act = nn.ReLU() if relu else nn.Identity()
        self.pool = nn.MaxPool2d((1, 2))

    def forward(self, x):
        return 2.0 * self.pool(self.act(x)).flatten(1)


@pytest.mark.parametrize("relu", [False, True])
def test_deeplift_max_pool_reference_winner_is_unchanged_by_an_identity_relu(relu):
    """Window ``x = (0.1, 0.3)``, reference ``(0.5, 0.5)``: the reference has the larger maximum, so the winner rule
    sends ``2 (max x - max x') = -0.4`` to the reference's winner (the first of the tie), divided by that
    position's ``x - x'`` and multiplied back: attributions ``(-0.4, 0)``. A ReLU on positive values is the
    identity and must not change this (Captum's module hooks route the window to the input's winner once a ReLU
    module precedes the pool: ``(0, -0.4)``)."""
    from pellucid.attr import DeepLift
    x = torch.tensor([[[[0.1, 0.3]]]], dtype=torch.float64)
    b = torch.tensor([[[[0.5, 0.5]]]], dtype=torch.float64)
    attr, delta = DeepLift(PoolHead(relu)).attribute(x, b, target=0, return_convergence_delta=True)
    torch.testing.assert_close(attr.flatten(), torch.tensor([-0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(delta, torch.zeros(1, dtype=torch.float64))


# -- Lime / KernelShap coefficients are indexed by the user's feature ids ----------------------------------------
@pytest.mark.parametrize("method", [KernelShap, Lime])
def test_interpretable_coefficients_are_indexed_by_feature_id(method):
    """``return_input_shape=False`` returns one coefficient per feature id, column ``j`` for id ``j`` (Captum's
    layout), so ids that skip numbers keep their place: ids ``{0, 2, 5}`` give 6 columns, the unused ids 0. On an
    additive model (no interactions) with a zero baseline the coefficient of a group is exactly its contribution
    ``sum_{i in group} w_i x_i`` for KernelSHAP (Lundberg & Lee, 2017) and for LIME with a linear surrogate."""
    x = _x()
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    model = lambda t: t @ w  # noqa: E731
    mask = torch.tensor([[0, 0, 2, 5]])
    coef = method(model).attribute(x, feature_mask=mask, return_input_shape=False, n_samples=200, seed=0)
    assert coef.shape == (3, 6)
    contrib = x * w
    expected = torch.zeros(3, 6, dtype=torch.float64)
    expected[:, 0], expected[:, 2], expected[:, 5] = contrib[:, :2].sum(1), contrib[:, 2], contrib[:, 3]
    torch.testing.assert_close(coef, expected)
    spread = method(model).attribute(x, feature_mask=mask, n_samples=200, seed=0)
    torch.testing.assert_close(spread, coef[:, mask[0]])
