"""Sanity study (Kokhlikyan et al., 2021, arXiv:2106.07475): randomisation checks and smoothing on an image CNN and
a text CNN. A thin wrapper around the study command, which holds the logic:

    python -m pellucid study sanity [--fast] [--out DIR] [--seed S]

    python examples/sanity_study.py [--out study_out] [--quick] [--seed 0]

``--quick`` is the study's ``--fast``. Writes ``summary.json``, the figures and ``index.html`` into ``--out``; the
reusable parts are :mod:`pellucid.analysis.sanity` (``randomisation_check``, ``input_imprint``,
``smoothing_check``) and the models and training in :mod:`pellucid.analysis.studies.sanity`.
"""
from __future__ import annotations

import argparse
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="study_out", help="output directory (default: study_out)")
    ap.add_argument("--quick", action="store_true", help="small data and few examples (the study's --fast)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    a = ap.parse_args(argv)
    from pellucid.cli import main as pellucid_main

    args = ["study", "sanity", "--out", a.out, "--seed", str(a.seed)] + (["--fast"] if a.quick else [])
    return pellucid_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
