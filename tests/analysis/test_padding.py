"""Padding diagnostics (arXiv:2010.02178): arithmetic against hand cases, foveation counts computed by hand,
padding modes against NumPy, swapped convolutions against their definitions, blind-spot tools on closed forms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_state, model_state
from pellucid.analysis.blind_spots import (blind_spot_sweep, map_asymmetry, mean_feature_maps, mean_filters,
                                           plot_maps)
from pellucid.analysis.padding import (PADDING_MODES, consumed_padding, foveation_map, output_size, pad,
                                       padding_report, swap_padding, tf_same_padding, trace_layers)


class ResNetLike(nn.Module):
    """ResNet's stride pattern: 7x7/2 stem, 3x3/2 max pool, three stages opening with a 3x3/2 conv and a 1x1/2
    shortcut: five stride-2 layers with padding on the main path."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stage1 = nn.Conv2d(4, 4, 3, 1, 1)
        self.down = nn.ModuleList(nn.Conv2d(4, 4, 3, 2, 1) for _ in range(3))
        self.short = nn.ModuleList(nn.Conv2d(4, 4, 1, 2) for _ in range(3))

    def forward(self, x):
        x = self.stage1(self.pool(self.conv1(x)))
        for d, s in zip(self.down, self.short):
            x = d(x) + s(x)
        return x


# ------------------------------------------------------------------------------------------------ arithmetic


@pytest.mark.parametrize("args, expected", [
    ((224, 3, 2, 1, 1), (1, 0, 0)),   # (224 + 2 - 3) mod 2 = 1: bottom pad never read
    ((225, 3, 2, 1, 1), (1, 1, 0)),
    ((224, 7, 2, 3, 3), (3, 2, 0)),   # (224 + 6 - 7) mod 2 = 1: one of three bottom rows unread
    ((225, 7, 2, 3, 3), (3, 3, 0)),
    ((56, 1, 2, 0, 0), (0, 0, 1)),    # 1x1/2 shortcut on an even size skips the last row
    ((57, 1, 2, 0, 0), (0, 0, 0)),
    ((6, 2, 3, 1, 1), (1, 1, 0)),     # windows {0,1} {3,4} {6,7} of the 8 padded positions
    ((10, 3, 4, 1, 1), (1, 0, 0)),    # windows read padded 0-2, 4-6, 8-10 of 0..11: the right pad (11) unread
    ((11, 3, 4, 1, 1), (1, 0, 1)),    # the same windows on 0..12: input 10 (position 11) and the pad unread
])
def test_consumed_padding_hand_cases(args, expected):
    assert consumed_padding(*args) == expected


def test_consumed_padding_dilation_skips_pad_positions():
    # size 5, k 3, dilation 2, pad 2, stride 2: windows read {0,2,4}, {2,4,6}, {4,6,8}; pads are 0,1 and 7,8
    assert consumed_padding(5, 3, 2, 2, 2, dilation=2) == (1, 1, 0)
    assert consumed_padding(5, 3, 1, 2, 2, dilation=2) == (2, 2, 0)


def test_output_size_matches_torch():
    for size, k, s, p, d in [(224, 3, 2, 1, 1), (225, 7, 2, 3, 1), (17, 3, 3, 1, 2), (9, 2, 2, 0, 1)]:
        y = F.conv1d(torch.zeros(1, 1, size), torch.zeros(1, 1, k), stride=s, padding=p, dilation=d)
        assert output_size(size, k, s, p, p, d) == y.shape[-1]
    for size in (10, 11, 12):
        y = F.max_pool1d(torch.zeros(1, 1, size), 3, 2, 1, ceil_mode=True)
        assert output_size(size, 3, 2, 1, 1, ceil_mode=True) == y.shape[-1]


@pytest.mark.parametrize("args, expected", [
    ((224, 3, 2), (0, 1)), ((225, 3, 2), (1, 1)), ((224, 7, 2), (2, 3)), ((224, 1, 2), (0, 0)), ((5, 3, 1), (1, 1)),
])
def test_tf_same_padding_hand_cases(args, expected):
    assert tf_same_padding(*args) == expected


