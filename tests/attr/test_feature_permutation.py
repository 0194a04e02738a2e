"""FeaturePermutation: linear closed form over the permutation, ignored features, seeds, chunking, errors."""
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import FeaturePermutation
from pellucid.attr.feature_permutation import batch_permutations


def test_linear_model_attribution_is_weight_times_shift_to_a_permuted_example(linear):
    torch.manual_seed(0)
    x = torch.randn(6, 6)
    attr = FeaturePermutation(linear).attribute(x, target=1, seed=0)
    w = linear.fc.weight[1].detach()
    replaced = x - attr / w  # the value each feature got from another example
    for j in range(6):
        torch.testing.assert_close(replaced[:, j].sort().values, x[:, j].sort().values)  # a permutation
        assert not torch.allclose(replaced[:, j], x[:, j])  # and not the identity


def test_ignored_feature_gets_zero_and_groups_move_together():
    class Uses(nn.Module):
        def forward(self, x):
            return x[:, 0] * x[:, 1] + x[:, 2]

    x = torch.randn(5, 4)
    attr = FeaturePermutation(Uses()).attribute(x, seed=1)
    assert torch.equal(attr[:, 3], torch.zeros(5))
    grouped = FeaturePermutation(Uses()).attribute(x, feature_mask=torch.tensor([[0, 0, 1, 2]]), seed=1)
    assert torch.equal(grouped[:, 0], grouped[:, 1])


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"perturbations_per_eval": 2}, {}])
def test_seed_and_chunking(cnn, kw):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    mask = torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
    ref = FeaturePermutation(cnn).attribute(x, target=0, feature_mask=mask, seed=5, batch_size=64)
    out = FeaturePermutation(cnn).attribute(x, target=0, feature_mask=mask, seed=5, **kw)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_errors_and_model_state(linear):
    before = model_state(linear)
    with pytest.raises(ValueError, match="at least 2 examples"):
        FeaturePermutation(linear).attribute(torch.randn(1, 6), target=0)
    with pytest.raises(TypeError, match="seed"):
        FeaturePermutation(linear).attribute(torch.randn(3, 6), target=0, seed="1")
    out = FeaturePermutation(linear).attribute(torch.randn(3, 6), seed=0)
    assert out.shape == (3, 3, 6)
    assert_same_state(before, model_state(linear))


def test_permutations_are_uniform_over_the_non_identity_ones():
    # 3 examples: 3! - 1 = 5 allowed permutations, each with probability 1/5 (rejection of the identity; replacing
    # it by a fixed permutation instead would give that one 2/6)
    perms = batch_permutations(30000, 3, torch.Generator().manual_seed(0))
    assert all(sorted(p) == [0, 1, 2] for p in perms[:100].tolist())
    _, counts = torch.unique(perms, dim=0, return_counts=True)
    identity = (perms == torch.arange(3)).all(1)
    assert not bool(identity.any()) and counts.numel() == 5
    freq = counts.double() / 30000
    assert float((freq - 0.2).abs().max()) < 0.015  # binomial std 0.0023
    # two examples: the swap is the only allowed permutation
    assert torch.equal(batch_permutations(50, 2, torch.Generator().manual_seed(1)), torch.tensor([[1, 0]]).expand(50, 2))
    with pytest.raises(ValueError, match="n must be at least 2"):
        batch_permutations(3, 1, None)


def flip_perm(calls):
    """A Captum-style perm_func: the group's values taken from the batch in reverse order."""

    def perm(x, mask):
        calls.append((tuple(x.shape), mask.clone()))
        return x.flip(0) * mask.to(x.dtype) + x * (~mask).to(x.dtype)

    return perm


def test_perm_func_is_called_per_group_and_its_values_replace_the_group(linear):
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    calls = []
    mask = torch.tensor([[0, 0, 1, 1, 2, 3]])
    attr = FeaturePermutation(linear, perm_func=flip_perm(calls)).attribute(x, target=1, feature_mask=mask)
    w = linear.fc.weight[1].detach()
    contrib = w * (x - x.flip(0))  # linear model: a group's attribution is the sum of its features' changes
    expect = torch.stack([contrib[:, m == g].sum(1) for m in mask for g in m], 1)
    torch.testing.assert_close(attr, expect)
    assert len(calls) == 4  # once per group, on the whole batch, with a bool mask of the group's positions
    for g, (shape, m) in enumerate(calls):
        assert shape == (4, 6) and m.dtype == torch.bool and torch.equal(m, mask == g)
    # chunking does not change anything (the permuted values are computed once per call)
    again = FeaturePermutation(linear, perm_func=flip_perm([])).attribute(x, target=1, feature_mask=mask, batch_size=1)
    torch.testing.assert_close(again, attr)


def test_perm_func_with_two_inputs_and_per_example_masks():
    class Two(nn.Module):
        def forward(self, a, b):
            return 2 * a.sum(1) + 3 * b[:, 0] * b[:, 1]

    torch.manual_seed(1)
    a, b = torch.randn(3, 2), torch.randn(3, 2)
    calls = []
    # group 0 spans a[:, 0] and b[:, 0] (one call per input, as Captum); per-example masks for b
    mask_b = torch.tensor([[0, 2], [0, 2], [0, 2]])
    attr_a, attr_b = FeaturePermutation(Two(), perm_func=flip_perm(calls)).attribute(
        (a, b), feature_mask=(torch.tensor([[0, 1]]), mask_b))
    assert len(calls) == 4 and calls[2][1].shape == (3, 2)
    fa = lambda a_, b_: Two()(a_, b_)  # noqa: E731
    f = fa(a, b)
    a0, b0 = a.clone(), b.clone()
    a0[:, 0], b0[:, 0] = a.flip(0)[:, 0], b.flip(0)[:, 0]
    a1 = a.clone()
    a1[:, 1] = a.flip(0)[:, 1]
    b2 = b.clone()
    b2[:, 1] = b.flip(0)[:, 1]
    torch.testing.assert_close(attr_a, torch.stack([f - fa(a0, b0), f - fa(a1, b)], 1))
    torch.testing.assert_close(attr_b, torch.stack([f - fa(a0, b0), f - fa(a, b2)], 1))


def test_perm_func_errors(linear):
    x = torch.randn(3, 6)
    with pytest.raises(TypeError, match="perm_func must be callable"):
        FeaturePermutation(linear, perm_func=3)
    with pytest.raises(ValueError, match="perm_func must return a tensor of the input's shape"):
        FeaturePermutation(linear, perm_func=lambda t, m: t[:2]).attribute(x, target=0)
    with pytest.raises(ValueError, match="generator/seed"):
        FeaturePermutation(linear, perm_func=flip_perm([])).attribute(x, target=0, seed=1)
    before = model_state(linear)
    with pytest.raises(RuntimeError, match="boom"):
        FeaturePermutation(linear, perm_func=lambda t, m: (_ for _ in ()).throw(RuntimeError("boom"))).attribute(x, target=0)
    assert_same_state(before, model_state(linear))
