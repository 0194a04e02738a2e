"""FeatureAblation: closed forms, groups spanning inputs, all outputs at once, chunking, integer inputs, errors."""
import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import FeatureAblation


class Additive(nn.Module):
    """F(x) = sum_i h_i(x_i) with h_i(t) = a_i t^3 + sin(t): ablating i changes F by exactly h_i(x_i) - h_i(b_i)."""

    def __init__(self, d=5):
        super().__init__()
        self.a = nn.Parameter(torch.linspace(-1, 1, d))

    def h(self, x):
        return self.a * x**3 + torch.sin(x)

    def forward(self, x):
        return self.h(x).sum(1)


class TwoInputs(nn.Module):
    """F(x, y) = x0 * y0 + x1 + y1^2 (an interaction across the inputs)."""

    def forward(self, x, y):
        return x[:, 0] * y[:, 0] + x[:, 1] + y[:, 1] ** 2


def test_additive_model_closed_form_per_feature_and_per_group():
    torch.manual_seed(0)
    model, x, b = Additive(), torch.randn(4, 5), torch.randn(4, 5)
    attr = FeatureAblation(model).attribute(x, baselines=b)
    with torch.no_grad():
        torch.testing.assert_close(attr, model.h(x) - model.h(b))
        mask = torch.tensor([[0, 0, 1, 2, 2]])
        grouped = FeatureAblation(model).attribute(x, baselines=b, feature_mask=mask)
        per = model.h(x) - model.h(b)
        expect = torch.stack([per[:, :2].sum(1)] * 2 + [per[:, 2]] + [per[:, 3:].sum(1)] * 2, 1)
        torch.testing.assert_close(grouped, expect)


def test_scalar_and_per_feature_baselines():
    torch.manual_seed(1)
    model, x = Additive(), torch.randn(3, 5)
    bvec = torch.randn(5)
    with torch.no_grad():
        torch.testing.assert_close(FeatureAblation(model).attribute(x, baselines=0.5), model.h(x) - model.h(torch.full_like(x, 0.5)))
        torch.testing.assert_close(FeatureAblation(model).attribute(x, baselines=bvec), model.h(x) - model.h(bvec.expand_as(x)))


def test_group_spanning_two_inputs():
    x, y = torch.tensor([[2.0, 3.0]]), torch.tensor([[5.0, 7.0]])
    masks = (torch.tensor([[0, 1]]), torch.tensor([[0, 2]]))  # group 0 = x0 and y0 together
    ax, ay = FeatureAblation(TwoInputs()).attribute((x, y), feature_mask=masks)
    assert ax[0, 0] == ay[0, 0] == 10.0  # x0*y0 vanishes only when the group is removed
    assert ax[0, 1] == 3.0 and ay[0, 1] == 49.0
    ax2, ay2 = FeatureAblation(TwoInputs()).attribute((x, y))  # separate features: each alone removes x0*y0
    assert ax2[0, 0] == ay2[0, 0] == 10.0


