"""Image views: layout, channel handling, sign modes and the normalisation's value ranges (array contents, not pixels)."""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pellucid.viz import METHODS, SIGNS, as_hwc, attribution_map, compare_methods, normalize, visualize_image_attr


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_normalize_ranges_and_signs():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 20))
    for sign in SIGNS:
        n = normalize(v, sign, outlier_perc=2)
        lo = -1 if sign == "all" else 0
        assert n.min() >= lo and n.max() <= 1
        assert np.isclose(np.abs(n).max(), 1.0)  # the top outliers saturate
    pos, neg = normalize(v, "positive", 0), normalize(v, "negative", 0)
    assert np.all(pos[v <= 0] == 0) and np.all(neg[v >= 0] == 0)
    # with outlier_perc=0 the scale is the maximum: exact division
    np.testing.assert_allclose(normalize(v, "absolute", 0), np.abs(v) / np.abs(v).max())
    np.testing.assert_allclose(normalize(v, "all", 0), v / np.abs(v).max())


def test_normalize_outliers_saturate_exactly_the_top_percent():
    v = np.arange(1, 101, dtype=float)  # 1..100
    n = normalize(v, "absolute", outlier_perc=10)
    scale = np.percentile(v, 90)
    np.testing.assert_allclose(n, np.clip(v / scale, 0, 1))
    assert (n == 1).sum() == (v >= scale).sum()


def test_normalize_degenerate_and_errors():
    assert np.all(normalize(np.zeros((3, 3)), "absolute") == 0)
    sparse = np.zeros(100)
    sparse[3] = -2.0
    assert normalize(sparse, "negative", 5)[3] == 1.0  # percentile is 0: scale by the maximum
    with pytest.raises(ValueError, match="sign"):
        normalize(sparse, "both")
    with pytest.raises(ValueError, match="outlier_perc"):
        normalize(sparse, "all", 100)


def test_channels_first_and_last_agree():
    x = torch.rand(3, 8, 10)
    a = as_hwc(x)
    assert a.shape == (8, 10, 3)
    np.testing.assert_allclose(a, as_hwc(x.permute(1, 2, 0).numpy()))
    np.testing.assert_allclose(as_hwc(x.unsqueeze(0)), a)  # batch of 1
    assert as_hwc(torch.rand(5, 6)).shape == (5, 6, 1)
    np.testing.assert_allclose(attribution_map(x), x.sum(0).numpy(), rtol=1e-6)
    assert as_hwc(torch.rand(8, 5, 6), channels_last=False).shape == (5, 6, 8)
    with pytest.raises(ValueError, match="channels_last"):
        as_hwc(torch.rand(8, 5, 6))
    with pytest.raises(ValueError, match="image"):
        as_hwc(torch.rand(2, 3, 4, 4))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_draws_the_normalised_map(method):
    torch.manual_seed(0)
    img = torch.rand(3, 12, 12)
    attr = torch.randn(3, 12, 12)
    fig, ax = plt.subplots()
    out_fig, out_ax = visualize_image_attr(attr, img, method=method, sign="absolute", outlier_perc=0, ax=ax)
    assert out_fig is fig and out_ax is ax
    norm = np.abs(attr.sum(0).numpy()) / np.abs(attr.sum(0).numpy()).max()
    shown = np.asarray(ax.images[-1].get_array())
    hwc = img.permute(1, 2, 0).numpy()
    if method == "heat_map":
        np.testing.assert_allclose(shown, norm, rtol=1e-6)
    elif method == "blended_heat_map":
        assert len(ax.images) == 2
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), hwc.mean(2), rtol=1e-6)
        np.testing.assert_allclose(shown, norm, rtol=1e-6)
        assert ax.images[1].get_alpha() == 0.5
    elif method == "masked_image":
        np.testing.assert_allclose(shown, hwc * norm[:, :, None], rtol=1e-6)
    elif method == "alpha_scaling":
        assert shown.shape == (12, 12, 4)
        np.testing.assert_allclose(shown[:, :, 3], norm, rtol=1e-6)
        np.testing.assert_allclose(shown[:, :, :3], hwc, rtol=1e-6)
    else:
        np.testing.assert_allclose(shown, hwc, rtol=1e-6)


def test_signed_heat_map_uses_symmetric_range():
    attr = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    _, ax = visualize_image_attr(attr, method="heat_map", sign="all", outlier_perc=0)
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), attr.numpy() / 2.0)
    assert ax.images[0].get_clim() == (-1.0, 1.0)
    _, ax = visualize_image_attr(attr, method="heat_map", sign="negative", outlier_perc=0)
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), [[0, 1], [0, 0]])


def test_image_out_of_range_is_rescaled_and_errors():
    img = torch.linspace(-3, 5, 16).reshape(1, 4, 4)
    _, ax = visualize_image_attr(None, img, method="original_image")
    shown = np.asarray(ax.images[0].get_array())
    assert shown.min() == 0 and shown.max() == 1
    with pytest.raises(ValueError, match="image="):
        visualize_image_attr(torch.rand(4, 4), method="blended_heat_map")
    with pytest.raises(ValueError, match="sign='all'"):
        visualize_image_attr(torch.rand(4, 4), img, method="masked_image", sign="all")
    with pytest.raises(ValueError, match="method"):
        visualize_image_attr(torch.rand(4, 4), img, method="contour")
    with pytest.raises(ValueError, match="match"):
        visualize_image_attr(torch.rand(5, 5), img)


def test_compare_methods_grid_layout_and_contents():
    torch.manual_seed(0)
    imgs = torch.rand(3, 3, 8, 8)
    attrs = {"a": torch.randn(3, 3, 8, 8), "b": torch.randn(3, 8, 8)}  # "b": a batch of 2-D maps
    fig, axes = compare_methods(attrs, imgs, method="heat_map", outlier_perc=0, row_labels=["x", "y", "z"])
    assert axes.shape == (3, 3)
    assert [axes[0, j].get_title() for j in range(3)] == ["input", "a", "b"]
    assert [axes[i, 0].get_ylabel() for i in range(3)] == ["x", "y", "z"]
    for i in range(3):
        exp = np.abs(attrs["b"][i].numpy())
        np.testing.assert_allclose(np.asarray(axes[i, 2].images[0].get_array()), exp / exp.max(), rtol=1e-6)
    # given axes are used as they are
    fig2, grid = plt.subplots(3, 2)
    _, axes2 = compare_methods(attrs, imgs, show_image=False, ax=grid)
    assert axes2[2, 1] is grid[2, 1] and len(grid[2, 1].images) == 2
    with pytest.raises(ValueError, match="examples"):
        compare_methods({"a": torch.rand(2, 3, 8, 8)}, imgs)
    with pytest.raises(ValueError, match="axes"):
        compare_methods(attrs, imgs, ax=grid)
    with pytest.raises(TypeError, match="dict"):
        compare_methods([torch.rand(3, 3, 8, 8)], imgs)
