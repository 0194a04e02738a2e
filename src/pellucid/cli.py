"""Command line: ``python -m pellucid {demo,explore,study,attribute} ...`` (also ``pellucid``).

Thin argument parsing only: each command lives in a module exposing ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int`` (0 success, 1 missing extra or failed run, 2 bad arguments). Those modules import their
heavy dependencies inside ``run`` so that ``--help`` works with only the core installed.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Sequence

COMMANDS = {
    "demo": "pellucid.report.cli",
    "explore": "pellucid.explorer.cli",
    "study": "pellucid.analysis.studies.cli",
    "attribute": "pellucid.jobs.cli",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pellucid", description="pellucid: model interpretability for PyTorch")
    sub = p.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 on success, 1 when an extra is missing, 2 on bad arguments)."""
    args = _parser().parse_args(argv)
    return int(args._run(args))
