"""Captum's aggregate output mode and attribute_future for the perturbation methods (issue 9, part B).

A model whose output summarises the whole batch (a loss, an accuracy, ``(K,)`` without a batch dim) is attributed
by perturbing all examples at once. Closed forms: for ``F(X) = sum_e w . (x_e - c)`` (a sum of a linear function
over the batch) every method's attribution of a feature group is ``sum_e sum_{d in g} w_d (x_ed - b_ed)``; a model
that is additive in the features of every example is unchanged by permuting a feature across the batch.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import (FeatureAblation, FeaturePermutation, IntegratedGradients, KernelShap, LayerFeatureAblation,
                           Lime, LinearRegression, Occlusion, ShapleyValueSampling, ShapleyValues)


class BatchLinear(nn.Module):
    """``F(X) = sum_e (w . x_e)``: a scalar for the whole batch (``keep``: shape (1, 1); ``both``: (2,), with the
    second output ``sum_e (v . x_e)``)."""

    def __init__(self, d: int, shape: str = "scalar"):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w = nn.Parameter(torch.randn(d, generator=g))
        self.register_buffer("v", torch.randn(d, generator=g))
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x @ self.w).sum()
        if self.shape == "keep":
            return s.reshape(1, 1)
        if self.shape == "both":
            return torch.stack([s, (x @ self.v).sum()])
        return s


def group_sums(per_feature: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(D,)`` -> each feature gets the sum over its group."""
    return torch.stack([per_feature[mask == mask[i]].sum() for i in range(mask.numel())])


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x, b = torch.randn(5, 4, generator=g), torch.randn(1, 4, generator=g)
    mask = torch.tensor([[0, 1, 1, 2]])
    return x, b, mask


def run(method: str, model, x, b, mask, **kw):
    if method == "Occlusion":  # windows of one feature on a mask-free input: the ablation of each feature
        return Occlusion(model).attribute(x, (1,), baselines=b, **kw)
    if method == "Lime":  # uniform weights and least squares recover the exact linear coefficients
        ones = lambda o, p, z: torch.ones(z.shape[0], dtype=torch.float64)  # noqa: E731
        return Lime(model, LinearRegression(), similarity_func=ones).attribute(
            x, b, feature_mask=mask, n_samples=40, seed=0, **kw)
    cls = {"FeatureAblation": FeatureAblation, "ShapleyValues": ShapleyValues, "KernelShap": KernelShap,
           "ShapleyValueSampling": ShapleyValueSampling}[method]
    extra = {"n_samples": 3, "seed": 0} if method in ("ShapleyValueSampling", "KernelShap") else {}
    return cls(model).attribute(x, b, feature_mask=mask, **extra, **kw)


METHODS = ["FeatureAblation", "ShapleyValues", "ShapleyValueSampling", "KernelShap", "Lime", "Occlusion"]


@pytest.mark.parametrize("method", METHODS)
def test_sum_of_linear_over_the_batch_closed_form(method, data):
    x, b, mask = data
    model = BatchLinear(4)
    before = model_state(model)
    a = run(method, model, x, b, mask)
    per_feature = (model.w.detach() * (x - b)).sum(0)  # sum over the batch of w_d (x_ed - b_d)
    expected = per_feature if method == "Occlusion" else group_sums(per_feature, mask[0])
    assert a.shape == (1, 4)  # Captum: (1, *input.shape[1:]) for a scalar batch output
    torch.testing.assert_close(a[0], expected, atol=1e-4, rtol=1e-4)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("method", METHODS)
def test_vector_batch_output_attributes_each_value(method, data):
    x, b, mask = data
    both = run(method, BatchLinear(4, "both"), x, b, mask)
    assert both.shape == (2, 4)
    torch.testing.assert_close(both[:1], run(method, BatchLinear(4), x, b, mask), atol=1e-4, rtol=1e-4)
    second = BatchLinear(4)
    with torch.no_grad():
        second.w.copy_(second.v)
    torch.testing.assert_close(both[1:], run(method, second, x, b, mask), atol=1e-4, rtol=1e-4)


