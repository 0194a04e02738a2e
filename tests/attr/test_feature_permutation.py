"""FeaturePermutation: linear closed form over the permutation, ignored features, seeds, chunking, errors."""
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import FeaturePermutation


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
