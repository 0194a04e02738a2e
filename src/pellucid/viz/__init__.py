"""Drawing attributions (matplotlib, Agg backend unless one was chosen; ``pip install 'pellucid[viz]'``).

Every drawing function accepts ``ax=`` and returns ``(fig, ax)``; inputs are tensors or arrays, images channels
first or last. Text attributions also come as HTML (:func:`text_html`) and ANSI colour (:func:`text_ansi`).
"""
from ._common import SIGNS, normalize
from .image import METHODS, as_hwc, attribution_map, compare_methods, visualize_image_attr
from .plots import plot_curves, plot_deletion_insertion, plot_randomisation, plot_time_series
from .text import TextAttribution, text_ansi, text_html, token_colors, visualize_text

__all__ = [
    "METHODS", "SIGNS", "TextAttribution", "as_hwc", "attribution_map", "compare_methods", "normalize",
    "plot_curves", "plot_deletion_insertion", "plot_randomisation", "plot_time_series", "text_ansi", "text_html",
    "token_colors", "visualize_image_attr", "visualize_text",
]
