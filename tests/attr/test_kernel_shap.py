"""Kernel SHAP: exact by enumeration, convergence to exact Shapley values, efficiency, seeds, chunking."""
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import KernelShap, ShapleyValues
from pellucid.attr.kernel_shap import shapley_kernel_samples


class Mlp(nn.Module):
    def __init__(self, d=6, out=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, out))

    def forward(self, x):
        return self.net(x)


class Game(nn.Module):
    def forward(self, x):
        return x[:, 0] * x[:, 1] + 2 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 2]


def test_hand_computed_game_and_enumeration_equals_exact():
    torch.testing.assert_close(KernelShap(Game()).attribute(torch.ones(1, 3), n_samples=6),
                               torch.tensor([[0.5 + 2 / 3, 0.5 + 2 / 3, 1 + 2 / 3]]))
    model, x, b = Mlp(), torch.randn(3, 6), torch.randn(1, 6)
    exact = ShapleyValues(model).attribute(x, baselines=b)
    torch.testing.assert_close(KernelShap(model).attribute(x, baselines=b, n_samples=62), exact, rtol=1e-4, atol=1e-5)


def test_converges_to_exact_shapley_values_as_samples_grow():
    model, x = Mlp(d=10, out=1, seed=3), torch.randn(2, 10)
    exact = ShapleyValues(model).attribute(x, target=0)  # target=None keeps the (N, 1) output's dim, as Captum
    errors = [(KernelShap(model).attribute(x, n_samples=s, seed=0) - exact).abs().max().item() for s in (40, 200, 1000)]
    assert errors[2] < errors[0]
    assert errors[2] < 0.05 * exact.abs().max().item()


def test_efficiency_is_exact_even_with_few_samples():
    model, x, b = Mlp(d=12), torch.randn(4, 12), torch.randn(4, 12)
    attr = KernelShap(model).attribute(x, baselines=b, n_samples=8, seed=1)
    with torch.no_grad():
        gap = model(x) - model(b)
    assert attr.shape == (4, 3, 12)
    torch.testing.assert_close(attr.sum(-1), gap, rtol=1e-4, atol=1e-5)


def test_additive_model_is_exact_with_any_full_rank_sample():
    torch.manual_seed(0)
    w = torch.randn(8)
    model = lambda x: (w * torch.sin(x)).sum(1)  # noqa: E731
    x = torch.randn(2, 8)
    attr = KernelShap(model).attribute(x, n_samples=60, seed=0)
    torch.testing.assert_close(attr, w * torch.sin(x), rtol=1e-4, atol=1e-5)


def test_paired_samples_are_complements_and_follow_the_kernel():
    z = shapley_kernel_samples(2, 4000, 6, torch.Generator().manual_seed(0), antithetic=True)
    assert torch.equal(z[:, 1::2], ~z[:, 0::2])
    sizes = z.sum(-1).flatten().double()
    k = torch.arange(1, 6, dtype=torch.float64)
    p = 1 / (k * (6 - k))
    p = p / p.sum()
    freq = torch.stack([(sizes == s).double().mean() for s in range(1, 6)])
    torch.testing.assert_close(freq, p, atol=0.02, rtol=0)
    assert not bool((sizes == 0).any() or (sizes == 6).any())


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"perturbations_per_eval": 4}])
def test_chunking_seed_and_interpretable_shape(kw):
    model, x = Mlp(d=12), torch.randn(3, 12)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]])
    ref = KernelShap(model).attribute(x, target=1, feature_mask=mask, n_samples=20, seed=4)
    torch.testing.assert_close(KernelShap(model).attribute(x, target=1, feature_mask=mask, n_samples=20, seed=4, **kw), ref)
    coef = KernelShap(model).attribute(x, target=1, feature_mask=mask, n_samples=20, seed=4, return_input_shape=False)
    assert coef.shape == (3, 6)
    torch.testing.assert_close(coef.repeat_interleave(2, 1), ref)


def test_model_unchanged(cnn):
    before = model_state(cnn)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.arange(4).reshape(1, 1, 2, 2).repeat_interleave(16, 2).repeat_interleave(16, 3)
    KernelShap(cnn).attribute(x, target=0, feature_mask=mask, n_samples=10, seed=0)
    with pytest.raises(ValueError):  # float ids must be whole numbers
        KernelShap(cnn).attribute(x, target=0, feature_mask=mask.float() + 0.5)
    assert_same_state(before, model_state(cnn))
