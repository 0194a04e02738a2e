"""pellucid side by side with Captum: every benchmark case both libraries have, timed in one interleaved run.

    python benchmarks/bench_captum.py                          # all shared cases (several minutes)
    python benchmarks/bench_captum.py --methods Saliency,DeepLift --repeats 15
    python benchmarks/bench_captum.py --captum-python /path/to/captum-env/bin/python

The cases are those of ``bench_gradient.py``, ``bench_layer.py`` and ``bench_perturbation.py`` (same models,
inputs, targets, masks and settings); Captum runs in a subprocess of its own interpreter (``--captum-python``,
default: this interpreter if ``captum`` imports here, else ``$PELLUCID_CAPTUM_PYTHON``) and is never imported into
this process. Defaults: one torch thread on both sides and process CPU time (``--threads 1 --clock cpu``), the
stable setting on a shared machine. The ``bench_*.py`` scripts take the same ``--compare captum`` option to add
this table to their bound tables. See :mod:`_compare`.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_gradient  # noqa: E402
import bench_layer  # noqa: E402
import bench_perturbation  # noqa: E402
from _compare import run_comparison  # noqa: E402
from _harness import Case, set_clock  # noqa: E402

SECTIONS = ("gradient", "layer", "perturbation")


def all_cases(models: list[str], methods: set[str]) -> list[Case]:
    """The cases of the three bench scripts on ``models`` (all, or those in ``methods``; Captum's worker skips
    those it lacks). Only the scripts with a selected method build their models and inputs: what this process
    holds in memory changes its timings (allocator state), so it should hold no more than the Captum worker."""
    def wanted(names) -> bool:
        return not methods or bool(methods & set(names))

    cases = []
    if wanted(bench_gradient.METHODS):
        for name in models:
            for meth, (call, counts, note) in bench_gradient.cases_for(name).items():
                if meth != "IG-unchunked" and (not methods or meth in methods):
                    cases.append(Case(meth, name, call, counts, note))
    for name in dict.fromkeys(bench_layer.MODEL_OF.values()):
        layer_methods = [m for m, model in bench_layer.MODEL_OF.items() if model == name]
        if name in models and wanted(layer_methods):
            table, _ = bench_layer.setup(name)
            cases += [Case(meth, name, call, counts, note) for meth, (call, counts, note) in table.items()
                      if not methods or meth in methods]
    if wanted(bench_perturbation.METHODS):
        for name in models:
            _, table = bench_perturbation.cases_for(name)
            cases += [Case(meth, name, call, {}, note) for meth, (call, _, note) in table.items()
                      if not methods or meth in methods]
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cnn,transformer")
    ap.add_argument("--methods", default="", help="comma-separated method names (default: every shared one)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--captum-python", default=None)
    ap.add_argument("--rounds", type=int, default=3, help="fresh worker pairs; each runs --repeats repeats")
    ap.add_argument("--same-malloc", action="store_true",
                    help="give both sides the glibc thresholds pellucid sets for itself (pellucid.core.host_memory)")
    a = ap.parse_args()
    set_clock(a.clock)
    torch.set_num_threads(a.threads)
    methods = {s for s in a.methods.split(",") if s}
    cases = all_cases([s for s in a.models.split(",") if s], methods)
    run_comparison(cases, a, a.repeats)


if __name__ == "__main__":
    main()
