"""Pictures of the explorer, drawn with :mod:`pellucid.viz` on matplotlib ``Figure`` objects (thread-safe, no
pyplot state): the input image, the attribution over it, coloured tokens and the exported view."""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
from torch import Tensor

IMAGE_STYLES = ("blended_heat_map", "heat_map", "masked_image", "alpha_scaling")


def _figure(size: float = 2.56, dpi: int = 100):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size, size), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image_png(x: Tensor) -> bytes:
    """The input image ``(1, C, H, W)`` as a PNG."""
    from ..viz import visualize_image_attr

    fig, ax = _figure()
    visualize_image_attr(None, x[0], "original_image", ax=ax, channels_last=False)
    ax.set_axis_off()
    return _png(fig)


def overlay_png(attribution: Tensor, x: Tensor, style: str = "blended_heat_map", sign: str = "absolute") -> bytes:
    """The attribution ``(1, C, H, W)`` drawn over the image with :func:`pellucid.viz.visualize_image_attr`."""
    from ..viz import visualize_image_attr

    if sign == "all" and style in ("masked_image", "alpha_scaling"):
        sign = "absolute"
    fig, ax = _figure()
    visualize_image_attr(attribution[0], x[0], style, sign, ax=ax, channels_last=False)
    ax.set_axis_off()
    return _png(fig)


def token_scores(attribution: Tensor) -> list[float]:
    """One score per token from an embedding-space attribution ``(1, L, D)``."""
    return attribution[0].double().sum(-1).tolist()


def token_view(tokens: Sequence[str], scores: Sequence[float], sign: str = "all") -> list[dict]:
    """``[{token, score, color: [r, g, b]}]`` with :func:`pellucid.viz.token_colors`."""
    from ..viz import token_colors

    cols = token_colors(list(tokens), np.asarray(scores, dtype=np.float64), sign=sign)
    return [{"token": t, "score": float(s), "color": list(c)} for t, s, c in zip(tokens, scores, cols)]


def export_png(panels: Sequence[dict[str, Any]], sign: str = "absolute", style: str = "blended_heat_map") -> bytes:
    """The compared views side by side: each panel ``{title, x, attribution, tokens?, lines}`` is a column with
    the picture (image overlay or coloured tokens) and its numbers below."""
    from matplotlib.figure import Figure

    from ..viz import visualize_image_attr, visualize_text

    n = len(panels)
    fig = Figure(figsize=(3.4 * n, 4.6), dpi=110)
    for i, p in enumerate(panels):
        ax = fig.add_axes((i / n + 0.02 / n, 0.36, 0.96 / n, 0.56))
        if p.get("tokens") is not None:
            visualize_text(p["tokens"], p["scores"], sign="all", ax=ax, fontsize=8)
        else:
            s = "absolute" if sign == "all" and style in ("masked_image", "alpha_scaling") else sign
            visualize_image_attr(p["attribution"][0], p["x"][0], style, s, ax=ax, channels_last=False)
        ax.set_title(p["title"], fontsize=8)
        fig.text(i / n + 0.02, 0.33, "\n".join(p["lines"]), fontsize=7, va="top", ha="left", family="monospace")
    return _png(fig)
