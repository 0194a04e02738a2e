"""Self-contained HTML reports (used by ``python -m pellucid demo``)."""
from .html import Report, figure_png

__all__ = ["Report", "figure_png"]