def test_arithmetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        consumed_padding(10, 3, 0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        output_size(2, 5)


# ------------------------------------------------------------------------------------------------ report


def test_report_resnet_like_224_uneven_at_the_five_stride_two_layers():
    model = ResNetLike()
    before = model_state(model)
    r = padding_report(model, 224)
    assert_same_state(before, model_state(model))
    assert r.input_shape == (3, 224, 224)
    assert [l.name for l in r.uneven_layers] == ["conv1", "pool", "down.0", "down.1", "down.2"]
    for l in r.uneven_layers:
        assert l.pad_before[0] > l.pad_after[0] and l.pad_before == (l.pad_before[0],) * 2
    # the 1x1/2 shortcuts pad nothing but skip the last row and column at even sizes
    assert [l.ignored for l in r.layers if l.name.startswith("short")] == [(1, 1)] * 3
    sizes = {l.name: l.input_size[0] for l in r.layers}
    assert sizes == {"conv1": 224, "pool": 112, "stage1": 56, "down.0": 56, "short.0": 56, "down.1": 28,
                     "short.1": 28, "down.2": 14, "short.2": 14}
    assert r.suggestions[0] == (225, 225)
    assert not r.even and "UNEVEN" in r.text()


def test_report_resnet_like_225_even_everywhere():
    r = padding_report(ResNetLike(), (3, 225, 225), suggest=0)
    assert r.uneven_layers == [] and r.even and r.suggestions == []
    assert all(l.pad_before == l.pad_after for l in r.layers if l.kind == "Conv2d" and l.kernel_size[0] > 1)


def test_report_tf_same_semantics():
    r = padding_report(ResNetLike(), 224, semantics="tf_same", suggest=0)
    conv1 = r.layers[0]
    assert (conv1.pad_before, conv1.pad_after) == ((2, 2), (3, 3))  # TF pads more at the bottom/right
    assert all(l.pad_before[0] < l.pad_after[0] for l in r.uneven_layers)
    assert padding_report(ResNetLike(), 225, semantics="tf_same", suggest=0).even


def test_report_non_square_and_real_forward_fallback():
    class ItemModel(ResNetLike):  # .item() cannot run on the meta device: traced by a real forward
        def forward(self, x):
            return super().forward(x) * float(x.mean().item() + 1)

    a = padding_report(ResNetLike(), (224, 225), suggest=1)
    b = padding_report(ItemModel(), (224, 225), suggest=1)
    meta = trace_layers(ResNetLike(), (3, 40, 41), meta=True)
    real = trace_layers(ResNetLike(), (3, 40, 41))
    assert [(n, i, o) for n, _, i, o in meta] == [(n, i, o) for n, _, i, o in real]
    assert [(l.input_size, l.pad_before, l.pad_after) for l in a.layers] == \
           [(l.input_size, l.pad_before, l.pad_after) for l in b.layers]
    assert a.layers[0].pad_after == (2, 3) and a.suggestions == [(225, 225)]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch notes an even kernel copies the input
def test_report_same_string_padding_and_pad_modules():
    model = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 1, 3, 2), nn.Conv2d(1, 1, 4, padding="same"))
    r = padding_report(model, (1, 8, 8), suggest=0)
    zp, c, same = r.layers
    assert (zp.pad_before, zp.pad_after) == ((0, 0), (1, 1)) and zp.uneven
    assert c.input_size == (9, 9) and not c.uneven
    assert same.padding == ((1, 2), (1, 2)) and same.uneven  # 'same' with an even kernel pads 1 before, 2 after


def test_report_errors():
    with pytest.raises(ValueError, match="input_size"):
        padding_report(ResNetLike(), (3, 224, 224, 1))
    with pytest.raises(ValueError, match="semantics"):
        padding_report(ResNetLike(), 224, semantics="keras")
    with pytest.raises(ValueError, match="no convolution"):
        padding_report(nn.Linear(3, 3), 4)
    with pytest.raises(TypeError, match="model"):
        trace_layers("model", (3, 8, 8))


# ------------------------------------------------------------------------------------------------ padding modes


@pytest.mark.parametrize("mode, np_mode", [("symmetric", "symmetric"), ("reflect", "reflect"),
                                           ("replicate", "edge"), ("circular", "wrap"), ("zeros", "constant")])
def test_pad_matches_numpy(mode, np_mode):
    x = torch.arange(2 * 4 * 5, dtype=torch.float64).reshape(1, 2, 4, 5)
    widths = [(2, 1), (3, 0)] if mode != "reflect" else [(2, 1), (3, 4)]
    ours = pad(x, widths, mode)
    ref = np.pad(x.numpy(), [(0, 0), (0, 0)] + widths, mode=np_mode)
    assert np.array_equal(ours.numpy(), ref)


def test_pad_wide_mirror_repeats_and_errors():
    x = torch.tensor([[0.0, 1.0, 2.0]])
    assert pad(x, [(2, 2)], "symmetric").tolist() == [[1, 0, 0, 1, 2, 2, 1]]
    assert np.array_equal(pad(x, [(5, 4)], "symmetric").numpy(), np.pad(x.numpy(), [(0, 0), (5, 4)], "symmetric"))
    with pytest.raises(ValueError, match="mode"):
        pad(x, [(1, 1)], "mirror")
    with pytest.raises(ValueError, match="padding"):
        pad(x, [(-1, 1)])


