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


def window_starts(d, w, s):
    """Starts 0, s, 2s, ... until a window reaches the edge (the last one may stick out and is cropped)."""
    starts = [0]
    while starts[-1] + w < d:
        starts.append(starts[-1] + s)
    return starts


def occlusion_by_loop(f, x, window, stride, baseline=0.0):
    """Reference: the definition, one window at a time (windows cropped at the edge by slicing)."""
    shape = x.shape[1:]
    total = torch.zeros_like(x)
    cover = torch.zeros(shape)
    fx = f(x)
    for starts in itertools.product(*[window_starts(d, w, s) for d, w, s in zip(shape, window, stride)]):
        sl = tuple(slice(a, a + w) for a, w in zip(starts, window))
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


def test_untiled_strides_crop_the_last_window_so_edges_get_credit():
    # 5 = 2 + 2 + 1: windows of 2 with stride 2 start at 0, 2 and 4; the last is cropped to one row/column, so the
    # edge row and column are occluded too (Captum's ceil((d - w) / s) + 1 positions), never left at 0
    torch.manual_seed(0)
    x = torch.randn(1, 1, 5, 5)
    w = torch.randn(1, 1, 5, 5)

    def model(t):
        return (w * t**2).flatten(1).sum(1)  # separable: occluding a window removes exactly its own terms

    attr = Occlusion(model).attribute(x, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2))
    direct = torch.zeros(5, 5)
    for top in (0, 2, 4):
        for left in (0, 2, 4):
            rows, cols = slice(top, min(top + 2, 5)), slice(left, min(left + 2, 5))
            occluded = x.clone()
            occluded[0, 0, rows, cols] = 0
            direct[rows, cols] += model(x) - model(occluded)  # each position lies in exactly one window
    torch.testing.assert_close(attr[0, 0], direct)
    # closed form: every position, the edge included, gets the sum of w x^2 over its (cropped) 2x2 block
    terms = torch.nn.functional.pad((w * x**2)[0, 0], (0, 1, 0, 1))  # 6x6; the padding adds 0 to edge blocks
    blocks = terms.reshape(3, 2, 3, 2).sum((1, 3))
    expect = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)[:5, :5]
    torch.testing.assert_close(attr[0, 0], expect)
    assert bool((attr != 0).all())


def test_stride_larger_than_window_skips_empty_windows():
    # d=5, w=1, s=3: starts 0 and 3 (a start at 6 would cover nothing and costs no forward row)
    calls = []

    def model(t):
        calls.append(t.shape[0])
        return t.sum(1)

    x = torch.randn(2, 5)
    attr = Occlusion(model).attribute(x, sliding_window_shapes=(1,), strides=3, batch_size=100)
    assert sum(calls) == 2 * (1 + 2)
    expect = torch.zeros_like(x)
    expect[:, [0, 3]] = x[:, [0, 3]]
    torch.testing.assert_close(attr, expect)


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