def test_output_shapes_follow_captum(data):
    """(1, 1) batch output: the Shapley methods keep the output's shape, the others flatten it (as Captum 0.9)."""
    x, b, mask = data
    keep = BatchLinear(4, "keep")
    assert FeatureAblation(keep).attribute(x, feature_mask=mask).shape == (1, 4)
    assert ShapleyValues(keep).attribute(x, feature_mask=mask).shape == (1, 1, 4)
    assert ShapleyValueSampling(keep).attribute(x, feature_mask=mask, n_samples=2).shape == (1, 1, 4)
    # a target indexes dims 1.. of the batch output, as for per-example outputs
    picked = FeatureAblation(keep).attribute(x, target=0, feature_mask=mask)
    torch.testing.assert_close(picked, FeatureAblation(BatchLinear(4)).attribute(x, feature_mask=mask))
    # a Python number is a scalar output
    as_float = FeatureAblation(lambda t: float(BatchLinear(4)(t))).attribute(x, b, feature_mask=mask)
    torch.testing.assert_close(as_float, FeatureAblation(BatchLinear(4)).attribute(x, b, feature_mask=mask),
                               atol=1e-5, rtol=1e-5)
    # return_input_shape=False: the group coefficients (1, G)
    assert KernelShap(BatchLinear(4)).attribute(x, feature_mask=mask, return_input_shape=False).shape == (1, 3)


def test_the_batch_is_perturbed_together_not_per_example(data):
    """An interaction across examples (product of two examples' sums) is visible only if all examples are
    ablated at once: ablating feature d in every example multiplies both factors."""
    x, _, _ = data

    def cross(t):
        return t[0].sum() * t[1].sum()

    a = FeatureAblation(cross).attribute(x)
    expected = torch.stack([cross(x) - cross(torch.cat([x[:, :d], torch.zeros(5, 1), x[:, d + 1:]], 1))
                            for d in range(4)])
    torch.testing.assert_close(a[0], expected)


def test_permutation_importance_of_a_batch_loss():
    """FeaturePermutation on a batch loss (its main use): exact for a fixed permutation, zero for a model
    additive in the features (permuting one feature across the batch leaves the sum unchanged)."""
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5])

    def loss(t, target):
        return ((t @ w + t[:, 0] * t[:, 1] - target) ** 2).mean()

    roll = lambda t, m: t.roll(1, 0)  # noqa: E731
    a = FeaturePermutation(loss, perm_func=roll).attribute(x, additional_forward_args=(y,))
    expected = torch.stack([loss(x, y) - loss(torch.where(torch.arange(3) == d, x.roll(1, 0), x), y) for d in range(3)])
    assert a.shape == (1, 3)
    torch.testing.assert_close(a[0], expected)
    additive = lambda t: (torch.sin(t) * w).sum()  # noqa: E731
    zero = FeaturePermutation(additive).attribute(x, seed=0)
    torch.testing.assert_close(zero, torch.zeros(1, 3), atol=1e-5, rtol=0)


def test_lime_captum_forms_see_the_whole_batch(data):
    """In aggregate mode Captum's per-sample callables get the whole batch; the result equals the batched forms
    (which see each sample as one row holding the batch)."""
    x, b, mask = data
    z = torch.rand(20, 3, generator=torch.Generator().manual_seed(5)) < 0.5
    model = lambda t: torch.tanh(t @ torch.tensor([1.0, -2.0, 0.5, 1.5])).sum()  # noqa: E731

    def perturb(original, **kwargs):
        assert original.shape == x.shape and kwargs["baselines"].shape == b.shape
        yield from (row.long().unsqueeze(0) for row in z)

    def kernel(original, perturbed, interpretable, **kwargs):
        assert original.shape == perturbed.shape == x.shape
        return float(torch.exp(-((original - perturbed) ** 2).sum() / 8))

    def perturb_batched(n, s, g, generator):
        return z.unsqueeze(0).expand(n, s, g)

    def kernel_batched(original, perturbed, interpretable):  # rows of shape (1, N, D): the whole batch
        return torch.exp(-((original[0] - perturbed[0]) ** 2).flatten(1).sum(1).double() / 8)

    a = Lime(model, similarity_func=kernel, perturb_func=perturb).attribute(x, b, feature_mask=mask, n_samples=20)
    batched = Lime(model, similarity_func=kernel_batched, perturb_func=perturb_batched)
    torch.testing.assert_close(a, batched.attribute(x, b, feature_mask=mask, n_samples=20))
    assert a.shape == (1, 4)