# ------------------------------------------------------------------------------------------------ swap_padding


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, 2, 1), nn.ReLU(), nn.Conv2d(3, 2, (3, 5), 1, (1, 2)))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_swap_padding_equals_explicit_padding(mode):
    net, x = _net(), torch.randn(2, 2, 9, 10)
    before = model_state(net)
    swapped = swap_padding(net, mode)
    assert_same_state(before, model_state(net))
    assert swapped.state_dict().keys() == net.state_dict().keys()
    expect = x
    for m in net:
        if isinstance(m, nn.Conv2d):
            ph, pw = m.padding
            expect = F.conv2d(pad(expect, [(ph, ph), (pw, pw)], mode), m.weight, m.bias, m.stride)
        else:
            expect = m(expect)
    torch.testing.assert_close(swapped(x), expect)
    torch.testing.assert_close(swap_padding(swapped, "zeros")(x), net(x))  # and back


def test_partial_convolution_definition():
    conv = nn.Conv2d(2, 3, 3, 1, 1)
    part = swap_padding(nn.Sequential(conv), "partial")[0]
    x = torch.randn(1, 2, 6, 7)
    y, y0 = part(x), conv(x)
    torch.testing.assert_close(y[..., 1:-1, 1:-1], y0[..., 1:-1, 1:-1])  # no padding in the window: unchanged
    # corner: W^T (X . M) * 9 / 4 + b (Liu et al., 2018)
    raw = y0[0, :, 0, 0] - conv.bias
    torch.testing.assert_close(y[0, :, 0, 0], raw * 9 / 4 + conv.bias)
    # a constant input gives a constant output (the rescaling undoes the zeros)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    ones = swap_padding(nn.Sequential(conv), "partial")[0](torch.ones(1, 2, 5, 5))
    torch.testing.assert_close(ones, torch.full_like(ones, 18.0))


def test_swapped_model_saves_and_loads(tmp_path):
    net, x = _net(), torch.randn(1, 2, 8, 8)
    for mode in ("symmetric", "partial"):
        swapped = swap_padding(net, mode)
        torch.save(swapped, tmp_path / "m.pt")
        loaded = torch.load(tmp_path / "m.pt", weights_only=False)
        assert type(loaded[0]) is type(swapped[0]) and isinstance(loaded[0], nn.Conv2d)
        torch.testing.assert_close(loaded(x), swapped(x))


def test_swap_padding_errors():
    with pytest.raises(ValueError, match="mode"):
        swap_padding(_net(), "mirror")
    with pytest.raises(TypeError, match="model"):
        swap_padding("net", "zeros")


# ------------------------------------------------------------------------------------------------ foveation


@pytest.mark.parametrize("mode, expected", [
    ("zeros", [2, 3, 3, 3, 2]),          # border windows read one padded zero
    ("reflect", [2, 4, 3, 4, 2]),        # [x1 | x0..x4 | x3]: the mirrored copies count for x1 and x3
    ("replicate", [3, 3, 3, 3, 3]),      # [x0 | x0..x4 | x4]
    ("symmetric", [3, 3, 3, 3, 3]),      # with a 1-wide pad, mirror-with-edge equals replicate
    ("circular", [3, 3, 3, 3, 3]),
    ("partial", [2.5, 3.5, 3, 3.5, 2.5]),  # border windows scaled by 3/2
])
def test_foveation_one_layer_by_hand(mode, expected):
    assert foveation_map([(3, 1, 1)], 5, mode).tolist() == expected


def test_foveation_stride_and_depth_by_hand():
    assert foveation_map([(3, 2, 1)], 6).tolist() == [1, 2, 1, 2, 1, 1]   # the bottom pad is never read
    assert foveation_map([(3, 2, 1)], 7).tolist() == [1, 2, 1, 2, 1, 2, 1]
    # two 3-wide zero-padded layers: [2,3,3,3,2] summed over each neighbourhood
    assert foveation_map([(3, 1, 1), (3, 1, 1)], 5).tolist() == [5, 8, 9, 8, 5]
    # 5-wide kernel, 2-wide pads: symmetric on 3 inputs, reflect on 4
    assert foveation_map([(5, 1, 2)], 3, "symmetric").tolist() == [5, 5, 5]
    assert foveation_map([(5, 1, 2)], 4, "reflect").tolist() == [3, 7, 7, 3]
    # a max pool never reads what it pads, whatever the convolutions' mode
    assert foveation_map([nn.MaxPool1d(3, 1, 1)], 5, "replicate").tolist() == [2, 3, 3, 3, 2]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_foveation_copying_modes_conserve_every_tap(mode):
    # every tap of every window reads some input: the counts sum to (#outputs x kernel taps)
    fov = foveation_map([((3, 5), (2, 1), (1, 2))], (9, 11), mode)
    out = output_size(9, 3, 2, 1, 1) * output_size(11, 5, 1, 2, 2)
    assert float(fov.sum()) == out * 15


