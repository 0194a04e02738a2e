"""A self-contained HTML report: sections of text, figures (embedded PNG, base64), tables and raw HTML.

One file, no external resources (no scripts, fonts or stylesheets fetched), so it opens anywhere, offline.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { margin-top: 1.8em; color: #334; }
table.pellucid-table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
table.pellucid-table th, table.pellucid-table td { border: 1px solid #ccd; padding: 4px 10px; text-align: right; }
table.pellucid-table th { background: #eef; }
table.pellucid-table td.best { font-weight: bold; background: #e6f4e6; }
table.pellucid-table td:first-child, table.pellucid-table th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.note { color: #555; font-size: 0.92em; }
pre { background: #f6f6f9; padding: .6em; overflow-x: auto; }
"""


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure (the figure is closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover
        pass
    return buf.getvalue()


class Report:
    """Builds one HTML page. ``add_*`` methods append in order; :meth:`html` renders, :meth:`write` saves.

    >>> r = Report("pellucid demo"); r.add_text("hello"); r.add_table(["a"], ["m"], [[1.0]]); r.write("out")
    """

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def add_heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def add_text(self, text: str, css_class: str | None = None) -> None:
        cls = f' class="{css_class}"' if css_class else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def add_html(self, fragment: str) -> None:
        """Trusted HTML (e.g. :func:`pellucid.viz.text_html`), inserted as is."""
        self.parts.append(str(fragment))

    def add_figure(self, fig: Any, caption: str | None = None, alt: str = "figure") -> None:
        """Embed a matplotlib figure as a base64 PNG ``<img>`` (closes the figure)."""
        data = base64.b64encode(figure_png(fig)).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">{cap}</figure>')

    def add_table(
        self, rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float]],
        higher_is_better: dict[str, bool | None] | None = None, caption: str | None = None, fmt: str = "{:.3f}",
        table_id: str | None = None,
    ) -> None:
        """A ``rows x columns`` table of numbers; with ``higher_is_better`` the column headers get an arrow and the
        best cell of each column is marked (class ``best``). NaN shows as an en dash."""
        hib = higher_is_better or {}
        tid = f' id="{html.escape(table_id)}"' if table_id else ""
        head = "".join(
            f"<th>{html.escape(c)}{' &uarr;' if hib.get(c) is True else ' &darr;' if hib.get(c) is False else ''}</th>"
            for c in columns
        )
        best = {}
        for j, c in enumerate(columns):
            col = [float(v[j]) for v in values if v[j] == v[j]]
            if col and hib.get(c) is not None:
                best[j] = max(col) if hib[c] else min(col)
        body = []
        for r, vals in zip(rows, values):
            cells = []
            for j, v in enumerate(vals):
                v = float(v)
                cls = ' class="best"' if j in best and v == best[j] else ""
                cells.append(f"<td{cls}>{'&ndash;' if v != v else html.escape(fmt.format(v))}</td>")
            body.append(f"<tr><td>{html.escape(r)}</td>{''.join(cells)}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f'<table class="pellucid-table"{tid}>{cap}<thead><tr><th>method</th>{head}</tr></thead>'
                          f"<tbody>{''.join(body)}</tbody></table>")

    def html(self) -> str:
        t = html.escape(self.title)
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{t}</title>\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>{_CSS}</style>\n'
                f"</head>\n<body>\n<h1>{t}</h1>\n" + "\n".join(self.parts) + "\n</body>\n</html>\n")

    def write(self, out_dir: str | Path, name: str = "index.html") -> Path:
        """Write the page to ``out_dir/name`` (directories created); returns the path."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / name
        path.write_text(self.html(), encoding="utf-8")
        return path