def test_layer_ablation_of_a_batch_loss():
    """LayerFeatureAblation of a loss over the batch: each hidden unit zeroed in every example at once."""
    torch.manual_seed(0)
    l1, l2 = nn.Linear(4, 3), nn.Linear(3, 1)
    x, y = torch.randn(6, 4), torch.randn(6)

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = l1, l2

        def forward(self, t, target):
            return ((self.l2(torch.tanh(self.l1(t)))[:, 0] - target) ** 2).mean()

    model = Loss()
    a = LayerFeatureAblation(model, model.l1).attribute(x, additional_forward_args=(y,))
    with torch.no_grad():
        h = l1(x)
        full = ((l2(torch.tanh(h))[:, 0] - y) ** 2).mean()
        expected = torch.stack([full - ((l2(torch.tanh(torch.where(torch.arange(3) == j, 0.0, h)))[:, 0] - y) ** 2).mean()
                                for j in range(3)])
    assert a.shape == (1, 3)
    torch.testing.assert_close(a[0], expected)


def test_aggregate_mode_errors_name_the_argument(data):
    x, _, _ = data
    with pytest.raises(ValueError, match="feature_mask.*shared by all examples"):
        FeatureAblation(BatchLinear(4)).attribute(x, feature_mask=torch.arange(20).reshape(5, 4))
    with pytest.raises(ValueError, match="target.*per example"):
        FeatureAblation(lambda t: t.sum(0, keepdim=True)).attribute(x, target=[0, 1, 2, 3, 0])
    with pytest.raises(ValueError, match="target.*aggregates"):
        FeatureAblation(BatchLinear(4)).attribute(x, target=1)


def test_per_example_outputs_are_unchanged(linear):
    """A per-example model is still attributed per example (the aggregate check costs nothing)."""
    x = torch.randn(3, 6)
    a = FeatureAblation(linear).attribute(x, target=1)
    torch.testing.assert_close(a, IntegratedGradients(linear).attribute(x, target=1), atol=1e-5, rtol=1e-5)


# -- attribute_future ------------------------------------------------------------------------------------------
def as_future_model(model):
    def forward(*args):
        fut = torch.futures.Future()
        fut.set_result(model(*args))
        return fut

    return forward


@pytest.mark.parametrize("cls, kw", [
    (FeatureAblation, {}), (ShapleyValues, {}), (ShapleyValueSampling, {"n_samples": 3, "seed": 0}),
    (FeaturePermutation, {"seed": 0}),
])
def test_attribute_future_equals_attribute(cls, kw, linear):
    x = torch.randn(4, 6)
    mask = torch.tensor([[0, 0, 1, 1, 2, 3]])
    before = model_state(linear)
    fut = cls(as_future_model(linear)).attribute_future(x, target=2, feature_mask=mask, **kw)
    assert isinstance(fut, torch.futures.Future)
    torch.testing.assert_close(fut.wait(), cls(linear).attribute(x, target=2, feature_mask=mask, **kw))
    assert_same_state(before, model_state(linear))


def test_attribute_future_where_captum_has_none(linear):
    x = torch.randn(2, 6)
    for method in (Occlusion(linear), Lime(linear), KernelShap(linear)):
        with pytest.raises(NotImplementedError, match="attribute_future"):
            method.attribute_future(x, target=0)
    with pytest.raises(TypeError, match="Future"):  # a plain model through attribute_future: a clear error
        FeatureAblation(linear).attribute_future(x, target=0)
