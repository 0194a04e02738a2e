"""Image attributions: heat map, blended heat map, masked image, alpha scaling; several methods side by side.

Inputs are tensors or arrays, channels first ``(C, H, W)`` or last ``(H, W, C)`` (or ``(H, W)``; a leading batch
dim of 1 is dropped). Attribution maps are summed over channels, then shown with a sign mode and outlier-percentile
normalisation (:func:`pellucid.viz.normalize`). Every function accepts ``ax=`` and returns ``(fig, ax)``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._common import check_sign, default_cmap, get_axes, normalize, pyplot, to_numpy

METHODS = ("heat_map", "blended_heat_map", "masked_image", "alpha_scaling", "original_image")
_CH = (1, 3, 4)


def as_hwc(x: Any, name: str = "image", channels_last: bool | None = None) -> np.ndarray:
    """``(H, W, C)`` float array from ``(C, H, W)``, ``(H, W, C)``, ``(H, W)`` or any of these with batch 1.

    ``channels_last=None`` guesses: a trailing dim of 1, 3 or 4 means channels last, else a leading one means
    channels first; pass ``True``/``False`` when the shape is ambiguous or unusual (e.g. 8 channels).
    """
    a = to_numpy(x, name)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        return a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (C, H, W), (H, W, C) or (H, W) (optionally with batch 1); received shape {a.shape}")
    if channels_last is None:
        if a.shape[-1] in _CH:
            channels_last = True
        elif a.shape[0] in _CH:
            channels_last = False
        else:
            raise ValueError(f"cannot tell where the channels of {name} with shape {a.shape} are; pass channels_last=True/False")
    return a if channels_last else np.transpose(a, (1, 2, 0))


def attribution_map(attr: Any, channels_last: bool | None = None) -> np.ndarray:
    """The ``(H, W)`` map of an attribution: summed over channels."""
    return as_hwc(attr, "attr", channels_last).sum(axis=2)


def displayable(image: Any, channels_last: bool | None = None) -> np.ndarray:
    """An image ready for ``imshow``: ``(H, W)`` for one channel, ``(H, W, 3|4)`` otherwise, scaled into [0, 1]
    if its values leave that range (min-max)."""
    a = as_hwc(image, "image", channels_last)
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a[:, :, 0] if a.shape[2] == 1 else a


def visualize_image_attr(
    attr: Any,
    image: Any = None,
    method: str = "blended_heat_map",
    sign: str = "absolute",
    outlier_perc: float = 2.0,
    cmap: str | None = None,
    alpha_overlay: float = 0.5,
    show_colorbar: bool = False,
    title: str | None = None,
    ax: Any = None,
    channels_last: bool | None = None,
):
    """Draw one attribution map.

    Args:
        attr: attribution ``(C, H, W)``/``(H, W, C)``/``(H, W)``, summed over channels.
        image: the input image (needed by every method but ``"heat_map"``).
        method: ``"heat_map"`` (the normalised map), ``"blended_heat_map"`` (the map over the grey image),
            ``"masked_image"`` (image times the map), ``"alpha_scaling"`` (the image with the map as opacity) or
            ``"original_image"``.
        sign: ``"absolute"`` (default), ``"positive"``, ``"negative"`` or ``"all"`` (signed, diverging colours;
            not for the masking methods).
        outlier_perc: the top percentage of magnitudes that saturates (see :func:`normalize`).
        cmap: matplotlib colour map (default: per sign mode). alpha_overlay: opacity of the blended map.
        ax: axes to draw on (default: a new figure).

    Returns:
        ``(fig, ax)``; the drawn arrays are ``ax.images`` (``get_array()``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; received {method!r}")
    check_sign(sign)
    if method in ("masked_image", "alpha_scaling") and sign == "all":
        raise ValueError(f"sign='all' has negative values and cannot mask an image; for method={method!r} use "
                         "'positive', 'negative' or 'absolute'")
    if method != "heat_map" and image is None:
        raise ValueError(f"method={method!r} draws over the input: give image=")
    fig, ax = get_axes(ax)
    img = None if image is None else displayable(image, channels_last)
    if method == "original_image":
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    else:
        amap = attribution_map(attr, channels_last)
        if img is not None and img.shape[:2] != amap.shape:
            raise ValueError(f"attr covers {amap.shape} pixels but image has {img.shape[:2]}; they must match")
        norm = normalize(amap, sign, outlier_perc)
        vmin = -1.0 if sign == "all" else 0.0
        cm = cmap or default_cmap(sign)
        if method == "heat_map":
            shown = ax.imshow(norm, cmap=cm, vmin=vmin, vmax=1)
        elif method == "blended_heat_map":
            grey = img if img.ndim == 2 else img[:, :, :3].mean(axis=2)
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            shown = ax.imshow(norm, cmap=cm, vmin=vmin, vmax=1, alpha=alpha_overlay)
        elif method == "masked_image":
            rgb = img[:, :, None] if img.ndim == 2 else img
            shown = ax.imshow(np.squeeze(rgb * norm[:, :, None]), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        else:  # alpha_scaling
            rgb = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]
            shown = ax.imshow(np.concatenate([rgb, norm[:, :, None]], axis=2))
        if show_colorbar and method in ("heat_map", "blended_heat_map"):
            fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return fig, ax


def compare_methods(
    attributions: Mapping[str, Any],
    images: Any,
    method: str = "blended_heat_map",
    sign: str = "absolute",
    outlier_perc: float = 2.0,
    show_image: bool = True,
    row_labels: Sequence[str] | None = None,
    ax: Any = None,
    cell_size: float = 1.8,
    channels_last: bool | None = None,
    **kwargs: Any,
):
    """Several attribution methods side by side, for one or several examples.

    Args:
        attributions: ``{method name: attribution}``, each ``(N, C, H, W)`` (or ``(N, H, W, C)``, ``(N, H, W)``,
            or one example without the batch dim).
        images: the inputs, ``(N, C, H, W)`` or one image.
        method, sign, outlier_perc, kwargs: as in :func:`visualize_image_attr` (applied to every cell).
        show_image: first column shows the input.
        row_labels: one label per example (e.g. class names), on the left.
        ax: a 2-D array (or list of lists) of axes ``N x (M + show_image)``; default: a new figure.

    Returns:
        ``(fig, axes)`` with ``axes`` a 2-D array of shape ``(N, M + show_image)``; column titles are the method names.
    """
    if not isinstance(attributions, Mapping) or not attributions:
        raise TypeError(f"attributions must be a non-empty dict {{name: attribution}}; received {type(attributions).__name__}")
    imgs = _batch(images, "images")
    n = len(imgs)
    attrs = {k: _batch(v, f"attributions[{k!r}]", n) for k, v in attributions.items()}
    for k, v in attrs.items():
        if len(v) != n:
            raise ValueError(f"attributions[{k!r}] has {len(v)} examples but images has {n}")
    cols = len(attrs) + int(show_image)
    if ax is None:
        fig, axes = pyplot().subplots(n, cols, figsize=(cell_size * cols, cell_size * n), squeeze=False)
    else:
        axes = np.asarray(ax, dtype=object).reshape(n, cols) if np.size(ax) == n * cols else None
        if axes is None:
            raise ValueError(f"ax must hold {n} x {cols} axes (examples x columns); received {np.size(ax)}")
        fig = axes[0, 0].figure
    for i in range(n):
        c = 0
        if show_image:
            visualize_image_attr(None, imgs[i], "original_image", ax=axes[i, 0], channels_last=channels_last,
                                 title="input" if i == 0 else None)
            c = 1
        for j, (name, a) in enumerate(attrs.items()):
            visualize_image_attr(a[i], imgs[i], method, sign, outlier_perc, ax=axes[i, c + j],
                                 title=name if i == 0 else None, channels_last=channels_last, **kwargs)
        if row_labels is not None:
            axes[i, 0].set_ylabel(str(row_labels[i]), fontsize=9)
    fig.tight_layout()
    return fig, axes


def _batch(x: Any, name: str, n: int | None = None) -> list:
    """A list of per-example arrays; ``(N, H, W)`` is a batch of maps when ``N`` is the number of images ``n > 1``."""
    a = to_numpy(x, name)
    if a.ndim == 4 or (a.ndim == 3 and n is not None and n > 1 and a.shape[0] == n):
        return list(a)
    if a.ndim in (2, 3):
        return [a]
    raise ValueError(f"{name} must be one image/map or a batch (N, ...) of them; received shape {a.shape}")
