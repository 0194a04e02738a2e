"""Text attributions as coloured tokens: HTML (notebooks, reports), ANSI colour (terminals) and matplotlib.

Scores are normalised with :func:`pellucid.viz.normalize` (``sign="all"`` by default: green for evidence for the
output, red against it; the colour's strength is the normalised magnitude).
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np

from ._common import check_sign, get_axes, normalize, to_numpy

_POS = (0, 150, 60)
_NEG = (210, 40, 40)


def _scores(tokens: Sequence[str], attributions: Any, sign: str, outlier_perc: float) -> np.ndarray:
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a sequence of strings (one per attribution); received "
                        f"{type(tokens).__name__}")
    a = to_numpy(attributions, "attributions").reshape(-1)
    if a.shape[0] != len(tokens):
        raise ValueError(f"attributions has {a.shape[0]} values but there are {len(tokens)} tokens; give one per token")
    check_sign(sign)
    return normalize(a, sign, outlier_perc)


def token_colors(
    tokens: Sequence[str], attributions: Any, sign: str = "all", outlier_perc: float = 0.0
) -> list[tuple[int, int, int]]:
    """An RGB colour (0-255) per token: white blended towards green (positive) or red (negative) by the
    normalised magnitude (``sign="negative"`` colours negative evidence red; the others use green)."""
    v = _scores(tokens, attributions, sign, outlier_perc)
    out = []
    for x in v:
        base = _NEG if (x < 0 or sign == "negative") else _POS
        m = min(1.0, abs(float(x)))
        out.append(tuple(int(round(255 + (c - 255) * m)) for c in base))
    return out


class TextAttribution(str):
    """An HTML string that notebooks (Jupyter, VS Code) display as coloured text (``_repr_html_``)."""

    def _repr_html_(self) -> str:
        return str(self)


def text_html(
    tokens: Sequence[str], attributions: Any, sign: str = "all", outlier_perc: float = 0.0,
    title: str | None = None, show_values: bool = True,
) -> TextAttribution:
    """HTML for coloured tokens: one ``<span>`` per token with its background colour, and its raw score in the
    ``title`` tooltip (``show_values``). Tokens are HTML-escaped. Returns a str that notebooks render."""
    cols = token_colors(tokens, attributions, sign, outlier_perc)
    raw = to_numpy(attributions, "attributions").reshape(-1)
    spans = []
    for tok, (r, g, b), val in zip(tokens, cols, raw):
        tip = f' title="{val:+.4f}"' if show_values else ""
        spans.append(
            f'<span class="pellucid-token" style="background-color: rgb({r},{g},{b}); padding: 1px 3px; '
            f'margin: 1px; border-radius: 3px; display: inline-block; color: #000"{tip}>{html.escape(tok)}</span>'
        )
    head = f'<div class="pellucid-text-title"><b>{html.escape(title)}</b></div>' if title else ""
    return TextAttribution(f'<div class="pellucid-text">{head}{"".join(spans)}</div>')


def text_ansi(tokens: Sequence[str], attributions: Any, sign: str = "all", outlier_perc: float = 0.0) -> str:
    """Tokens with 24-bit ANSI background colours (black text), separated by spaces, reset at the end."""
    cols = token_colors(tokens, attributions, sign, outlier_perc)
    parts = [f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{tok}\x1b[0m" for tok, (r, g, b) in zip(tokens, cols)]
    return " ".join(parts)


def visualize_text(
    tokens: Sequence[str], attributions: Any, sign: str = "all", outlier_perc: float = 0.0,
    ax: Any = None, fontsize: float = 11, width: float = 8.0,
):
    """Coloured tokens drawn with matplotlib, wrapped into lines; returns ``(fig, ax)``. Each token is a text
    artist whose box colour is :func:`token_colors` (``ax.texts``)."""
    cols = token_colors(tokens, attributions, sign, outlier_perc)
    fig, ax = get_axes(ax, figsize=(width, 1.0 + 0.3 * (len(tokens) // 12)))
    ax.set_axis_off()
    x, y, line = 0.0, 1.0, 0.16
    per_char = 0.011 * fontsize / 11
    for tok, (r, g, b) in zip(tokens, cols):
        w = per_char * (len(tok) + 1.5)
        if x + w > 1.0 and x > 0:
            x, y = 0.0, y - line
        ax.text(x, y, tok, fontsize=fontsize, va="top", ha="left", transform=ax.transAxes,
                bbox=dict(facecolor=(r / 255, g / 255, b / 255), edgecolor="none", pad=1.5))
        x += w
    return fig, ax
