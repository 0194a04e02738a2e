"""Exact and sampled Shapley values: closed forms, a hand-computed game, efficiency, sampling, chunking, errors."""
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import ShapleyValues, ShapleyValueSampling


class Additive(nn.Module):
    def __init__(self, d=5):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(-1, 1, d))

    def h(self, x):
        return self.a * x**3 + torch.cos(x)

    def forward(self, x):
        return self.h(x).sum(1)


class Game(nn.Module):
    """Three players, x in {0, 1}^3 against baseline 0: v = x0 x1 + 2 x0 x1 x2 + x2.

    By hand: x0 x1 is split between players 0 and 1 (1/2 each), 2 x0 x1 x2 between all three (2/3 each),
    x2 goes to player 2: phi = (1/2 + 2/3, 1/2 + 2/3, 1 + 2/3).
    """

    def forward(self, x):
        return x[:, 0] * x[:, 1] + 2 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 2]


class Mlp(nn.Module):
    def __init__(self, d=6, out=3):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, out))

    def forward(self, x):
        return self.net(x)


GAME_PHI = torch.tensor([[0.5 + 2 / 3, 0.5 + 2 / 3, 1 + 2 / 3]])


def test_hand_computed_three_player_game():
    x = torch.ones(1, 3)
    torch.testing.assert_close(ShapleyValues(Game()).attribute(x), GAME_PHI)
    for antithetic in (True, False):  # every order gives the same average here only in expectation; 3! orders
        est = ShapleyValueSampling(Game()).attribute(x, n_samples=3000, seed=0, antithetic=antithetic)
        torch.testing.assert_close(est, GAME_PHI, atol=0.05, rtol=0)


def test_additive_model_exact_for_both():
    torch.manual_seed(0)
    model, x, b = Additive(), torch.randn(3, 5), torch.randn(1, 5)
    with torch.no_grad():
        expect = model.h(x) - model.h(b)
    torch.testing.assert_close(ShapleyValues(model).attribute(x, baselines=b), expect, rtol=1e-5, atol=1e-5)
    # every marginal contribution of an additive game is the same, so even one order is exact
    torch.testing.assert_close(ShapleyValueSampling(model).attribute(x, baselines=b, n_samples=1, seed=3), expect, rtol=1e-5, atol=1e-5)


def test_efficiency_exact_and_per_order():
    torch.manual_seed(0)
    model, x, b = Mlp(), torch.randn(4, 6), torch.randn(4, 6)
    with torch.no_grad():
        gap = model(x) - model(b)  # (N, 3): every output at once
    exact = ShapleyValues(model).attribute(x, baselines=b)
    assert exact.shape == (4, 3, 6)
    torch.testing.assert_close(exact.sum(-1), gap, rtol=1e-5, atol=1e-5)
    one_order = ShapleyValueSampling(model).attribute(x, baselines=b, n_samples=1, seed=1, antithetic=False)
    torch.testing.assert_close(one_order.sum(-1), gap, rtol=1e-5, atol=1e-5)


def test_sampling_is_unbiased_and_converges():
    torch.manual_seed(0)
    model, x = Mlp(), torch.randn(2, 6)
    exact = ShapleyValues(model).attribute(x, target=0)
    # single-order estimates averaged over many seeds (expectation), and one long run
    mean = torch.stack([ShapleyValueSampling(model).attribute(x, target=0, n_samples=1, seed=s, antithetic=False) for s in range(300)]).mean(0)
    scale = exact.abs().max()
    assert (mean - exact).abs().max() < 0.1 * scale
    long = ShapleyValueSampling(model).attribute(x, target=0, n_samples=2000, seed=0)
    assert (long - exact).abs().max() < 0.03 * scale


def test_group_spanning_two_inputs_and_exact_agrees_with_sampling_on_groups():
    class Two(nn.Module):
        def forward(self, a, b):
            return a[:, 0] * b[:, 0] + a[:, 1] * a[:, 2] + b[:, 1]

    a, b = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[4.0, 5.0]])
    masks = (torch.tensor([[0, 1, 1]]), torch.tensor([[0, 2]]))  # group 0 = a0 and b0
    sa, sb = ShapleyValues(Two()).attribute((a, b), feature_mask=masks)
    torch.testing.assert_close(sa, torch.tensor([[4.0, 6.0, 6.0]]))
    torch.testing.assert_close(sb, torch.tensor([[4.0, 5.0]]))
    ua, ub = ShapleyValues(Two()).attribute((a, b))  # a0, b0 separate: the product splits in halves
    torch.testing.assert_close(ua, torch.tensor([[2.0, 3.0, 3.0]]))
    torch.testing.assert_close(ub, torch.tensor([[2.0, 5.0]]))


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"batch_size": 13}, {"perturbations_per_eval": 3}])
def test_chunking_and_seed_invariance(kw):
    model, x = Mlp(), torch.randn(3, 6)
    ref = ShapleyValueSampling(model).attribute(x, target=2, n_samples=5, seed=7)
    torch.testing.assert_close(ShapleyValueSampling(model).attribute(x, target=2, n_samples=5, seed=7, **kw), ref, rtol=1e-5, atol=1e-6)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(ShapleyValueSampling(model).attribute(x, target=2, n_samples=5, generator=g), ref, rtol=1e-5, atol=1e-6)
    ex = ShapleyValues(model).attribute(x, target=2)
    torch.testing.assert_close(ShapleyValues(model).attribute(x, target=2, **kw), ex, rtol=1e-5, atol=1e-6)


def test_errors_and_model_state():
    model = Mlp(d=17)
    model.train()
    before = model_state(model)
    with pytest.raises(ValueError, match="at most 16 feature groups"):
        ShapleyValues(model).attribute(torch.randn(1, 17), target=0)
    with pytest.raises(ValueError, match="n_samples"):
        ShapleyValueSampling(model).attribute(torch.randn(1, 17), target=0, n_samples=0)
    with pytest.raises(ValueError, match="generator= or seed="):
        ShapleyValueSampling(model).attribute(torch.randn(1, 17), target=0, seed=1, generator=torch.Generator())
    ShapleyValueSampling(model).attribute(torch.randn(2, 17), target=0, n_samples=2, seed=0)
    assert_same_state(before, model_state(model))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(
    ids=st.lists(st.integers(0, 5), min_size=6, max_size=6),
    batch_size=st.integers(1, 20),
    seed=st.integers(0, 10_000),
)
def test_property_any_mask_any_chunking_efficient_and_invariant(ids, batch_size, seed):
    model = Mlp()
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(seed))
    mask = torch.tensor([ids])
    ref = ShapleyValueSampling(model).attribute(x, target=1, feature_mask=mask, n_samples=3, seed=seed)
    out = ShapleyValueSampling(model).attribute(x, target=1, feature_mask=mask, n_samples=3, seed=seed, batch_size=batch_size)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # every position of a group carries the group's value, so the sum over groups is the sum over unique ids
    first = {g: ids.index(g) for g in set(ids)}
    total = out[:, list(first.values())].sum(1)
    with torch.no_grad():
        gap = model(x)[:, 1] - model(torch.zeros(1, 6))[:, 1]
    torch.testing.assert_close(total, gap, rtol=1e-5, atol=1e-5)
