"""Occlusion: a model that reads one patch, the window average against a direct loop, errors, chunking."""
import itertools

import pytest
import torch
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.attr import Occlusion


class Patch(nn.Module):
    """Reads only the patch x[:, 1, 8:12, 4:8]: F = sum(patch^2) + 1."""

    def forward(self, x):
        return (x[:, 1, 8:12, 4:8] ** 2).flatten(1).sum(1) + 1


def occlusion_by_loop(f, x, window, stride, baseline=0.0):
    """Reference: the definition, one window at a time."""
    shape = x.shape[1:]
    counts = [(d - w) // s + 1 for d, w, s in zip(shape, window, stride)]
    total = torch.zeros_like(x)
    cover = torch.zeros(shape)
    fx = f(x)
    for idx in itertools.product(*[range(c) for c in counts]):
        sl = tuple(slice(i * s, i * s + w) for i, s, w in zip(idx, stride, window))
        xo = x.clone()
        xo[(slice(None),) + sl] = baseline
        diff = fx - f(xo)
        total[(slice(None),) + sl] += diff.reshape((-1,) + (1,) * len(shape))
        cover[sl] += 1
    return total / cover.clamp(min=1)


def test_model_reading_one_patch_aligned_windows():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    attr = Occlusion(Patch()).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 4, 4))
    patch_energy = (x[:, 1, 8:12, 4:8] ** 2).flatten(1).sum(1)
    expect = torch.zeros_like(x)
    expect[:, 1, 8:12, 4:8] = patch_energy.reshape(2, 1, 1)
    torch.testing.assert_close(attr, expect)


def test_overlapping_windows_average_over_covering_windows():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    model = Patch()
    attr = Occlusion(model).attribute(x, sliding_window_shapes=(3, 5, 3), strides=(1, 2, 3), baselines=0.3)
    with torch.no_grad():
        ref = occlusion_by_loop(model, x, (3, 5, 3), (1, 2, 3), 0.3)
    torch.testing.assert_close(attr, ref)
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:16, 2:10] = False  # no window touching the patch covers these
    assert attr[:, :, outside].abs().max() == 0


def test_cnn_against_loop_all_outputs_and_chunking(cnn):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    occ = Occlusion(cnn)
    all_out = occ.attribute(x, sliding_window_shapes=(3, 8, 8), strides=4)
    assert all_out.shape == (2, 10, 3, 32, 32)
    with torch.no_grad():
        ref = occlusion_by_loop(lambda t: cnn(t)[:, 4], x, (3, 8, 8), (1, 4, 4))
    torch.testing.assert_close(all_out[:, 4], ref, rtol=1e-4, atol=1e-5)
    for kw in ({"batch_size": 1}, {"perturbations_per_eval": 5}, {}):
        torch.testing.assert_close(occ.attribute(x, (3, 8, 8), 4, target=4, **kw), ref, rtol=1e-4, atol=1e-5)


def test_two_inputs_each_with_its_windows():
    class Two(nn.Module):
        def forward(self, a, b):
            return a[:, 2] * 3 + (b[:, 0, 1] * b[:, 1, 1])

    a, b = torch.randn(3, 5), torch.randn(3, 2, 3)
    attr_a, attr_b = Occlusion(Two()).attribute((a, b), sliding_window_shapes=((1,), (2, 1)), strides=(1, (1, 1)))
    expect_a = torch.zeros_like(a)
    expect_a[:, 2] = 3 * a[:, 2]
    torch.testing.assert_close(attr_a, expect_a)
    expect_b = torch.zeros_like(b)
    expect_b[:, :, 1] = (b[:, 0, 1] * b[:, 1, 1]).unsqueeze(1)
    torch.testing.assert_close(attr_b, expect_b)


def test_errors():
    x = torch.randn(1, 3, 8, 8)
    occ = Occlusion(Patch())
    with pytest.raises(ValueError, match="sliding_window_shapes.*larger than the input"):
        occ.attribute(x, sliding_window_shapes=(3, 9, 2))
    with pytest.raises(ValueError, match="sliding_window_shapes.*dims"):
        occ.attribute(x, sliding_window_shapes=(4, 4))
    with pytest.raises(ValueError, match="strides.*positive"):
        occ.attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 0, 2))
    with pytest.raises(TypeError, match="strides"):
        occ.attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2.0, 2))


def test_model_unchanged(cnn):
    before = model_state(cnn)
    x = torch.randn(1, 3, 32, 32)
    Occlusion(cnn).attribute(x, (3, 16, 16), 16, target=1)
    with pytest.raises(ValueError):
        Occlusion(cnn).attribute(x, (3, 33, 16), 16, target=1)
    assert_same_state(before, model_state(cnn))
