"""What a study produces and how it is written: ``summary.json``, PNG figures and one HTML page."""
from __future__ import annotations

import importlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


@dataclass
class Table:
    """A table of a study: ``rows`` labels x ``columns`` labels of numbers (NaN allowed)."""

    title: str
    rows: Sequence[str]
    columns: Sequence[str]
    values: Sequence[Sequence[float]]
    higher_is_better: dict[str, bool | None] | None = None

    def text(self) -> str:
        """The table as aligned plain text (what the command prints)."""
        w0 = max([len("")] + [len(r) for r in self.rows])
        ws = [max(len(c), 9) for c in self.columns]
        lines = [self.title, " " * w0 + "  " + "  ".join(c.rjust(w) for c, w in zip(self.columns, ws))]
        for r, vals in zip(self.rows, self.values):
            cells = ["-".rjust(w) if v != v else f"{float(v):.4g}".rjust(w) for v, w in zip(vals, ws)]
            lines.append(r.ljust(w0) + "  " + "  ".join(cells))
        return "\n".join(lines)


@dataclass
class StudyOutput:
    """A study's results. ``summary`` must be JSON-serialisable (numbers, strings, lists, dicts); ``figures`` maps
    a file stem to a matplotlib figure; ``notes`` are sentences for the page (e.g. where a paper's claim does not
    reproduce at this scale, with the numbers)."""

    summary: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # tensors and numpy values
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def run_study(name: str, out: str | Path, fast: bool = False, seed: int = 0,
              log: Callable[[str], None] = print) -> StudyOutput:
    """Run study ``name`` (a key of :data:`pellucid.analysis.studies.STUDIES`) and write its files into ``out``:
    ``summary.json`` (the summary plus ``study``, ``fast``, ``seed``, ``seconds``), ``<stem>.png`` per figure and
    ``index.html``. Returns the :class:`StudyOutput`."""
    from . import STUDIES

    if name not in STUDIES:
        raise ValueError(f"study must be one of {sorted(STUDIES)}; received {name!r}")
    module = importlib.import_module(f"{__package__}.{STUDIES[name]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: StudyOutput = module.run(out=out, fast=fast, seed=seed, log=log)
    seconds = time.perf_counter() - t0
    summary = {"study": name, "fast": fast, "seed": seed, "seconds": round(seconds, 2), **result.summary}
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2), encoding="utf-8")
    for table in result.tables:
        log(table.text())
        log("")
    for note in result.notes:
        log(note)
    from ...report.html import Report, figure_png

    page = Report(f"pellucid study: {module.TITLE}")
    page.add_text(f"{'fast mode, ' if fast else ''}seed {seed}, {seconds:.1f} s", css_class="note")
    for table in result.tables:
        page.add_heading(table.title, level=3)
        page.add_table(table.rows, table.columns, table.values, higher_is_better=table.higher_is_better,
                       fmt="{:.4g}")
    for note in result.notes:
        page.add_text(note)
    for stem, fig in result.figures.items():
        (out / f"{stem}.png").write_bytes(figure_png(fig))
        page.add_html(f'<figure><img src="{stem}.png" alt="{stem}"><figcaption>{stem}</figcaption></figure>')
    page.write(out)
    log(f"wrote {out / 'summary.json'} and {out / 'index.html'}")
    return result