def test_foveation_of_a_model_follows_its_main_path():
    model = ResNetLike()
    before = model_state(model)
    fov = foveation_map(model, 64, "zeros")
    assert_same_state(before, model_state(model))
    expect = foveation_map([((7, 7), 2, 3), ((3, 3), 2, 1), ((3, 3), 1, 1)] + [((3, 3), 2, 1)] * 3, (64, 64))
    # main path: stem, pool, stage1, the three stride-2 convs (the 1x1 shortcuts read a size already left behind)
    torch.testing.assert_close(fov, expect)
    assert fov.shape == (64, 64) and fov[0, 0] < fov[32, 32]


def test_foveation_errors():
    with pytest.raises(ValueError, match="padding_mode"):
        foveation_map([(3, 1, 1)], 5, "mirror")
    with pytest.raises(TypeError, match="layers"):
        foveation_map([], 5)
    with pytest.raises(ValueError, match="larger than the padded input"):
        foveation_map([(5, 1, 0)], 3)


# ------------------------------------------------------------------------------------------------ blind spots


def test_mean_feature_maps_closed_form_and_batching():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1))
        model[0].bias.zero_()
    data = torch.rand(10, 1, 5, 6)
    before = model_state(model)
    maps = mean_feature_maps(model, ["0", model[1]], data, batch_size=3)
    assert_same_state(before, model_state(model))
    torch.testing.assert_close(maps["0"], 2.0 * data.double().mean(0)[0])  # mean of 1x and 3x over channels
    loader = [(data[:4], None), (data[4:], None)]
    torch.testing.assert_close(mean_feature_maps(model, "1", loader)["1"], maps["1"])
    with pytest.raises(ValueError, match="no layer named"):
        mean_feature_maps(model, "conv9", data)


def test_mean_filters_masses():
    conv = nn.Conv2d(2, 4, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, :, 0] = -2.0  # left column only
        conv.weight[:, :, 0, 1] = 1.0
    (f,) = mean_filters(nn.Sequential(conv))
    assert (f.left, f.right, f.top, f.bottom) == (6.0, 0.0, 3.0, 2.0)
    assert f.lr_asymmetry == -1.0 and f.tb_asymmetry == pytest.approx(-0.2)
    (g,) = mean_filters(nn.Sequential(conv), absolute=False)
    assert g.left == -6.0


def test_map_asymmetry():
    m = torch.arange(12.0).reshape(3, 4) ** 2
    sym = torch.tensor([1.0, 3.0, 1.0])[:, None] * torch.tensor([0.0, 2.0, 2.0, 0.0])
    assert map_asymmetry(sym) == (0.0, 0.0)
    lr, tb = map_asymmetry(m)
    assert lr > 0 and tb > 0


def test_blind_spot_sweep_linear_closed_form():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 7, 3))
    bg, stim = torch.rand(2, 6, 7), torch.rand(2, 2, 3)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    w = model[1].weight[1].detach().reshape(2, 6, 7)
    base = float(model(bg[None])[0, 1].detach())
    before = model_state(model)
    sweep = blind_spot_sweep(model, bg, stim, 1, stride=2, mask=mask, batch_size=4)
    assert_same_state(before, model_state(model))
    assert sweep.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            r, c = 2 * i, 2 * j
            delta = ((stim - bg[:, r : r + 2, c : c + 3]) * w[:, r : r + 2, c : c + 3] * mask).sum()
            assert float(sweep[i, j]) == pytest.approx(base + float(delta), abs=1e-5)
    p = blind_spot_sweep(model, bg, stim, 1, mask=mask, score="probability")
    full = blind_spot_sweep(model, bg, stim, lambda out: out.softmax(1)[:, 1], mask=mask)
    torch.testing.assert_close(p, full)
    with pytest.raises(ValueError, match="stimulus"):
        blind_spot_sweep(model, bg, torch.rand(3, 2, 2), 1)


def test_plot_maps():
    fig, axes = plot_maps({"a": torch.rand(3, 3), "b": torch.rand(4, 4), "c": torch.rand(2, 2)}, ncols=2, title="t")
    assert axes.shape == (2, 2)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_padding_modes_listed():
    assert set(PADDING_MODES) == {"zeros", "reflect", "replicate", "circular", "symmetric", "partial"}
