"""Line plots: time-series attributions, deletion/insertion curves and model-randomisation curves.

Every function accepts ``ax=`` and returns ``(fig, ax)``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._common import check_sign, default_cmap, get_axes, normalize, pyplot, to_numpy


def plot_time_series(
    series: Any,
    attr: Any,
    method: str = "overlay",
    sign: str = "absolute",
    outlier_perc: float = 1.0,
    channels_last: bool = False,
    channel_names: Sequence[str] | None = None,
    x: Any = None,
    cmap: str | None = None,
    ax: Any = None,
):
    """Attributions of a time series.

    Args:
        series, attr: ``(T,)`` or ``(C, T)`` (``(T, C)`` with ``channels_last=True``), same shape.
        method: ``"overlay"`` (each channel's line with its points coloured by that channel's attribution) or
            ``"shade"`` (the lines over a background band coloured by the attribution summed over channels).
        sign, outlier_perc: see :func:`pellucid.viz.normalize`. x: the time axis (default ``0..T-1``).

    Returns:
        ``(fig, ax)``. ``overlay`` adds one scatter collection per channel (``ax.collections``) whose colour
        values are the normalised attributions; ``shade`` adds one image (``ax.images``) of shape ``(1, T)``.
    """
    check_sign(sign)
    if method not in ("overlay", "shade"):
        raise ValueError(f"method must be 'overlay' or 'shade'; received {method!r}")
    s, a = to_numpy(series, "series"), to_numpy(attr, "attr")
    if s.shape != a.shape:
        raise ValueError(f"series has shape {s.shape} but attr has {a.shape}; they must match")
    if s.ndim == 1:
        s, a = s[None], a[None]
    elif s.ndim == 2:
        if channels_last:
            s, a = s.T, a.T
    else:
        raise ValueError(f"series must be (T,) or (C, T) / (T, C); received shape {s.shape}")
    c, t = s.shape
    xs = np.arange(t) if x is None else to_numpy(x, "x")
    if xs.shape != (t,):
        raise ValueError(f"x must have {t} values (one per time step); received shape {xs.shape}")
    fig, ax = get_axes(ax, figsize=(7, 3))
    cm = cmap or default_cmap(sign)
    vmin = -1.0 if sign == "all" else 0.0
    names = channel_names or [f"channel {i}" for i in range(c)]
    if method == "shade":
        norm = normalize(a.sum(0), sign, outlier_perc)
        lo, hi = float(s.min()), float(s.max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.imshow(norm[None], aspect="auto", cmap=cm, vmin=vmin, vmax=1, alpha=0.6,
                  extent=(xs[0], xs[-1], lo - pad, hi + pad), origin="lower")
    for i in range(c):
        ax.plot(xs, s[i], lw=1.2, label=names[i], zorder=2)
        if method == "overlay":
            ax.scatter(xs, s[i], c=normalize(a[i], sign, outlier_perc), cmap=cm, vmin=vmin, vmax=1, s=14, zorder=3)
    if c > 1:
        ax.legend(fontsize=8)
    ax.set_xlabel("time")
    return fig, ax


def _xy(curve: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a curve given as ``(x, y)``, as ``y`` alone (x = fraction 0..1), or as an object with
    ``fractions``/``x`` and ``scores``/``y``/``curve`` attributes. A 2-D ``y`` (examples x points) is averaged."""
    xs = ys = None
    for a, b in (("fractions", "scores"), ("fractions", "curve"), ("x", "y")):
        if hasattr(curve, a) and hasattr(curve, b):
            xs, ys = getattr(curve, a), getattr(curve, b)
            break
    if ys is None:
        if isinstance(curve, tuple) and len(curve) == 2:
            xs, ys = curve
        else:
            ys = curve
    y = to_numpy(ys, name)
    if y.ndim == 2:
        y = y.mean(0)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a curve (P,) or (N, P); received shape {y.shape}")
    x = np.linspace(0, 1, y.shape[0]) if xs is None else to_numpy(xs, name).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{name}: x has {x.shape[0]} points but y has {y.shape[0]}")
    return x, y


def plot_curves(
    curves: Mapping[str, Any],
    xlabel: str = "fraction of features",
    ylabel: str = "score",
    title: str | None = None,
    show_auc: bool = True,
    ax: Any = None,
):
    """One line per method; the legend shows each curve's area (trapezoid rule) when ``show_auc``.

    ``curves`` maps a name to ``(x, y)``, to ``y`` (x = 0..1) or to a metric result with ``fractions`` and
    ``scores``; a 2-D ``y`` ``(N, P)`` is averaged over examples. Returns ``(fig, ax)``; ``ax.lines`` in order.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(f"curves must be a non-empty dict {{name: curve}}; received {type(curves).__name__}")
    fig, ax = get_axes(ax, figsize=(5, 3.5))
    for name, curve in curves.items():
        x, y = _xy(curve, f"curves[{name!r}]")
        label = f"{name} (AUC {_area(x, y):.3f})" if show_auc else name
        ax.plot(x, y, marker="o", ms=3, lw=1.4, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_deletion_insertion(
    deletion: Mapping[str, Any] | None = None, insertion: Mapping[str, Any] | None = None, ax: Any = None
):
    """Deletion curves (score as the most relevant features are removed; lower area = more faithful) and
    insertion curves (score as they are added to a baseline; higher area = more faithful), Petsiuk et al., 2018,
    "RISE", arXiv:1806.07421. Given both, ``ax`` must be a pair of axes (default: a new 1x2 figure).

    Returns ``(fig, ax)`` (``ax`` a list of two axes when both are given).
    """
    given = [(n, c) for n, c in (("deletion", deletion), ("insertion", insertion)) if c]
    if not given:
        raise ValueError("give deletion= and/or insertion= curves ({method: curve})")
    if len(given) == 2:
        if ax is None:
            fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.5))
        else:
            axes = list(ax)
            if len(axes) != 2:
                raise ValueError(f"with both curves, ax must be two axes; received {len(axes)}")
            fig = axes[0].figure
        for a, (n, c) in zip(axes, given):
            plot_curves(c, title=n, ax=a)
        return fig, list(axes)
    n, c = given[0]
    return plot_curves(c, title=n, ax=ax)


def plot_randomisation(
    similarities: Mapping[str, Any], layers: Sequence[str] | None = None, ylabel: str = "similarity to original",
    ax: Any = None,
):
    """Cascading model-randomisation curves (Adebayo et al., 2018, "Sanity Checks for Saliency Maps",
    arXiv:1810.03292): for each method, the similarity between the attribution of the trained model and that of
    the model with layers randomised from the top down. A method that passes falls towards 0.

    ``similarities`` maps a method to ``(P,)`` values (or ``(N, P)``, averaged); ``layers`` names the P steps.
    Returns ``(fig, ax)``.
    """
    if not isinstance(similarities, Mapping) or not similarities:
        raise TypeError(f"similarities must be a non-empty dict {{method: values}}; received {type(similarities).__name__}")
    fig, ax = get_axes(ax, figsize=(6, 3.5))
    n_points = None
    for name, sim in similarities.items():
        _, y = _xy(sim, f"similarities[{name!r}]")
        n_points = y.shape[0]
        ax.plot(np.arange(n_points), y, marker="o", ms=4, label=name)
    if layers is not None:
        if len(layers) != n_points:
            raise ValueError(f"layers has {len(layers)} names but the curves have {n_points} points")
        ax.set_xticks(np.arange(n_points), list(layers), rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layers randomised (top down)")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig, ax


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Area under ``y(x)`` by the trapezoid rule."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)
