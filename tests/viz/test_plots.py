"""Time series, deletion/insertion and randomisation plots: data drawn equals data given."""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
import matplotlib.pyplot as plt

from pellucid.viz import plot_curves, plot_deletion_insertion, plot_randomisation, plot_time_series


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_time_series_overlay_colours_are_normalised_attributions():
    t = np.linspace(0, 1, 50)
    series = np.stack([np.sin(6 * t), np.cos(6 * t)])
    attr = np.stack([t, -t])
    fig, ax = plt.subplots()
    out = plot_time_series(torch.tensor(series), attr, sign="absolute", outlier_perc=0, ax=ax)
    assert out == (fig, ax)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), series[1])
    np.testing.assert_allclose(ax.collections[0].get_array(), t / t.max())
    np.testing.assert_allclose(ax.collections[1].get_array(), t / t.max())
    # channels last gives the same drawing
    _, ax2 = plot_time_series(series.T, attr.T, channels_last=True, outlier_perc=0)
    np.testing.assert_allclose(ax2.collections[1].get_array(), ax.collections[1].get_array())


def test_time_series_shade_sums_channels():
    series = np.ones((2, 10))
    attr = np.stack([np.arange(10.0), np.arange(10.0)])
    _, ax = plot_time_series(series, attr, method="shade", sign="all", outlier_perc=0)
    band = np.asarray(ax.images[0].get_array())
    assert band.shape == (1, 10)
    np.testing.assert_allclose(band[0], np.arange(10) / 9)
    with pytest.raises(ValueError, match="match"):
        plot_time_series(series, attr[:, :5])
    with pytest.raises(ValueError, match="method"):
        plot_time_series(series, attr, method="bars")


def test_curves_accept_pairs_arrays_and_result_objects():
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    scores = torch.stack([1 - x, 1 - x ** 2])  # (N, K), averaged

    class Result:  # shaped like a metric result: fractions (K,), scores (N, K)
        def __init__(self):
            self.fractions, self.scores = x, scores

    r = Result()
    fig, ax = plot_curves({"pair": (x, scores), "bare": 1 - x, "obj": r})
    assert len(ax.lines) == 3
    mean = (1 - x + 1 - x ** 2).numpy() / 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mean)
    np.testing.assert_allclose(ax.lines[2].get_ydata(), mean)
    np.testing.assert_allclose(ax.lines[1].get_xdata(), x.numpy())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1] == "bare (AUC 0.500)"  # area of 1 - x on [0, 1]


def test_deletion_insertion_pair_and_randomisation():
    x = np.linspace(0, 1, 5)
    fig, axes = plot_deletion_insertion({"m": (x, 1 - x)}, {"m": (x, x)})
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["deletion", "insertion"]
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), x)
    _, ax = plot_deletion_insertion(insertion={"m": (x, x)})
    assert ax.get_title() == "insertion"
    with pytest.raises(ValueError, match="deletion"):
        plot_deletion_insertion()
    sims = {"a": torch.tensor([[0.9, 0.5, 0.1], [0.7, 0.3, 0.1]]), "b": np.array([1.0, 1.0, 0.9])}
    _, ax = plot_randomisation(sims, ["head", "conv2", "conv1"])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.8, 0.4, 0.1])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["head", "conv2", "conv1"]
    with pytest.raises(ValueError, match="names"):
        plot_randomisation(sims, ["one"])
