"""Perturbation attribution methods against their lower bounds (DESIGN section 6, issue 3).

    python benchmarks/bench_perturbation.py            # full run
    python benchmarks/bench_perturbation.py --quick    # smoke run: fewer repeats and batch sizes

Every method at default arguments on the two models of :mod:`models`: the CNN with 64 superpixel groups of 4x4
pixels (all channels together; Occlusion: an 8x8 window over all channels with stride 4, 49 windows) and the
transformer with one feature per token (the 64 embedding values of a token form its group; zero baseline).
ShapleyValues (exact) enumerates ``2^G`` coalitions, so it runs on 8 groups (rows of superpixels / blocks of 8
tokens). The bound is (forward evaluations the method needs) x (best per-row no-grad forward cost, over batch
sizes, measured in the same run on the method's own rows, see :func:`captured_rows`); evaluations per
example: FeatureAblation and FeaturePermutation ``1 + G``,
Occlusion ``1 + windows``, ShapleyValueSampling ``2 + n_samples (G - 1)`` (the walk's two end points are shared by
all orders), ShapleyValues ``2^G``, Lime ``n_samples``, KernelShap ``2 + n_samples``. Prints a markdown table
``method | model | time ms | bound ms | ratio | peak MB``; see :mod:`_harness`.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (  # noqa: E402
    add_common_options, apply_common_options, Case, child_main, forward_runner, run_and_report,
)
from models import occlusion_windows, perturbation_masks, workload  # noqa: E402

from pellucid.attr import (  # noqa: E402
    FeatureAblation, FeaturePermutation, KernelShap, Lime, Occlusion, ShapleyValues, ShapleyValueSampling,
)

METHODS = ("FeatureAblation", "Occlusion", "FeaturePermutation", "ShapleyValueSampling", "ShapleyValues", "Lime",
           "KernelShap")
SHAPLEY_SAMPLES, LIME_SAMPLES, KERNEL_SHAP_SAMPLES = 25, 25, 25  # the defaults


def captured_rows(model: torch.nn.Module, call: Callable[[], Any], total: int, keep: int = 256) -> Callable[[int], tuple]:
    """``b ->`` ``b`` consecutive rows from the middle of the rows the method itself evaluates (captured in one
    untimed call). The CNN's cost depends on the data (max pooling over rows with zeroed regions is cheaper than
    over noise, and rows that differ by one group are cheaper still), so the bound is measured on the same rows."""
    lo = max(0, total // 2 - keep // 2)
    seen, got = [0], []

    def hook(module, args, kwargs):
        x = args[0]
        a, b = max(lo, seen[0]), min(lo + keep, seen[0] + x.shape[0])
        if a < b:
            got.append((x[a - seen[0] : b - seen[0]].clone(),
                        {k: v[a - seen[0] : b - seen[0]].clone() for k, v in kwargs.items() if torch.is_tensor(v)}))
        seen[0] += x.shape[0]

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        call()
    finally:
        handle.remove()
    if seen[0] != total:
        raise RuntimeError(f"expected {total} forward rows, the method evaluated {seen[0]}")
    data = torch.cat([g[0] for g in got])
    kw = {k: torch.cat([g[1][k] for g in got]) for k in got[0][1]}

    def rows(b: int):
        r = torch.arange(b) % data.shape[0]
        return data[r].clone(), {k: v[r].clone() for k, v in kw.items()}

    return rows


def cases_for(model_name: str) -> tuple[torch.nn.Module, dict[str, tuple[Callable[[], Any], int, str]]]:
    """The model and ``method -> (call, forward evaluations, note)``."""
    w = workload(model_name)
    m, x, n = w.model, w.inputs, w.n
    fine, coarse = perturbation_masks(model_name, x)
    g, gc = int(fine.max()) + 1, int(coarse.max()) + 1
    common = {"target": w.target, "forward_kwargs": w.forward_kwargs}
    shapes, strides, n_win, occ_note = occlusion_windows(model_name, x)
    windows = shapes, strides
    return m, {
        "FeatureAblation": (lambda: FeatureAblation(m).attribute(x, feature_mask=fine, **common), n * (1 + g), f"{g} groups"),
        "Occlusion": (lambda: Occlusion(m).attribute(x, windows[0], windows[1], **common), n * (1 + n_win), occ_note),
        "FeaturePermutation": (lambda: FeaturePermutation(m).attribute(x, feature_mask=fine, seed=0, **common),
                               n * (1 + g), f"{g} groups"),
        "ShapleyValueSampling": (lambda: ShapleyValueSampling(m).attribute(x, feature_mask=fine, seed=0, **common),
                                 n * (2 + SHAPLEY_SAMPLES * (g - 1)), f"{g} groups, {SHAPLEY_SAMPLES} orders"),
        "ShapleyValues": (lambda: ShapleyValues(m).attribute(x, feature_mask=coarse, **common), n * 2**gc, f"{gc} groups"),
        "Lime": (lambda: Lime(m).attribute(x, feature_mask=fine, seed=0, **common), n * LIME_SAMPLES,
                 f"{g} groups, {LIME_SAMPLES} samples"),
        "KernelShap": (lambda: KernelShap(m).attribute(x, feature_mask=fine, seed=0, **common),
                       n * (2 + KERNEL_SHAP_SAMPLES), f"{g} groups, {KERNEL_SHAP_SAMPLES} samples"),
    }


def child_call(key: str) -> Callable[[], Any]:
    model_name, method, threads = key.split(":")
    if int(threads):
        torch.set_num_threads(int(threads))
    return cases_for(model_name)[1][method][0]


def main() -> None:
    if child_main(sys.argv, child_call):
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(ap, default_repeats=5)
    ap.add_argument("--models", default="cnn,transformer")
    ap.add_argument("--methods", default=",".join(METHODS))
    a = ap.parse_args()
    repeats, batch_sizes = apply_common_options(a, default_repeats=5)
    units, cases = {}, []
    for name in [s for s in a.models.split(",") if s]:
        model, table = cases_for(name)
        for meth in [s for s in a.methods.split(",") if s]:
            call, count, note = table[meth]
            units[(name, f"fwd@{meth}")] = forward_runner(model, captured_rows(model, call, count))
            cases.append(Case(meth, name, call, {f"fwd@{meth}": count}, note))
    run_and_report(cases, units, a, repeats, batch_sizes, __file__)


if __name__ == "__main__":
    main()
