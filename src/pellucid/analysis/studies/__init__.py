"""The seed studies: ``python -m pellucid study NAME [--fast] [--out DIR] [--seed S]``.

Each study is a module of this package exposing ``TITLE`` (one line) and
``run(out: Path, fast: bool, seed: int, log) -> StudyOutput``; :data:`STUDIES` maps the command name to the module.
:func:`run_study` runs one and writes ``summary.json``, one PNG per figure and ``index.html`` into ``out``.
"""
from __future__ import annotations

from ._output import StudyOutput, run_study

#: command name -> module name in this package (imported only when the study runs)
STUDIES: dict[str, str] = {
    "padding": "padding",
    "backdoor": "backdoor",
    "split-ig": "split_ig",
    "sanity": "sanity",
    "neurons": "neurons",
    "tcav": "tcav",
}

__all__ = ["STUDIES", "StudyOutput", "run_study"]