def test_target_none_gives_every_output_at_once(cnn):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    mask = (torch.arange(32).reshape(1, 1, 32, 1) // 8 * 4 + torch.arange(32).reshape(1, 1, 1, 32) // 8)
    fa = FeatureAblation(cnn)
    all_out = fa.attribute(x, feature_mask=mask)
    assert all_out.shape == (2, 10, 3, 32, 32)
    for t in (0, 7):
        torch.testing.assert_close(all_out[:, t], fa.attribute(x, target=t, feature_mask=mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [{"batch_size": 1}, {"batch_size": 7}, {"perturbations_per_eval": 2}, {}])
def test_identical_for_every_chunking(cnn, kw):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    mask = torch.arange(16).reshape(1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)
    ref = FeatureAblation(cnn).attribute(x, target=3, feature_mask=mask, batch_size=48)
    torch.testing.assert_close(FeatureAblation(cnn).attribute(x, target=3, feature_mask=mask, **kw), ref, rtol=1e-5, atol=1e-6)


def test_extra_arguments_follow_their_examples(multi_input):
    torch.manual_seed(0)
    x1, x2, scale = torch.randn(3, 4), torch.randn(3, 3), torch.tensor([1.0, 2.0, -1.0])
    offset = torch.randn(3, 5)
    a1, a2 = FeatureAblation(multi_input).attribute(
        (x1, x2), target=1, additional_forward_args=(scale,), forward_kwargs={"offset": offset}, batch_size=4
    )
    with torch.no_grad():
        for j in range(4):
            xp = x1.clone()
            xp[:, j] = 0
            ref = multi_input(x1, x2, scale, offset=offset)[:, 1] - multi_input(xp, x2, scale, offset=offset)[:, 1]
            torch.testing.assert_close(a1[:, j], ref, rtol=1e-5, atol=1e-6)


def test_token_ids_with_padding_baseline(transformer):
    torch.manual_seed(0)
    ids = torch.randint(1, 100, (2, 10))
    attr = FeatureAblation(transformer).attribute(ids, baselines=0, target=1)
    assert attr.shape == (2, 10) and attr.dtype == torch.float32
    with torch.no_grad():
        ablated = ids.clone()
        ablated[:, 4] = 0
        ref = transformer(ids)[:, 1] - transformer(ablated)[:, 1]
    torch.testing.assert_close(attr[:, 4], ref, rtol=1e-4, atol=1e-5)


def test_model_unchanged_after_call_and_error(cnn):
    cnn.train()
    before = model_state(cnn)
    x = torch.randn(1, 3, 32, 32)
    FeatureAblation(cnn).attribute(x, target=0, feature_mask=torch.zeros(1, 1, 32, 32, dtype=torch.long))
    assert_same_state(before, model_state(cnn))
    with pytest.raises(ValueError, match="target"):
        FeatureAblation(cnn).attribute(x, target=99, feature_mask=torch.zeros(1, 1, 32, 32, dtype=torch.long))
    assert_same_state(before, model_state(cnn))


def test_errors_name_the_argument():
    model, x = Additive(), torch.randn(2, 5)
    with pytest.raises(ValueError, match="feature_mask.*non-integer"):  # float masks must hold whole numbers
        FeatureAblation(model).attribute(x, feature_mask=torch.full((2, 5), 0.5))
    with pytest.raises(ValueError, match="feature_mask.*broadcast"):
        FeatureAblation(model).attribute(x, feature_mask=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="perturbations_per_eval"):
        FeatureAblation(model).attribute(x, perturbations_per_eval=0)


def test_every_example_target_is_checked_whatever_the_chunking(linear):
    x = torch.randn(5, 6)
    with pytest.raises(ValueError, match=r"target 9 \(example 4\)"):
        FeatureAblation(linear).attribute(x, target=[0, 1, 2, 0, 9], batch_size=2)
    a = FeatureAblation(linear).attribute(x, target=[0, 1, 2, 0, -1], batch_size=2)
    full = FeatureAblation(linear).attribute(x)  # all outputs at once
    torch.testing.assert_close(a, full[torch.arange(5), torch.tensor([0, 1, 2, 0, 2])])


def test_per_example_masks_and_progress_bar(capsys):
    torch.manual_seed(0)
    model, x = Additive(), torch.randn(2, 5)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 2, 2]])  # a different grouping for each example
    attr = FeatureAblation(model).attribute(x, feature_mask=mask, show_progress=True)
    with torch.no_grad():
        per = model.h(x) - model.h(torch.zeros(5))
    expect = torch.stack([
        torch.stack([per[0, :2].sum()] * 2 + [per[0, 2:].sum()] * 3),
        torch.stack([per[1, 0]] + [per[1, 1:3].sum()] * 2 + [per[1, 3:].sum()] * 2),
    ])
    torch.testing.assert_close(attr, expect)
    assert "FeatureAblation" in capsys.readouterr().err
